package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
)

func runApp(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).Run(append([]string{"slotscaler"}, args...))
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ec):
		code = ec.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestCheckExampleOK(t *testing.T) {
	out, errOut, code := runApp(t, "check", "--config", "examples/slotscaler.yaml")
	if code != 0 || !strings.Contains(out, "ok (1 services)") {
		t.Errorf("check example: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCheckBadFilePrintsEveryMistake(t *testing.T) {
	_, errOut, code := runApp(t, "check", "--config", "scaler/config/testdata/bad.yaml")
	if code != exitInvalidConfig {
		t.Errorf("exit code %d, want %d", code, exitInvalidConfig)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) < 5 {
		t.Fatalf("want one line per mistake, got:\n%s", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "scaler/config/testdata/bad.yaml: ") || !strings.Contains(l, ": ") {
			t.Errorf("line without file and field path: %q", l)
		}
	}
	if !strings.Contains(errOut, "services[0].schedule.timezone: unknown time zone \"Asia/Dhakka\"") {
		t.Errorf("missing time zone error:\n%s", errOut)
	}
}

func TestCheckAgainstHAProxyConfig(t *testing.T) {
	data, _ := os.ReadFile("examples/slotscaler.yaml")
	cfg := strings.Replace(string(data), "max_replicas: 5\n", "max_replicas: 5\n    slots: {mode: template, prefix: srv}\n", 1)
	cfg = strings.Replace(cfg, "    slots: {mode: template, prefix: slot}\n", "", 1)
	path := filepath.Join(t.TempDir(), "s.yaml")
	cfg = strings.Replace(cfg, "config_file: examples/haproxy.cfg", "config_file: "+filepath.Join(mustAbs(t, "examples"), "haproxy.cfg"), 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runApp(t, "check", "--config", path)
	if code != exitInvalidConfig || !strings.Contains(errOut, `services[0].slots.prefix: backend "echo" has no server-template "srv"`) {
		t.Errorf("code %d, stderr:\n%s", code, errOut)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The example haproxy.cfg, which holds render's output, is valid HAProxy.
func TestExampleHAProxyConfigValid(t *testing.T) {
	if out, err := exec.Command(haproxytest.Binary(t), "-c", "-f", "examples/haproxy.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c examples/haproxy.cfg: %v\n%s", err, out)
	}
	rendered, _, code := runApp(t, "render", "--config", "examples/slotscaler.yaml")
	example, _ := os.ReadFile("examples/haproxy.cfg")
	if code != 0 || !strings.Contains(string(example), strings.TrimSpace(rendered)) {
		t.Errorf("examples/haproxy.cfg does not contain render's current output:\n%s", rendered)
	}
}
