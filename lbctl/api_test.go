package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler/api"
)

const testToken = "lbctl-test-token-0123456789"

// apiFixture runs a real loop over the in-memory HAProxy and Docker host,
// behind the real API.
func apiFixture(t *testing.T) (run func(args ...string) (string, error), engine *fakeengine.Engine) {
	f := newAPIFixture(t, scalertest.Options{})
	return f.run, f.engine
}

type lbctlFixture struct {
	run     func(args ...string) (string, error) // lbctl with --api and --token-file set
	url     string                               // the API's
	engine  *fakeengine.Engine
	mu      sync.Mutex
	reached []string // method and escaped path of every request the API got
	reloads atomic.Int32
}

// fixtureConfig is the config of the API fixture: one service web.
const fixtureConfig = `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
interval: 100ms
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080}, min_replicas: 2, max_replicas: 4, unhealthy_after: 300ms, target: {sessions_per_replica: 10}}
`

func newAPIFixture(t *testing.T, o scalertest.Options) *lbctlFixture {
	return newAPIFixtureFor(t, fixtureConfig, "replicas 2 serving", o)
}

// newAPIFixtureFor is newAPIFixture with another config; it is ready once
// "lbctl status web" says ready.
func newAPIFixtureFor(t *testing.T, config, ready string, o scalertest.Options) *lbctlFixture {
	lf := &lbctlFixture{}
	f := scalertest.New(t, config, o)
	loop, engine := f.Loop, f.Engine
	lf.engine = engine
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	reload := func() error { lf.reloads.Add(1); return nil }
	handler := api.New(loop, f.Config, api.Secrets{Tokens: []api.Token{{Name: "ci", Value: testToken, Role: api.Admin}}}, nil, reload, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lf.mu.Lock()
		lf.reached = append(lf.reached, r.Method+" "+r.URL.EscapedPath())
		lf.mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	lf.url = srv.URL
	run := func(args ...string) (string, error) {
		return runLbctl(append([]string{"--api", srv.URL, "--token-file", tokenFile}, args...)...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := run("status", "web")
		if strings.Contains(out, ready) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never said %q:\n%s", ready, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lf.run = run
	return lf
}

// runLbctl runs lbctl with args and returns what it printed.
func runLbctl(args ...string) (string, error) {
	var out bytes.Buffer
	app := newApp(&out)
	err := app.Run(interspersed(app, append([]string{"lbctl"}, args...)))
	return out.String(), err
}

func TestAPIStatusScalePauseEvents(t *testing.T) {
	run, _ := apiFixture(t)
	out, err := run("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SERVICE web  backend web (template)  image web:1", "SLOT", "CONTAINER", "slot1", "serving", "127.0.0.1:300"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if out, err = run("scale", "web", "3"); err != nil || out != "web: pinned at 3 replicas until resume\n" {
		t.Fatalf("scale: %q %v", out, err)
	}
	if out, err = run("resume", "web"); err != nil || out != "web: auto\n" {
		t.Fatalf("resume: %q %v", out, err)
	}
	if out, err = run("pause", "web"); err != nil || !strings.HasPrefix(out, "web: paused at ") {
		t.Fatalf("pause: %q %v", out, err)
	}
	if out, err = run("drain", "web/slot1", "--wait", "--timeout", "5s"); err != nil || !strings.Contains(out, "web/slot1: drained") {
		t.Fatalf("drain --wait: %q %v", out, err)
	}
	if out, err = run("enable", "web/slot1"); err != nil {
		t.Fatalf("enable: %q %v", out, err)
	}
	if out, err = run("events", "web"); err != nil || !strings.Contains(out, "operator_drain") || !strings.Contains(out, "TIME") {
		t.Fatalf("events: %q %v", out, err)
	}
	if out, err = run("-o", "json", "status", "web"); err != nil || !strings.Contains(out, `"backend": "web"`) {
		t.Fatalf("status json: %q %v", out, err)
	}
	if _, err = run("scale", "nope", "1"); exitCode(err) != exitFailed || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err = run("scale", "web", "many"); exitCode(err) != exitUsage {
		t.Errorf("bad N: %v", err)
	}
}

func TestAPIRolloutWait(t *testing.T) {
	run, engine := apiFixture(t)
	out, err := run("rollout", "web", "--image", "web:2", "--wait", "--timeout", "20s")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	if imgs := engine.Images(); imgs["web:2"] != 2 || len(imgs) != 1 {
		t.Fatalf("images after rollout: %v", imgs)
	}
	engine.Mu.Lock()
	engine.SickImages["web:bad"] = true
	engine.Mu.Unlock()
	out, err = run("rollout", "web", "--image", "web:bad", "--wait", "--timeout", "20s")
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), "rolled_back") {
		t.Fatalf("bad rollout: exit %d %v\n%s", exitCode(err), err, out)
	}
}

func TestAPIUnreachableAndNoToken(t *testing.T) {
	var out bytes.Buffer
	t.Setenv("SLOTSCALER_TOKEN", "")
	err := newApp(&out).Run([]string{"lbctl", "--api", "http://127.0.0.1:1", "status"})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "SLOTSCALER_TOKEN") {
		t.Errorf("no token: exit %d %v", exitCode(err), err)
	}
	t.Setenv("SLOTSCALER_TOKEN", testToken)
	err = newApp(&out).Run([]string{"lbctl", "--api", "http://127.0.0.1:1", "status"})
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("unreachable: exit %d %v", exitCode(err), err)
	}
}

// TestGitLabDeployJob runs the lbctl lines of examples/gitlab-ci.yml as
// the job's shell would, with its CI/CD variables set (SLOTSCALER_TOKEN in
// the environment, not on the command line), against the real API: the
// rollout succeeds and status shows the new image. GitLab itself is not run.
func TestGitLabDeployJob(t *testing.T) {
	f := newAPIFixture(t, scalertest.Options{})
	data, err := os.ReadFile("../examples/gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLOTSCALER_TOKEN", testToken)
	vars := map[string]string{"SLOTSCALER_API": f.url, "IMAGE": "web:2"}
	var outs []string
	for _, line := range strings.Split(string(data), "\n") {
		command, ok := strings.CutPrefix(strings.TrimSpace(line), "- lbctl ")
		if !ok {
			continue
		}
		expanded := os.Expand(command, func(name string) string {
			v, ok := vars[name]
			if !ok {
				t.Fatalf("examples/gitlab-ci.yml: %q uses $%s, which the test does not set", line, name)
			}
			return v
		})
		// The job quotes its variables; their values here hold no space.
		out, err := runLbctl(strings.Fields(strings.ReplaceAll(expanded, `"`, ""))...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		outs = append(outs, out)
	}
	if len(outs) != 2 || !strings.Contains(outs[0], "succeeded") || !strings.Contains(outs[1], "image web:2") {
		t.Errorf("the deploy job's lbctl lines printed:\n%s", strings.Join(outs, "\n"))
	}
}
