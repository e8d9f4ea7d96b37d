// Package haproxytest starts a real haproxy for tests: a temp directory,
// a config checked with "haproxy -c" first, a stats socket (unix, and TCP
// when asked), stopped by PID in t.Cleanup, its log printed only when the
// test failed.
package haproxytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// HAProxy is one haproxy process started by a test.
type HAProxy struct {
	Dir     string // temp directory holding the config, socket and state file
	Config  string // path of haproxy.cfg
	Socket  string // unix stats socket path
	TCPAddr string // "127.0.0.1:PORT" of the TCP stats socket
	cmd     *exec.Cmd
	log     *SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: process output
// and test logs collected while the test runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Binary returns the haproxy path or fails the test: every machine that
// runs these tests has Debian's haproxy (.ci/run installs it).
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy not installed (apt-get install -y haproxy): %v", err)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start writes body (the backends and frontends; "{{DIR}}" is replaced by
// the temp directory) behind a global section with stats sockets and an
// HTTP defaults section, checks it, starts haproxy and waits for the socket.
func Start(t testing.TB, body string) *HAProxy {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	h := &HAProxy{
		Dir:     dir,
		Config:  filepath.Join(dir, "haproxy.cfg"),
		Socket:  filepath.Join(dir, "admin.sock"),
		TCPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		log:     &SyncBuffer{},
	}
	cfg := fmt.Sprintf(`global
  stats socket %s mode 600 level admin expose-fd listeners
  stats socket ipv4@%s level admin
  stats timeout 1m
  maxconn 4000

defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s

`, h.Socket, h.TCPAddr) + strings.ReplaceAll(body, "{{DIR}}", dir)
	if err := os.WriteFile(h.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", h.Config).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	h.cmd = exec.Command(bin, "-db", "-f", h.Config)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.log.String())
		}
	})
	h.waitSocket(t)
	return h
}

func (h *HAProxy) waitSocket(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("unix", h.Socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("haproxy socket %s did not appear; log:\n%s", h.Socket, h.log.String())
}

func (h *HAProxy) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
	h.cmd = nil
}

// PID is the haproxy process id.
func (h *HAProxy) PID() int { return h.cmd.Process.Pid }

// Restart stops haproxy and starts it again on the same config: every
// runtime change is lost, as after a host reboot.
func (h *HAProxy) Restart(t testing.TB) {
	t.Helper()
	h.stop()
	_ = os.Remove(h.Socket)
	h.cmd = exec.Command(Binary(t), "-db", "-f", h.Config)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("restart haproxy: %v", err)
	}
	h.waitSocket(t)
}
