package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// goBinary builds a main package of this module as name, once per test
// process, and returns the binary's path.
func goBinary(t testing.TB, pkg, name string) string {
	t.Helper()
	b, _ := binaries.LoadOrStore(pkg, &binary{})
	bin := b.(*binary)
	bin.once.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-bin")
		if err != nil {
			bin.err = err
			return
		}
		bin.path = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bin.path, pkg).CombinedOutput(); err != nil {
			bin.err = errors.New(string(out))
		}
	})
	if bin.err != nil {
		t.Fatalf("go build %s: %v", pkg, bin.err)
	}
	return bin.path
}

type binary struct {
	once sync.Once
	path string
	err  error
}

var binaries sync.Map // package -> *binary

// slotscalerBinary builds the real sidecar once per test process.
func slotscalerBinary(t testing.TB) string { return goBinary(t, "..", "slotscaler") }

// sidecar is "slotscaler run" as a process of the test.
type sidecar struct {
	cmd    *exec.Cmd
	events chan map[string]any // every JSON log line
	done   chan struct{}
}

// writeConfig writes the env's config for the real binary.
func (e *env) writeConfig() string {
	path, _ := e.writeConfigFor(e.haproxy.Socket)
	return path
}

// writeConfigFor writes the env's config for the real binary, talking to
// the stats socket at socket, and returns its path and the API address.
func (e *env) writeConfigFor(socket string) (path, apiAddr string) {
	cfg := *e.cfg
	cfg.HAProxy = config.HAProxy{RuntimeAPI: config.StringList{"unix://" + socket}, ServerStateFile: e.cfg.HAProxy.ServerStateFile}
	cfg.StateDir = e.stateDir
	apiAddr = fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(e.t))
	cfg.API = config.API{Listen: apiAddr}
	data, err := yaml.Marshal(&cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	path = filepath.Join(e.stateDir, "slotscaler.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path, apiAddr
}

func (e *env) startSidecar(config string) *sidecar {
	cmd := exec.Command(slotscalerBinary(e.t), "run", "--config", config, "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	s := &sidecar{cmd: cmd, events: make(chan map[string]any, 10000), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(e.logs, sc.Text())
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case s.events <- rec:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	e.t.Cleanup(s.kill)
	return s
}

// kill is kill -9.
func (s *sidecar) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// killOn kills the sidecar the moment it logs a line whose key is value.
func (e *env) killOn(s *sidecar, key, value string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case rec := <-s.events:
			if rec[key] == value {
				s.kill()
				e.t.Logf("kill -9 slotscaler as it logs %s=%q (slot %v)", key, value, rec["slot"])
				return
			}
		case <-deadline:
			e.t.Fatalf("no log line with %s=%q within %s", key, value, timeout)
		}
	}
}

// TestSidecarCrash kills slotscaler with SIGKILL while it places, starts
// and drains containers. Each time a new process converges: every running
// container bound (or drained and removed), no slot pointing at a dead
// address, the count back to what the load asks for; no request fails.
func TestSidecarCrash(t *testing.T) {
	e := newEnv(t, config.ModeTemplate)
	cfgPath := e.writeConfig()
	s := e.startSidecar(cfgPath)
	e.waitFor("min replicas serving", 30*time.Second, func() bool { return e.slots().serving == 1 })
	steady := loadgen.Start(context.Background(), e.url, 2)
	defer steady.Stop()
	var failed []loadgen.Result

	phase := func(name, key, value string, workers int, settled func() bool) {
		var step *loadgen.Run
		if workers > 0 {
			step = loadgen.Start(context.Background(), e.url, workers)
		}
		e.killOn(s, key, value, 30*time.Second)
		s = e.startSidecar(cfgPath)
		took := e.waitFor(name+": converged after the restart", 40*time.Second, func() bool { return settled() && e.converged() })
		t.Logf("%s: converged %s after the restart", name, took.Round(time.Millisecond))
		if step != nil {
			failed = append(failed, step.Stop())
		}
	}
	// Killed as it decides to scale up, before or while placing.
	phase("during placement", "event", "scale_up", 24, func() bool { return e.slots().serving >= 3 })
	// Back to one replica, then killed while a drain is under way.
	phase("during a drain", "event", "drain", 0, func() bool { s := e.slots(); return s.serving == 1 && s.other == 0 && e.containers() == 1 })
	// Killed after a container started, before its slot was bound.
	phase("during a scale-up", "msg", "container started", 24, func() bool { return e.slots().serving >= 3 })

	failed = append(failed, steady.Stop())
	total, bad := 0, 0
	for _, r := range failed {
		total += r.OK + r.Failed
		bad += r.Failed
		if r.Failed > 0 {
			t.Errorf("failed requests: %v", r.Errors)
		}
	}
	t.Logf("%d requests across three kill -9, %d failed", total, bad)
}
