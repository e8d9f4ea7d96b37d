// Package examples_test proves the example files with the real tool each
// one is written for: nginx -t, systemd-analyze verify and docker-compose
// config. (haproxy.cfg is checked with haproxy -c in main_test.go and run
// under HAProxy's master in e2e; prometheus.yml, alerts.yml and the
// dashboard by promtool in scaler/metrics and a real Prometheus in e2e.)
package examples_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/internal/nginxtest"
	"github.com/slotscaler/slotscaler/internal/tooltest"
)

// The nginx front passes "nginx -t" with a test certificate and every
// path in a temp directory.
func TestNginxFrontExample(t *testing.T) {
	t.Parallel()
	out := nginxtest.Write(t, "127.0.0.1:8088").Check(t)
	if !strings.Contains(out, "syntax is ok") || !strings.Contains(out, "test is successful") || strings.Contains(out, "[warn]") {
		t.Errorf("nginx -t output:\n%s", out)
	}
}

// The systemd unit passes "systemd-analyze verify" without a warning, with
// its binary path pointing at an executable here. verify checks that each
// command is an executable file and runs none: the test binary serves
// (building slotscaler would add 15 s to make test).
func TestSystemdUnitExample(t *testing.T) {
	t.Parallel()
	analyze := tooltest.Path(t, "systemd-analyze", "systemd")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit, err := os.ReadFile("systemd/slotscaler.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/slotscaler run") {
		t.Fatal("systemd/slotscaler.service: ExecStart no longer runs /usr/local/bin/slotscaler (the test substitutes it)")
	}
	path := filepath.Join(dir, "slotscaler.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/slotscaler", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	// The unit Requires=docker.service, which Debian's docker.io installs;
	// where the engine came another way, a stub unit stands in for it.
	if !dockerUnitInstalled() {
		stubs := t.TempDir()
		if err := os.WriteFile(filepath.Join(stubs, "docker.service"), []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+stubs+":") // the trailing ":" keeps the usual path
	}
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func dockerUnitInstalled() bool {
	for _, dir := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, "docker.service")); err == nil {
			return true
		}
	}
	return false
}

// The compose file passes "docker-compose config".
func TestComposeExample(t *testing.T) {
	t.Parallel()
	compose := tooltest.Path(t, "docker-compose", "docker-compose")
	cmd := exec.Command(compose, "-f", "compose.yaml", "config", "-q")
	cmd.Env = append(os.Environ(), "SLOTSCALER_CI_TOKEN=compose-test-token-0123")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker-compose config: %v\n%s", err, out)
	}
}

// The README's Monitoring section counts the alert rules and the
// dashboard's queries that the real Prometheus evaluates in e2e
// (TestRunUnderHAProxy); the counts must be the files' own.
func TestReadmeCountsMonitoringExamples(t *testing.T) {
	t.Parallel()
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(data)), " ") // lines wrap anywhere in the README
	}
	readme := read("../README.md")
	for _, want := range []string{
		fmt.Sprintf("the %d alert rules", strings.Count(read("alerts.yml"), "- alert:")),
		fmt.Sprintf("the dashboard's %d queries", strings.Count(read("grafana-dashboard.json"), `"expr":`)),
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}
