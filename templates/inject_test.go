package templates_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/templates"
)

// injectDoc is the config tests' small valid file, with a server state file.
var injectDoc = strings.Replace(mustRead("../scaler/config/testdata/small.yaml"),
	"haproxy: {runtime_api: /run/haproxy.sock}", "haproxy: {runtime_api: /run/haproxy.sock, server_state_file: /var/lib/haproxy/state}", 1)

func mustRead(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// Hostile values are refused by validation (with their path) and, put into
// a config that skipped validation, make render fail and write nothing:
// no value adds a line to haproxy.cfg.
func TestRenderRefusesInjection(t *testing.T) {
	for _, tt := range []struct {
		name, from, to, path string
		mutate               func(*config.Config)
	}{
		{"check.path newline", "path: /healthz", `path: "/healthz\nbackend evil\n  server x 10.0.0.1:80"`, "services[0].check.path",
			func(c *config.Config) { c.Services[0].Check.Path = "/healthz\nbackend evil\n  server x 10.0.0.1:80" }},
		{"check.path comment", "path: /healthz", `path: "/h #x"`, "services[0].check.path",
			func(c *config.Config) { c.Services[0].Check.Path = "/h #x" }},
		{"server_state_file newline", "server_state_file: /var/lib/haproxy/state", `server_state_file: "/s\nfrontend evil"`, "haproxy.server_state_file",
			func(c *config.Config) { c.HAProxy.ServerStateFile = "/s\nfrontend evil" }},
		{"service name newline", "name: web", `name: "web\nbackend evil"`, "services[0].name",
			func(c *config.Config) { c.Services[0].Name = "web\nbackend evil" }},
		{"backend quote", "name: web", "name: web\n    backend: \"web'x\"", "services[0].backend",
			func(c *config.Config) { c.Services[0].Backend = "web'x" }},
		{"slot prefix space", "name: web", "name: web\n    slots: {prefix: \"s 1-9 10.0.0.1:80\"}", "services[0].slots.prefix",
			func(c *config.Config) { c.Services[0].Slots.Prefix = "s 1-9 10.0.0.1:80" }},
		{"check.inter 1ns", "inter: 1s", "inter: 1ns", "services[0].check.inter",
			func(c *config.Config) { c.Services[0].Check.Inter.Duration = time.Nanosecond }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hostile := strings.Replace(injectDoc, tt.from, tt.to, 1)
			if _, err := config.Parse([]byte(hostile)); err == nil || !strings.Contains(err.Error(), tt.path+": ") {
				t.Errorf("validation: error = %v, want one naming %s", err, tt.path)
			}
			cfg, err := config.Parse([]byte(injectDoc))
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(cfg)
			var out bytes.Buffer
			if err := templates.RenderBackends(&out, cfg); err == nil {
				t.Errorf("render accepted the hostile value:\n%s", out.String())
			}
			if out.Len() != 0 {
				t.Errorf("render wrote output before failing:\n%s", out.String())
			}
		})
	}
}

// renderLine is every shape of line render writes: blank, comment, a
// backend header, one indented directive of words that render uses (no
// "server", "bind" or "use_backend" a value could sneak in), or the wake
// listener's backup server at an ip:port.
var renderLine = regexp.MustCompile(`^(|#.*|backend [!$-&(-\[\]-~]+|  #.*|  server wake [0-9a-fA-F.:\[\]]+ backup|` +
	`  (mode|balance|option|retries|retry-on|timeout|http-check|default-server|load-server-state-from-file|server-template)( [!$-&(-\[\]-~]+)+)$`)

// FuzzRender: whatever config is accepted renders to lines of known shapes,
// one backend header per service, and never a line of another shape.
func FuzzRender(f *testing.F) {
	if data, err := os.ReadFile("../examples/slotscaler.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(injectDoc))
	f.Add([]byte(strings.Replace(injectDoc, "/healthz", `"/h?a=1&b=%20"`, 1)))
	f.Add([]byte(strings.Replace(injectDoc, "name: web", "name: web\n    slots: {mode: dynamic, prefix: s}", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := templates.RenderBackends(&out, cfg); err != nil {
			t.Fatalf("accepted config does not render: %v", err)
		}
		backends := 0
		for line := range strings.SplitSeq(out.String(), "\n") {
			if !renderLine.MatchString(line) {
				t.Fatalf("render wrote a line of unknown shape %q:\n%s", line, out.String())
			}
			if strings.HasPrefix(line, "backend ") {
				backends++
			}
		}
		if backends != len(cfg.Services) {
			t.Fatalf("%d backend lines for %d services:\n%s", backends, len(cfg.Services), out.String())
		}
	})
}
