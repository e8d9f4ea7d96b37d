package scaler_test

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// A state.json from before a field existed, or with a hint field slotscaler
// cannot read, still starts slotscaler with its intents: only an intent
// it cannot read is a reason to stop.
func TestStateFromOlderOrOddFiles(t *testing.T) {
	cfg, err := config.Parse([]byte(`
haproxy: {runtime_api: unix:///tmp/none.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 4}]}
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080}, min_replicas: 1, max_replicas: 2, target: {sessions_per_replica: 5}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, json string
		ok         bool
	}{
		{"older file", `{"version": 3, "services": {"web": {"held": ["slot1"], "draining": {"slot2": "2026-01-01T00:00:00Z"}}}}`, true},
		{"bound without port", `{"version": 3, "services": {"web": {"held": ["slot1"], "bound": {"slot2": "127.0.0.1"}}}}`, true},
		{"bound empty", `{"version": 3, "services": {"web": {"held": ["slot1"], "bound": {"slot2": ""}}}}`, true},
		{"bound null", `{"version": 3, "services": {"web": {"bound": null}}}`, true},
		{"rebuilding null", `{"version": 3, "rebuilding": null, "services": {}}`, true},
		{"an intent unreadable", `{"version": 3, "services": {"web": {"draining": {"slot2": "yesterday"}}}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			lb := runtimeapi.NewFake()
			lb.DeclareBackend("web", "roundrobin")
			lb.DeclareTemplate("web", "slot", 2, netip.MustParseAddrPort("127.0.0.1:9"))
			_, err := scaler.New(scaler.Options{Config: cfg, LB: haproxy.New(lb), StateDir: dir,
				Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
				Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 4, Preferred: true, Engine: fakeengine.New("local", 30000)}}})
			if (err == nil) != tc.ok {
				t.Errorf("New: %v, want ok %t", err, tc.ok)
			}
		})
	}
}
