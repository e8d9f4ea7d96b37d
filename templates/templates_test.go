package templates_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/haproxy"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/templates"
)

const dynamicService = `
  - name: api
    slots: {mode: dynamic}
    container: {image: api:1, port: 9000}
    max_replicas: 8
    target: {queue_per_replica: 2}
`

// The rendered backends pass "haproxy -c" and satisfy our own check.
func TestRenderAcceptedByHAProxy(t *testing.T) {
	data, err := os.ReadFile("../examples/slotscaler.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(append(data, dynamicService...))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := templates.RenderBackends(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backend echo", "server-template slot 1-5 127.0.0.1:9 check disabled", "option httpchk GET /healthz", "default-server inter 500ms rise 1 fall 2", "backend api", "balance leastconn"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render output lacks %q:\n%s", want, out.String())
		}
	}
	full := "defaults\n  mode http\n  timeout client 5s\nfrontend fe\n  bind 127.0.0.1:18080\n  default_backend echo\n" + out.String()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(haproxytest.Binary(t), "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejected render output: %v\n%s\n%s", err, b, full)
	}
	parsed, err := haproxy.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Check(parsed, cfg.Services); err != nil {
		t.Errorf("render output fails slotscaler's own check: %v", err)
	}
}
