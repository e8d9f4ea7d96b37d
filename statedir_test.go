package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/imagebuild"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/statedir"
)

// lockConfig is a config "run" starts with and that touches nothing: its
// runtime API and Docker host do not exist (the loop only logs and retries).
const lockConfig = `
haproxy: {runtime_api: unix://{{DIR}}/no-haproxy.sock}
state_dir: {{DIR}}/state
api: {listen: "127.0.0.1:0"}
docker: {hosts: [{name: local, endpoint: unix://{{DIR}}/no-docker.sock, max_containers: 2}]}
interval: 1s
services:
  - {name: locked, backend: locked, container: {image: slotscaler-echo:test, port: 8080}, min_replicas: 1, max_replicas: 2, target: {sessions_per_replica: 5}}
`

// TestRunOneInstancePerStateDir runs the real binary twice on one
// state_dir: the second exits 1 naming the first one's PID; once the first
// is killed, a new instance takes the state_dir over and stops cleanly.
func TestRunOneInstancePerStateDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	binary, err := imagebuild.GoBinary(ctx, ".", ".", "-X main.version=lock-test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "slotscaler")
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slotscaler.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(lockConfig, "{{DIR}}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}

	first := startRun(t, bin, path)
	out, err := exec.CommandContext(ctx, bin, "run", "--config", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second run: err %v, want exit 1; output:\n%s", err, out)
	}
	t.Logf("second run: %s", out)
	want := fmt.Sprintf("in use by another slotscaler (pid %d;", first.cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Errorf("second run said %q, want it to name the holder: %q", out, want)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "state", statedir.LockFile)); strings.TrimSpace(string(data)) != strconv.Itoa(first.cmd.Process.Pid) {
		t.Errorf("lock file holds %q, want the first instance's pid %d", data, first.cmd.Process.Pid)
	}
	// check passes next to the running instance and says why run would not.
	out, err = exec.CommandContext(ctx, bin, "check", "--config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("warning: state_dir: %s is in use now by another slotscaler (pid %d)", filepath.Join(dir, "state"), first.cmd.Process.Pid)) {
		t.Errorf("check next to the instance: %v\n%s", err, out)
	}
	// A dry run takes no lock: it may watch next to the running instance.
	dry, dryCancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer dryCancel()
	out, _ = exec.CommandContext(dry, bin, "run", "--config", path, "--dry-run").CombinedOutput()
	if strings.Contains(string(out), "in use") || !strings.Contains(string(out), "slotscaler running") {
		t.Errorf("dry run next to the instance:\n%s", out)
	}

	// However the holder ends, even by SIGKILL, the kernel drops its lock.
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.done <- <-first.done // wait for the exit; the cleanup reads done again
	third := startRun(t, bin, path)
	third.stop(t)
}

type runProcess struct {
	cmd  *exec.Cmd
	logs *haproxytest.SyncBuffer
	done chan error
}

// startRun starts "slotscaler run" and waits until it says it is running.
func startRun(t *testing.T, bin, path string) *runProcess {
	t.Helper()
	p := &runProcess{cmd: exec.Command(bin, "run", "--config", path), logs: &haproxytest.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.logs.String(), "slotscaler running") {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("run exited early (%v):\n%s", err, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not running within 20s:\n%s", p.logs.String())
		}
	}
	return p
}

// stop ends the process with SIGTERM and expects a clean exit.
func (p *runProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("run ended with %v:\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop within 30s of SIGTERM:\n%s", p.logs.String())
	}
}

// TestRunLabelsWithStateDirValues runs "slotscaler run" against a real
// haproxy and the real engine: the container it starts carries the owner
// ID kept in state_dir and the generation HMAC under the key kept there,
// both files generated 0600.
func TestRunLabelsWithStateDirValues(t *testing.T) {
	dockertest.BuildEcho(t)
	raw := dockertest.Client(t)
	service := dockertest.ServiceName(t, "owned")
	dockertest.RemoveAll(t, raw, service)
	h, path := haproxyFor(t, runYAML(service, `{image: slotscaler-echo:test, port: 8080, env: {SECRET: "1234"}}`, 1, 2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &haproxytest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- newApp(io.Discard, logs).RunContext(ctx, []string{"slotscaler", "run", "--config", path, "--log-format", "text"})
	}()
	var labels map[string]string // of the first container, read while it exists
	for deadline := time.Now().Add(30 * time.Second); labels == nil; time.Sleep(100 * time.Millisecond) {
		if list := dockertest.Containers(t, raw, service); len(list) > 0 {
			labels = list[0].Labels
		} else if time.Now().After(deadline) {
			t.Fatalf("no container within 30s:\n%s", logs.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}

	stateDir := filepath.Join(h.Dir, "state")
	read := func(name string) string {
		t.Helper()
		fi, err := os.Stat(filepath.Join(stateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(filepath.Join(stateDir, name))
		return strings.TrimSpace(string(data))
	}
	owner, key := read(statedir.OwnerFile), read(statedir.GenerationKeyFile)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if labels[scaler.LabelOwner] != owner || owner == "" {
		t.Errorf("owner label %q, want %q from state_dir", labels[scaler.LabelOwner], owner)
	}
	if want := scaler.Generation([]byte(key), cfg.Services[0].Container); labels[scaler.LabelGeneration] != want {
		t.Errorf("generation label %q, want the HMAC %q under state_dir's key", labels[scaler.LabelGeneration], want)
	}
}

// runYAML is a config for "run" tests on the real engine: service with
// container (YAML flow), min and max replicas, behind the haproxy of
// haproxyFor ({{DIR}}).
func runYAML(service, container string, min, max int) string {
	return fmt.Sprintf(`
haproxy: {runtime_api: unix://{{DIR}}/admin.sock}
state_dir: {{DIR}}/state
api: {listen: "127.0.0.1:0"}
docker: {hosts: [{name: local, endpoint: %s, max_containers: 100}]}  # other tests share the engine
interval: 100ms
services:
  - {name: %[2]s, backend: %[2]s, container: %[3]s, min_replicas: %[4]d, max_replicas: %[5]d, target: {sessions_per_replica: 5}}
`, dockertest.Endpoint, service, container, min, max)
}
