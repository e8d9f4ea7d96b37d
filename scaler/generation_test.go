package scaler_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// The generation label is an HMAC: the same spec and key give the same
// label, another key another label, and without the key the label cannot
// be recomputed from a guessed env value (the plain SHA-256 it replaced
// could).
func TestGenerationIsKeyed(t *testing.T) {
	c := config.Container{Image: "web:1", Port: 8080, Env: map[string]string{"DB_PASSWORD": "1234"}}
	key := []byte("0123456789abcdef0123456789abcdef")
	g := scaler.Generation(key, c)
	if len(g) != 12 {
		t.Fatalf("generation %q: want 12 hex digits", g)
	}
	if again := scaler.Generation(key, c); again != g {
		t.Errorf("same spec and key: %q then %q", g, again)
	}
	if other := scaler.Generation([]byte("another key"), c); other == g {
		t.Errorf("another key gave the same label %q", g)
	}
	guess := c
	guess.Env = map[string]string{"DB_PASSWORD": "1235"}
	if scaler.Generation(key, guess) == g {
		t.Errorf("another env value gave the same label")
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	if unkeyed := hex.EncodeToString(sum[:6]); unkeyed == g {
		t.Errorf("label %q is the unkeyed SHA-256 of the spec", g)
	}
}

// The loop labels the containers it starts with the key of its Options.
func TestLoopLabelsWithGenerationKey(t *testing.T) {
	cfg, err := config.Parse([]byte(`
haproxy: {runtime_api: unix:///tmp/none.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 4}]}
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080, env: {TOKEN: abc}}, min_replicas: 1, max_replicas: 2, target: {sessions_per_replica: 5}}
`))
	if err != nil {
		t.Fatal(err)
	}
	engine := fakeengine.New("local", 30000)
	lb := fakeWeb(engine, 2)
	key := []byte("kept-in-state-dir")
	stateDir := t.TempDir()
	loop, err := scaler.New(scaler.Options{Config: cfg, LB: haproxy.New(lb), StateDir: stateDir, GenerationKey: key,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 4, Preferred: true, Engine: engine}}})
	if err != nil {
		t.Fatal(err)
	}
	loop.Tick(context.Background())
	loop.Wait()
	list, _ := engine.Containers(context.Background())
	if len(list) != 1 {
		t.Fatalf("%d containers after the first tick, want 1", len(list))
	}
	if want := scaler.Generation(key, cfg.Services[0].Container); list[0].Generation != want {
		t.Errorf("container generation %q, want the keyed %q", list[0].Generation, want)
	}
	// The bind was recorded in state.json, which only slotscaler reads.
	if fi, err := os.Stat(filepath.Join(stateDir, "state.json")); err != nil {
		t.Errorf("state.json not written: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v, want 0600", fi.Mode().Perm())
	}
}
