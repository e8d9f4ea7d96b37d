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
    min_replicas: 0
    max_replicas: 8
    wake: {listen: 127.0.0.1:9311}
    target: {queue_per_replica: 2}
  - name: reports
    slots: {mode: template, prefix: r}
    container: {image: reports:1, port: 9000}
    max_replicas: 2
    target: {sessions_per_replica: 2}
    schedule: {timezone: UTC, outside: {min_replicas: 0, max_replicas: 0}}
    wake: {listen: 127.0.0.1:9312, timeout: 1m}
`

// The rendered backends pass "haproxy -c" and satisfy our own check, in
// both forms: literal placeholders, and the FQDN form a server state file
// can restore addresses for.
func TestRenderAcceptedByHAProxy(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		checkRender(t, "", "server-template slot 1-5 127.0.0.1:9 check disabled")
	})
	t.Run("server state file", func(t *testing.T) {
		checkRender(t, "/var/lib/haproxy/server-state", "load-server-state-from-file global",
			"server-template slot 1-5 slot.invalid:9 check disabled init-addr last,127.0.0.1", "server-state-file /var/lib/haproxy/server-state")
	})
}

func checkRender(t *testing.T, stateFile string, wants ...string) {
	data, err := os.ReadFile("../examples/slotscaler.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(append(data, dynamicService...))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HAProxy.ServerStateFile = stateFile
	var out bytes.Buffer
	if err := templates.RenderBackends(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(wants, "backend echo", "option httpchk GET /healthz", "default-server inter 500ms fastinter 125ms downinter 125ms rise 1 fall 2", "backend api", "balance leastconn", "server wake 127.0.0.1:9311 backup", "timeout server 35s",
		"backend reports", "server-template r 1-2", "server wake 127.0.0.1:9312 backup", "timeout server 65s") {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render output lacks %q:\n%s", want, out.String())
		}
	}
	global := ""
	if stateFile != "" {
		global = "global\n  server-state-file " + filepath.Join(t.TempDir(), "state") + "\n"
	}
	full := global + "defaults\n  mode http\n  timeout client 5s\nfrontend fe\n  bind 127.0.0.1:18080\n  default_backend echo\n" + out.String()
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
