package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler/metrics"
)

// The wake listener takes its mode from the backend in
// haproxy.config_file: a closed service answers 503 over HTTP in a "mode
// http" backend, and only closes the connection in a "mode tcp" one,
// where the listener cannot speak HTTP.
func TestStartWakeTakesModeFromHAProxyConfig(t *testing.T) {
	for _, tt := range []struct{ mode, want string }{
		{"http", "HTTP/1.1 503 Service Unavailable"},
		{"tcp", ""},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			listen := fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
			haproxyCfg := filepath.Join(t.TempDir(), "haproxy.cfg")
			backend := fmt.Sprintf("backend web\n  mode %s\n  server-template slot 1-2 127.0.0.1:9 check disabled\n  server wake %s backup\n", tt.mode, listen)
			if err := os.WriteFile(haproxyCfg, []byte(backend), 0o644); err != nil {
				t.Fatal(err)
			}
			f := scalertest.New(t, fmt.Sprintf(`
haproxy: {runtime_api: unix:///unused.sock, config_file: %s}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
services:
  - name: web
    container: {image: web:1, port: 8080}
    min_replicas: 0
    max_replicas: 2
    target: {sessions_per_replica: 10}
    schedule: {timezone: UTC, outside: {min_replicas: 0, max_replicas: 0}}
    wake: {listen: "%s"}
`, haproxyCfg, listen), scalertest.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			wait, err := startWake(ctx, f.Config, f.Loop, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); wait() }()
			c, err := net.Dial("tcp", listen)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			// Closed unanswered: EOF, or a reset as the request was not read.
			if got := strings.TrimSpace(line); got != tt.want || tt.want == "" && err == nil {
				t.Errorf("closed service in mode %s: first line %q (err %v), want %q", tt.mode, got, err, tt.want)
			}
		})
	}
}
