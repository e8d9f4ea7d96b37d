package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// exampleProgramSection is the commented "program slotscaler" section of
// examples/haproxy.cfg, uncommented, with the binary and config paths
// replaced.
func exampleProgramSection(t testing.TB, binary, config string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var section []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "#program slotscaler" || len(section) > 0 && strings.HasPrefix(line, "#  ") {
			section = append(section, strings.TrimPrefix(line, "#"))
		} else if len(section) > 0 {
			break
		}
	}
	text := strings.Join(section, "\n")
	for _, r := range []struct{ old, new string }{
		{"/usr/local/bin/slotscaler", binary},
		{"/etc/slotscaler/slotscaler.yaml", config},
	} {
		if strings.Count(text, r.old) != 1 {
			t.Fatalf("examples/haproxy.cfg: the commented program section must name %s once; found:\n%s", r.old, text)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	if !strings.Contains(text, "no option start-on-reload") {
		t.Fatalf("examples/haproxy.cfg: the program section lacks \"no option start-on-reload\":\n%s", text)
	}
	return text + "\n"
}

// setStartOnReload turns the program's "no option start-on-reload" into
// "option start-on-reload" in haproxy.cfg, or back.
func setStartOnReload(t testing.TB, cfg string, on bool) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	from, to := "  no option start-on-reload", "  option start-on-reload"
	if !on {
		from, to = to, from
	}
	if !strings.Contains(string(data), from) {
		t.Fatalf("%s has no %q", cfg, from)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// exitedCleanly is the master's log line for a program that exited 0.
func exitedCleanly(pid int) string {
	return fmt.Sprintf("'slotscaler' (%d) exited with code 0", pid)
}

// alive reports whether pid is a running process (not gone, not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// TestRunUnderHAProxy runs slotscaler the way the README puts first: as
// the "program slotscaler" section of examples/haproxy.cfg, started by
// HAProxy's master ("haproxy -W -S master.sock"). The master starts it; a
// real Prometheus scrapes it and HAProxy's exporter; a master "reload"
// under load leaves the same slotscaler process running, the slots
// serving and no request failed; SIGTERM and one reload with
// "option start-on-reload" replace the process (an upgrade); stopping the
// master stops slotscaler (exit 0) and leaves the containers, which the next start
// finds again.
func TestRunUnderHAProxy(t *testing.T) {
	sockets := t.TempDir()
	adminSocket := filepath.Join(sockets, "admin.sock") // known before HAProxy starts: the program's config names it
	stateFile := filepath.Join(sockets, "server-state")
	exporter := fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	var apiAddr string
	e := newEnvOn(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].MinReplicas = 2
		c.HAProxy.ServerStateFile = stateFile
	}, func(e *env, global, body string) *haproxytest.HAProxy {
		var cfgPath string
		cfgPath, apiAddr = e.writeConfigFor(adminSocket)
		global += "\n  stats socket " + adminSocket + " mode 600 level admin"
		body += fmt.Sprintf("\nfrontend stats\n  bind %s\n  http-request use-service prometheus-exporter if { path /metrics }\n\n", exporter)
		return haproxytest.StartMaster(e.t, global, body+exampleProgramSection(e.t, slotscalerBinary(e.t), cfgPath))
	})
	h := e.haproxy
	program := func() haproxytest.Program {
		t.Helper()
		var found []haproxytest.Program
		for _, p := range h.Programs(t) {
			if p.Name == "slotscaler" {
				found = append(found, p)
			}
		}
		if len(found) != 1 {
			t.Fatalf("show proc lists %d slotscaler programs, want 1: %+v", len(found), found)
		}
		return found[0]
	}
	first := program()
	var started []int // every slotscaler the master started, killed at the end if one is left
	started = append(started, first.PID)
	t.Cleanup(func() {
		for _, pid := range started {
			if alive(pid) { // only if the master did not stop it
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	took := e.waitFor("2 replicas serving, started by slotscaler under HAProxy", 40*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	t.Logf("master started slotscaler (pid %d); 2 replicas serving %s later", first.PID, took.Round(time.Millisecond))

	e.scrapeWithPrometheus(apiAddr, exporter)

	load := loadgen.Start(context.Background(), e.url, 4)
	defer load.Stop()
	time.Sleep(500 * time.Millisecond)
	containers := e.running()
	before := e.info()
	h.ReloadMaster(t)
	took = e.waitFor("slots serving after the master reload", 15*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	after := program()
	t.Logf("master reload: worker pid %d -> %d; slotscaler pid %d -> %d (old program: %v); 2 slots serving %s later",
		before.PID, e.info().PID, first.PID, after.PID, after.Old, took.Round(time.Millisecond))
	if after.PID != first.PID || !alive(first.PID) {
		t.Fatalf("slotscaler pid %d after the reload, want the same process %d still running", after.PID, first.PID)
	}
	time.Sleep(time.Second) // slotscaler sees the new worker; nothing may churn
	if now := e.running(); !mapsEqualKeys(containers, now) || !e.converged() {
		t.Errorf("containers churned across the master reload: before %d after %d", len(containers), len(now))
	}
	e.assertNoFailures(load)

	// Its log is the master's stderr (the journal under systemd).
	if log := h.Log(); !strings.Contains(log, `"service":"`+e.service+`"`) {
		t.Errorf("slotscaler's JSON log lines not in the master's output:\n%s", log)
	}

	// Upgrade: a reload keeps the old process, so a new binary needs the
	// program restarted: SIGTERM to it, then one reload with
	// "option start-on-reload".
	if err := syscall.Kill(first.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.waitFor("slotscaler exits 0 on SIGTERM, as the master logs", 15*time.Second, func() bool { return strings.Contains(h.Log(), exitedCleanly(first.PID)) })
	if s := e.slots(); s.serving != 2 || alive(first.PID) {
		t.Fatalf("after slotscaler's SIGTERM: %d serving, want 2; still running: %v", s.serving, alive(first.PID))
	}
	setStartOnReload(t, h.Config, true)
	h.ReloadMaster(t)
	setStartOnReload(t, h.Config, false)
	upgraded := program()
	started = append(started, upgraded.PID)
	took = e.waitFor("slots serving after the upgrade", 15*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	t.Logf("upgrade: slotscaler pid %d stopped with SIGTERM, pid %d started by a reload with option start-on-reload; 2 slots serving %s later", first.PID, upgraded.PID, took.Round(time.Millisecond))
	if upgraded.PID == first.PID || upgraded.Old {
		t.Fatalf("after the reload with start-on-reload: %+v, want a new slotscaler", upgraded)
	}

	h.Stop()
	if alive(upgraded.PID) {
		t.Fatalf("slotscaler (pid %d) still runs after the master stopped", upgraded.PID)
	}
	if !strings.Contains(h.Log(), exitedCleanly(upgraded.PID)) {
		t.Errorf("the master's log lacks %q: slotscaler did not exit 0 when HAProxy stopped", exitedCleanly(upgraded.PID))
	}
	if now := e.running(); !mapsEqualKeys(containers, now) {
		t.Fatalf("containers changed when HAProxy and slotscaler stopped: before %d after %d", len(containers), len(now))
	}
	t.Logf("master stopped: slotscaler (pid %d) gone, %d containers left running", upgraded.PID, len(containers))

	h.Restart(t)
	again := program()
	started = append(started, again.PID)
	took = e.waitFor("containers found again after the start", 20*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	t.Logf("master started again: slotscaler pid %d bound the %d running containers %s later", again.PID, len(containers), took.Round(time.Millisecond))
	steady := loadgen.Start(context.Background(), e.url, 2)
	time.Sleep(time.Second) // several ticks of the new slotscaler
	if now := e.running(); !mapsEqualKeys(containers, now) || !e.converged() {
		t.Errorf("containers changed across the stop and start: before %d after %d", len(containers), len(now))
	}
	e.assertNoFailures(steady)
}

// TestProgramErrorStopsHAProxy records HAProxy's side of the bargain: a
// program that exits with an error before the master's first reload
// (here slotscaler on a config file that does not exist: exit 2) makes the
// master stop every worker too ("exit-on-failure"), which is why the
// README has slotscaler's config checked before HAProxy starts.
func TestProgramErrorStopsHAProxy(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	program := exampleProgramSection(t, slotscalerBinary(t), filepath.Join(dir, "missing.yaml"))
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global
  stats socket %s/admin.sock mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend public
  bind 127.0.0.1:%d
  http-request return status 200

%s`, dir, haproxytest.FreePort(t), program), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &haproxytest.SyncBuffer{}
	cmd := exec.Command(haproxytest.Binary(t), "-W", "-db", "-S", filepath.Join(dir, "master.sock"), "-f", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		t.Fatalf("haproxy still ran 20 s after slotscaler failed; log:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "'slotscaler'") || !strings.Contains(log.String(), "exit-on-failure") {
		t.Errorf("want slotscaler's exit and exit-on-failure in the master's log:\n%s", log.String())
	}
}
