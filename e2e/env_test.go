package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
	"github.com/slotscaler/slotscaler/templates"
)

// serviceYAML is the service under test with short intervals; %s are the
// service name, the slot mode and extra keys.
const serviceYAML = `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 100}]}  # tests of other packages share the engine
interval: 200ms
services:
  - name: %[1]s
    backend: %[1]s
    slots: {mode: %[2]s, prefix: slot}
    container: {image: %[3]s, port: 8080, env: {ECHO_DELAY: 50ms, ECHO_ADMIN: "1"}, memory: 64m}
    check: {path: /healthz, inter: 200ms, rise: 1, fall: 2}
    min_replicas: 1
    max_replicas: 4
    max_scale_up: 2
    target: {sessions_per_replica: 4}
    stabilization: {scale_down: 3s}
    cooldown: {scale_up: 0s, scale_down: 1s}
    drain_timeout: 5s
    unhealthy_after: 10s
`

type env struct {
	t        testing.TB
	service  string
	cfg      *config.Config
	haproxy  *haproxytest.HAProxy
	lb       *runtimeapi.Client
	docker   *client.Client
	engine   scaler.Engine
	local    *docker.Engine // the local engine, never swapped: how the tests list containers
	url      string
	stateDir string
	backends string               // the rendered backend sections
	mirrors  []*runtimeapi.Client // more HAProxy instances the loop keeps in step with this one
	logs     *haproxytest.SyncBuffer
	wake     wakeFixture // scale to zero (issue 13): wake_test.go
}

// newEnv builds the echo image, renders the service's backend with
// "slotscaler render", and starts haproxy with it behind a frontend.
func newEnv(t testing.TB, mode string) *env {
	return newEnvWith(t, mode, nil)
}

// newEnvWith is newEnv with the service config adjusted by tune.
func newEnvWith(t testing.TB, mode string, tune func(*config.Config)) *env {
	t.Helper()
	return newEnvOn(t, mode, tune, startGlobal)
}

// startGlobal starts haproxy in the test with global lines and body.
func startGlobal(e *env, global, body string) *haproxytest.HAProxy {
	return haproxytest.StartGlobal(e.t, global, body)
}

// newEnvNamed is newEnvWith for a given service name: two envs of one name
// are two HAProxy instances whose services share the name on one engine.
func newEnvNamed(t testing.TB, mode, service string, tune func(*config.Config)) *env {
	t.Helper()
	return newEnvAt(t, mode, service, tune, startGlobal)
}

// newEnvEdited is newEnvWith with the haproxy.cfg body (frontend and
// rendered backends) changed by edit before haproxy starts.
func newEnvEdited(t testing.TB, mode string, tune func(*config.Config), edit func(body string) string) *env { // wake (issue 13)
	t.Helper()
	return newEnvOn(t, mode, tune, func(e *env, global, body string) *haproxytest.HAProxy {
		if edit != nil {
			body = edit(body)
		}
		return haproxytest.StartGlobal(e.t, global, body)
	})
}

// newEnvOn is newEnvWith on an HAProxy started by start with the global
// lines and the body (frontend and rendered backends) it is given; e.cfg
// and e.stateDir are set when it is called.
func newEnvOn(t testing.TB, mode string, tune func(*config.Config), start func(e *env, global, body string) *haproxytest.HAProxy) *env {
	t.Helper()
	return newEnvAt(t, mode, dockertest.ServiceName(t, "e2e"), tune, start)
}

// newEnvAt is newEnvOn for a given service name.
func newEnvAt(t testing.TB, mode, service string, tune func(*config.Config), start func(e *env, global, body string) *haproxytest.HAProxy) *env {
	t.Helper()
	image := dockertest.BuildEcho(t)
	local := dockertest.Engine(t)
	e := &env{t: t, service: service, docker: dockertest.Client(t), engine: local, local: local, logs: &haproxytest.SyncBuffer{}}
	dockertest.RemoveAll(t, e.docker, e.service)
	cfg, err := config.Parse(fmt.Appendf(nil, serviceYAML, e.service, mode, image))
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = cfg
	e.stateDir = t.TempDir()
	var backends strings.Builder
	if err := templates.RenderBackends(&backends, cfg); err != nil {
		t.Fatal(err)
	}
	port := haproxytest.FreePort(t)
	global := ""
	if f := cfg.HAProxy.ServerStateFile; f != "" {
		global = "  server-state-file " + f
	}
	e.backends = backends.String()
	e.haproxy = start(e, global, fmt.Sprintf("frontend public\n  bind 127.0.0.1:%d\n  default_backend %s\n\n%s", port, e.service, e.backends))
	e.url = fmt.Sprintf("http://127.0.0.1:%d/", port)
	e.lb, err = runtimeapi.New("unix://" + e.haproxy.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("slotscaler log:\n%s", e.logs.String())
		}
	})
	return e
}

// startLoop runs slotscaler's loop in the test until the returned stop is
// called (or the test ends).
func (e *env) startLoop() (stop func()) {
	_, stop = e.startLoopAndAPI()
	return stop
}

// startLoopAndAPI also serves the HTTP API on loopback, with the operator
// token apiToken, and returns its base URL.
func (e *env) startLoopAndAPI() (url string, stop func()) {
	var (
		lb        scaler.LB = haproxy.New(e.lb)
		stateFile *scaler.ServerStateFile
		observer  scaler.Observer
	)
	if f := e.cfg.HAProxy.ServerStateFile; f != "" {
		stateFile = scaler.WithServerStateFile(lb, e.lb.DumpServersState, f, slog.New(slog.NewTextHandler(e.logs, nil)))
		lb, observer = stateFile, stateFile.AtTickEnd(nil)
	}
	if len(e.mirrors) > 0 {
		lbs, names := []scaler.LB{lb}, []string{"primary"}
		for i, m := range e.mirrors {
			lbs, names = append(lbs, haproxy.New(m)), append(names, fmt.Sprintf("secondary%d", i+1))
		}
		opts := func(string) (scaler.ServerOptions, bool) {
			return scaler.DynamicServerOptions(e.cfg.Services[0]), e.cfg.Services[0].Slots.Mode == config.ModeDynamic
		}
		lb = scaler.NewMirror(lbs, names, opts, scaler.WallClock{}, slog.New(slog.NewTextHandler(e.logs, nil)))
	}
	loop, err := scaler.New(scaler.Options{
		Config: e.cfg, LB: lb, StateDir: e.stateDir, Observer: observer,
		Hosts: []scaler.Host{{Name: "local", Addr: e.cfg.Docker.Hosts[0].IP(), Capacity: e.cfg.Docker.Hosts[0].MaxContainers, Preferred: true, Engine: e.engine}},
		Log:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waitWake := e.startWake(ctx, loop) // wake (issue 13)
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop.Run(ctx)
		if stateFile != nil { // as run.go: what changed since the last tick's end
			stateFile.Flush(context.Background())
		}
	}()
	srv := httptest.NewServer(api.New(loop, e.cfg, api.Secrets{Tokens: []api.Token{{Name: "ci", Value: apiToken, Role: api.Operator}}}, nil, nil, slog.New(slog.NewTextHandler(e.logs, nil))).Handler())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Close()
			cancel()
			<-done
			waitWake()
		})
	}
	e.t.Cleanup(stop)
	return srv.URL, stop
}

// apiToken is the operator token of the test API.
const apiToken = "e2e-operator-token-5f1d2c3b"

// slots counts the service's slots by what they do now.
type slots struct{ serving, other int }

func (e *env) slots() slots {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := e.lb.Backend(ctx, e.service)
	if err != nil {
		e.t.Fatalf("read backend: %v", err)
	}
	return countSlots(b)
}

func countSlots(b runtimeapi.Backend) slots {
	var s slots
	for _, srv := range b.Servers {
		switch {
		case srv.Name == config.WakeServer: // wake (issue 13): the backup server, not a slot
		case srv.Serving() && srv.Weight > 0:
			s.serving++
		case srv.Admin != runtimeapi.AdminMaint:
			s.other++
		}
	}
	return s
}

// waitFor polls cond until it holds or timeout passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	e.t.Helper()
	took, ok := poll(timeout, cond)
	if !ok {
		e.t.Fatalf("%s: not within %s", what, timeout)
	}
	return took
}

// poll is waitFor that reports a timeout instead of failing the test, for
// tests that still have invariants to check when a wait runs out.
func poll(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), true
}

// startMirror starts one more haproxy with the same backends behind its
// own frontend, for the loop to keep in step with the first (call before
// startLoop). It returns the instance, its runtime client and its URL.
func (e *env) startMirror() (*haproxytest.HAProxy, *runtimeapi.Client, string) {
	e.t.Helper()
	port := haproxytest.FreePort(e.t)
	h := haproxytest.Start(e.t, fmt.Sprintf("frontend public\n  bind 127.0.0.1:%d\n  default_backend %s\n\n%s", port, e.service, e.backends))
	lb, err := runtimeapi.New("unix://" + h.Socket)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mirrors = append(e.mirrors, lb)
	return h, lb, fmt.Sprintf("http://127.0.0.1:%d/", port)
}

// slotRow is what must be the same for one slot on every HAProxy instance.
type slotRow struct {
	Admin    runtimeapi.AdminState
	Addr     netip.Addr
	Port     int
	Serving  bool
	Weighted bool // weight > 0
}

// slotTable is the service's slots on one instance, by name.
func slotTable(b runtimeapi.Backend) map[string]slotRow {
	out := make(map[string]slotRow, len(b.Servers))
	for _, s := range b.Servers {
		out[s.Name] = slotRow{Admin: s.Admin, Addr: s.Addr, Port: s.Port, Serving: s.Serving(), Weighted: s.Weight > 0}
	}
	return out
}

// table reads lb's slot table of the service (nil when it cannot be read).
func (e *env) table(lb *runtimeapi.Client) map[string]slotRow {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := lb.Backend(ctx, e.service)
	if err != nil {
		return nil
	}
	return slotTable(b)
}

// inStep: the first instance and lb show the same slot table.
func (e *env) inStep(lb *runtimeapi.Client) bool {
	a, b := e.table(e.lb), e.table(lb)
	return a != nil && b != nil && maps.Equal(a, b)
}

func (e *env) info() runtimeapi.Info {
	i, err := e.lb.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return i
}

// managed lists the service's containers, running or not, as the driver
// sees them (labels, published port).
func (e *env) managed() []scaler.Container {
	e.t.Helper()
	all, err := e.local.Containers(context.Background())
	if err != nil {
		e.t.Fatalf("list containers: %v", err)
	}
	var out []scaler.Container
	for _, c := range all {
		if c.Service == e.service {
			out = append(out, c)
		}
	}
	return out
}

func (e *env) containers() int { return len(e.managed()) }
