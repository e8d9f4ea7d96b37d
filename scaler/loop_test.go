package scaler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// flakyLB is Fake as the loop sees it, failing reads on demand, to prove
// a failed read changes nothing.
type flakyLB struct {
	scaler.LB
	Fake     *runtimeapi.Fake
	mu       sync.Mutex
	fail     bool
	failInfo bool              // show info fails too: the tick reads nothing
	failOne  string            // a backend Backends fails alone (BackendErrors)
	applies  [][]scaler.Change // every Apply, in order
	// afterApply, when set, runs after each Apply with its changes.
	afterApply func([]scaler.Change)
	// afterRead, when set, runs after a Backends read (a stop arriving
	// while the tick plans).
	afterRead func()
	// onInfo runs before each Info, afterBackend after each Backend
	// read, outside mu.
	onInfo       func()
	afterBackend func(scaler.Backend)
}

// Apply fails every change on a done ctx, as runtimeapi's client does
// (nothing is sent).
func (f *flakyLB) Apply(ctx context.Context, changes []scaler.Change) []error {
	f.mu.Lock()
	f.applies = append(f.applies, changes)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		errs := make([]error, len(changes))
		for i := range errs {
			errs[i] = fmt.Errorf("waiting for the connection: %w", err)
		}
		return errs
	}
	errs := f.LB.Apply(ctx, changes)
	f.mu.Lock()
	after := f.afterApply
	f.mu.Unlock()
	if after != nil {
		after(changes)
	}
	return errs
}

func (f *flakyLB) Info(ctx context.Context) (scaler.ProcessInfo, error) {
	if f.onInfo != nil {
		f.onInfo()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failInfo {
		return scaler.ProcessInfo{}, errors.New("dial: connection refused")
	}
	return f.LB.Info(ctx)
}

func (f *flakyLB) Backend(ctx context.Context, name string) (scaler.Backend, error) {
	b, err := f.backend(ctx, name)
	if f.afterBackend != nil && err == nil {
		f.afterBackend(b)
	}
	return b, err
}

func (f *flakyLB) backend(ctx context.Context, name string) (scaler.Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return scaler.Backend{}, errors.New("read: connection reset by peer")
	}
	if err := ctx.Err(); err != nil {
		return scaler.Backend{}, fmt.Errorf("waiting for the connection: %w", err)
	}
	return f.LB.Backend(ctx, name)
}

func (f *flakyLB) Backends(ctx context.Context, names []string) (map[string]scaler.Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("read: connection reset by peer")
	}
	bs, err := f.LB.Backends(ctx, names)
	if f.failOne != "" && err == nil {
		delete(bs, f.failOne)
		err = scaler.BackendErrors{f.failOne: errors.New("b: instances differ and could not be brought in step")}
	}
	if f.afterRead != nil {
		f.afterRead()
	}
	return bs, err
}

type harness struct {
	t        *testing.T
	cfg      *config.Config
	hosts    []scaler.Host
	stateDir string
	now      time.Time
	lb       *flakyLB
	engine   *fakeengine.Engine
	loop     *scaler.Loop
	logs     *bytes.Buffer
}

const harnessConfig = `
haproxy: {runtime_api: unix:///tmp/none.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: %d}]}
interval: 1s
services:
  - name: web
    backend: web
    slots: {mode: %s}
    container: {image: web:1, port: 8080}
    min_replicas: 1
    max_replicas: 4
    max_scale_up: 2
    target: {sessions_per_replica: 10}
    stabilization: {scale_down: 30s}
    cooldown: {scale_up: 0s, scale_down: 0s}
    drain_timeout: 20s
    unhealthy_after: 10s
`

type harnessOpt struct {
	mode     string
	capacity int
	dryRun   bool
	planOut  *bytes.Buffer // a dry run's plan, for a person
	tune     func(*config.Config)
	hosts    []scaler.Host // default: one host "local" on h.engine
}

func newHarness(t *testing.T, o harnessOpt) *harness {
	t.Helper()
	if o.mode == "" {
		o.mode = config.ModeTemplate
	}
	if o.capacity == 0 {
		o.capacity = 10
	}
	cfg, err := config.Parse(fmt.Appendf(nil, harnessConfig, o.capacity, o.mode))
	if err != nil {
		t.Fatal(err)
	}
	if o.tune != nil {
		o.tune(cfg)
	}
	h := &harness{t: t, now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), engine: fakeengine.New("local", 30000), logs: &bytes.Buffer{}}
	fake := runtimeapi.NewFake()
	fake.SetClock(func() time.Time { return h.now })
	if o.hosts == nil {
		o.hosts = []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: o.capacity, Preferred: true, Engine: h.engine}}
	}
	fake.SetChecker(func(_ netip.Addr, port int) bool {
		for _, host := range o.hosts {
			if host.Engine.(*fakeengine.Engine).RunningOn(port) {
				return true
			}
		}
		return false
	})
	fake.DeclareBackend("web", "roundrobin")
	if o.mode == config.ModeTemplate {
		fake.DeclareTemplate("web", "slot", 4, netip.MustParseAddrPort("127.0.0.1:9"))
	}
	h.lb = &flakyLB{LB: haproxy.New(fake), Fake: fake}
	h.cfg, h.hosts, h.stateDir = cfg, o.hosts, t.TempDir()
	opts := scaler.Options{
		Config: cfg, LB: h.lb, DryRun: o.dryRun, StateDir: h.stateDir,
		Hosts: o.hosts,
		Now:   func() time.Time { return h.now },
		Log:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.planOut != nil {
		opts.PlanOut = o.planOut
	}
	h.loop, err = scaler.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs.String())
		}
	})
	return h
}

// tick runs one pass and lets its operations finish, then moves the clock.
func (h *harness) tick() {
	h.loop.Tick(context.Background())
	h.loop.Wait()
	h.now = h.now.Add(time.Second)
}

func (h *harness) ticks(n int) {
	for range n {
		h.tick()
	}
}

// slots summarizes the backend: "slot1=ready/UP/w1" per slot, in order.
func (h *harness) slots() string {
	b, err := h.lb.Fake.Backend(context.Background(), "web")
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	slices.SortFunc(b.Servers, func(a, b runtimeapi.Server) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range b.Servers {
		out = append(out, fmt.Sprintf("%s=%s/%s/w%d", s.Name, s.Admin, s.Health, s.Weight))
	}
	return strings.Join(out, " ")
}

func (h *harness) serving() int {
	b, _ := h.lb.Fake.Backend(context.Background(), "web")
	n := 0
	for _, s := range b.Servers {
		if s.Serving() && s.Weight > 0 {
			n++
		}
	}
	return n
}

func (h *harness) load(sessions map[string]int) {
	for slot, n := range sessions {
		if err := h.lb.Fake.SetLoad("web", slot, n, 0); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestLoopStartsMinReplicasAndBindsOnlyAfterCheck(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	if got, want := h.slots(), "slot1=ready/up/w1 slot2=maint/maint/w1 slot3=maint/maint/w1 slot4=maint/maint/w1"; got != want {
		t.Fatalf("after one tick:\n got %s\nwant %s", got, want)
	}
	if h.engine.Count() != 1 {
		t.Fatalf("%d containers, want 1", h.engine.Count())
	}
	h.ticks(5)
	if h.engine.Starts != 1 {
		t.Errorf("steady state started %d containers, want 1", h.engine.Starts)
	}
}

func TestLoopScalesUpWithStepAndDownAfterStabilization(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.load(map[string]int{"slot1": 35}) // wants 4, step 2
	h.tick()
	if got := h.serving(); got != 3 {
		t.Fatalf("serving %d after one loaded tick, want 3 (bounded step): %s", got, h.slots())
	}
	h.tick()
	if got := h.serving(); got != 4 {
		t.Fatalf("serving %d, want 4: %s", got, h.slots())
	}
	// Load leaves; slot3 keeps two sessions, so it is drained last.
	h.load(map[string]int{"slot1": 0, "slot2": 0, "slot3": 2, "slot4": 0})
	h.ticks(29)
	if got := h.serving(); got != 4 {
		t.Fatalf("scaled down within the stabilization window: %s", h.slots())
	}
	h.ticks(2)
	if got := h.slots(); !strings.Contains(got, "slot3=ready/up") || strings.Count(got, "maint/maint") != 3 {
		t.Fatalf("after the window, want 1 replica left on slot3 (the busiest):\n%s", got)
	}
	if n := h.engine.Count(); n != 1 {
		t.Errorf("%d containers after scale-down, want 1", n)
	}
}

// newTwoServiceHarness is the harness with a second service, api, like
// web on backend api.
func newTwoServiceHarness(t *testing.T) *harness {
	h := newHarness(t, harnessOpt{tune: func(c *config.Config) {
		api := c.Services[0]
		api.Name, api.Backend = "api", "api"
		c.Services = append(c.Services, api)
	}})
	h.lb.Fake.DeclareBackend("api", "roundrobin")
	h.lb.Fake.DeclareTemplate("api", "slot", 4, netip.MustParseAddrPort("127.0.0.1:9"))
	return h
}

// A tick's own changes, of every service, go as one Apply: one batch per
// HAProxy instance, one write of the server state file.
func TestLoopTickChangesGoAsOneBatch(t *testing.T) {
	h := newTwoServiceHarness(t)
	for _, name := range []string{"web", "api"} {
		if err := h.loop.Pin(name, 4); err != nil {
			t.Fatal(err)
		}
	}
	h.ticks(3)
	for _, name := range []string{"web", "api"} {
		if err := h.loop.Pin(name, 1); err != nil {
			t.Fatal(err)
		}
	}
	h.lb.applies = nil
	h.loop.Tick(context.Background())
	if len(h.lb.applies) != 1 {
		t.Fatalf("the scale-down tick made %d Apply calls, want 1: %v", len(h.lb.applies), h.lb.applies)
	}
	var drains []string
	for _, c := range h.lb.applies[0] {
		if c.Op == scaler.ChangeState && c.State == scaler.AdminDrain {
			drains = append(drains, c.Backend+"/"+c.Server)
		}
	}
	if len(drains) != 6 || len(h.lb.applies[0]) != 6 {
		t.Errorf("the batch: %v, want the 3 drains of each service", h.lb.applies[0])
	}
}

// A backend the pass could not read (BackendErrors) skips its service
// only: the others tick.
func TestLoopBackendErrorSkipsItsServiceOnly(t *testing.T) {
	h := newTwoServiceHarness(t)
	h.lb.failOne = "api"
	h.ticks(2)
	if got := h.serving(); got != 1 {
		t.Errorf("web serving %d, want its min of 1: %s", got, h.slots())
	}
	st, err := h.loop.Service("api")
	if err != nil || !strings.Contains(st.Error, "could not be brought in step") {
		t.Errorf("api status error %q (%v), want the backend's", st.Error, err)
	}
	if n := h.engine.Count(); n != 1 {
		t.Errorf("%d containers, want web's one only", n)
	}
}

// slotscaler is stopped while a tick plans a scale-down: the drains are
// not sent, and no draining intent is left saved for them. Left saved, an
// operator's drain of such a slot while slotscaler is stopped passed for
// slotscaler's at the next start: the slot was set to maint and its
// container removed.
func TestLoopStopMidTickLeavesNoIntentOfUnsentDrains(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	h.ticks(3)
	if got := h.serving(); got != 3 {
		t.Fatalf("pinned at 3: serving %d: %s", got, h.slots())
	}
	if err := h.loop.Pin("web", 1); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h.lb.mu.Lock()
	h.lb.afterRead = stop // SIGTERM while the tick plans
	h.lb.mu.Unlock()
	h.loop.Tick(ctx)
	h.loop.Wait()
	h.lb.mu.Lock()
	h.lb.afterRead = nil
	h.lb.mu.Unlock()
	if got := h.serving(); got != 3 {
		t.Fatalf("a drain was sent by the stopped tick: %s", h.slots())
	}
	// The operator drains every serving slot while slotscaler is stopped.
	b, err := h.lb.Fake.Backend(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range b.Servers {
		if srv.Admin == runtimeapi.AdminReady {
			if err := h.lb.Fake.SetState(context.Background(), "web", srv.Name, runtimeapi.AdminDrain); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := h.slots()
	h.now = h.now.Add(time.Minute)
	restarted, err := scaler.New(scaler.Options{Config: h.cfg, LB: h.lb, StateDir: h.stateDir, Hosts: h.hosts, Now: func() time.Time { return h.now },
		Log: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	restarted.Tick(context.Background())
	restarted.Wait()
	if after := h.slots(); strings.Count(after, "=drain/") != 3 {
		t.Errorf("the operator's drains after a stop mid-tick:\n before the restart %s\n after            %s", before, after)
	}
}

// HAProxy restarts between a bind's first batch and its state ready: the
// ready lands on the new process, where the slot is back at its
// placeholder address, and would take traffic there. The start sees the
// slot ready at another address than its container's and is undone at
// once, not after unhealthy_after (found by the simulator's review of
// seed 3203).
func TestLoopStartUndoneWhenReadyLandsAfterRestart(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	restarted := false
	h.lb.afterApply = func(changes []scaler.Change) {
		if !restarted && slices.ContainsFunc(changes, func(c scaler.Change) bool { return c.Op == scaler.ChangeHealth }) {
			restarted = true
			h.lb.Fake.Restart()
		}
	}
	begin := time.Now()
	h.tick()
	if !restarted {
		t.Fatal("no bind")
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("the start took %s to give up on a slot ready at the placeholder (unhealthy_after %s)", took, h.cfg.Services[0].UnhealthyAfter.Duration)
	}
	b, err := h.lb.Fake.Backend(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range b.Servers {
		if srv.Admin != runtimeapi.AdminMaint && srv.Port == 9 {
			t.Errorf("%s is %s at the placeholder %s:%d", srv.Name, srv.Admin, srv.Addr, srv.Port)
		}
	}
	// The container was not the fault: kept, and bound again by the next
	// tick (before, it was removed and another one started).
	if n := h.engine.Count(); n != 1 {
		t.Errorf("%d containers after the undo, want the one kept", n)
	}
	ids := func() []string {
		cs, err := h.engine.Containers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	kept := ids()
	h.tick()
	if got := h.slots(); !strings.Contains(got, "=ready/up/w1") || !slices.Equal(ids(), kept) {
		t.Errorf("the kept container is not bound again: %s, containers %v (were %v)", got, ids(), kept)
	}
}

// A slot reset at every bind (HAProxy restarting each time, or a slot
// that never shows the container's address): the container is kept for
// one re-bind only; reset again, the re-bind is undone as a failed start,
// container and all, and the generation backs off (review: kept each
// time, it was bound again at every tick with no failure counted).
func TestLoopResetStartKeptOnce(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.lb.afterApply = func(changes []scaler.Change) {
		if slices.ContainsFunc(changes, func(c scaler.Change) bool { return c.Op == scaler.ChangeHealth }) {
			h.lb.Fake.Restart()
		}
	}
	failed := func() int {
		n := 0
		for _, e := range h.loop.Events("web") {
			if e.Kind == scaler.EventStartFailed {
				n++
			}
		}
		return n
	}
	h.tick()
	if n := h.engine.Count(); n != 1 || failed() != 0 {
		t.Fatalf("after the first reset: %d containers, %d failed starts; want the container kept, none failed", n, failed())
	}
	h.tick() // the re-bind, reset again
	if n := h.engine.Count(); n != 0 || failed() != 1 {
		t.Errorf("after the re-bind's reset: %d containers, %d failed starts; want it removed and counted", n, failed())
	}
}

func TestLoopDrainWaitsForSessionsOrTimeout(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.load(map[string]int{"slot1": 15})
	h.tick() // 2 replicas
	h.load(map[string]int{"slot1": 1, "slot2": 3})
	h.ticks(31) // window passes: drain slot1 (fewest sessions)
	if got := h.slots(); !strings.HasPrefix(got, "slot1=drain") {
		t.Fatalf("want slot1 draining: %s", got)
	}
	h.ticks(5)
	if got := h.slots(); !strings.HasPrefix(got, "slot1=drain") || h.engine.Count() != 2 {
		t.Fatalf("a drain with a session left must wait: %s, %d containers", got, h.engine.Count())
	}
	h.ticks(16) // drain_timeout 20s
	if got := h.slots(); !strings.HasPrefix(got, "slot1=maint") || h.engine.Count() != 1 {
		t.Fatalf("after drain_timeout want slot1 in maint and its container gone: %s, %d containers", got, h.engine.Count())
	}
}

func TestLoopRespectsOperatorDrain(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.ticks(2)
	if err := h.lb.Fake.SetState(context.Background(), "web", "slot1", runtimeapi.AdminDrain); err != nil {
		t.Fatal(err)
	}
	h.ticks(3)
	if got := h.slots(); !strings.HasPrefix(got, "slot1=drain") || !strings.Contains(got, "slot2=ready/up/w1") {
		t.Fatalf("want slot1 left drained and slot2 started to cover: %s", got)
	}
	if h.engine.Count() != 2 {
		t.Errorf("the operator-drained slot's container must be kept: %d containers", h.engine.Count())
	}
	// The operator puts it in maint: its container goes, nothing else moves.
	if err := h.lb.Fake.SetState(context.Background(), "web", "slot1", runtimeapi.AdminMaint); err != nil {
		t.Fatal(err)
	}
	h.ticks(2)
	if got := h.slots(); !strings.HasPrefix(got, "slot1=maint") || h.engine.Count() != 1 {
		t.Fatalf("want slot1's container removed once in maint: %s, %d containers", got, h.engine.Count())
	}
}

func TestLoopFailedReadChangesNothing(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.load(map[string]int{"slot1": 35})
	h.ticks(2)
	before := h.slots()
	h.lb.mu.Lock()
	h.lb.fail = true
	h.lb.mu.Unlock()
	h.load(map[string]int{"slot1": 0, "slot2": 0, "slot3": 0, "slot4": 0})
	h.ticks(60)
	if got := h.slots(); got != before || h.engine.Count() != 4 {
		t.Fatalf("failed reads changed slots:\nbefore %s\nafter  %s", before, got)
	}
	if !strings.Contains(h.logs.String(), "tick skipped") {
		t.Error("skipped ticks not logged")
	}
}

func TestLoopDryRunChangesNothing(t *testing.T) {
	plan := &bytes.Buffer{}
	h := newHarness(t, harnessOpt{dryRun: true, planOut: plan})
	before := h.slots()
	h.ticks(3)
	if got := h.slots(); got != before || h.engine.Count() != 0 {
		t.Fatalf("dry run changed things: %s, %d containers", got, h.engine.Count())
	}
	if !strings.Contains(h.logs.String(), `msg="dry run: planned" service=web action=start slot=slot1 host=local image=web:1`) {
		t.Errorf("dry run did not log its plan:\n%s", h.logs.String())
	}
	if want := "web: start a container on local for slot1 (image web:1)\n"; !strings.HasPrefix(plan.String(), want) {
		t.Errorf("dry run wrote %q, want lines %q", plan.String(), want)
	}
}

func TestLoopDynamicModeAddsAndDeletesServers(t *testing.T) {
	h := newHarness(t, harnessOpt{mode: config.ModeDynamic})
	h.tick()
	h.load(map[string]int{"slot1": 25})
	h.ticks(2)
	if got, want := h.slots(), "slot1=ready/up/w1 slot2=ready/up/w1 slot3=ready/up/w1"; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	h.load(map[string]int{"slot1": 0, "slot2": 0, "slot3": 0})
	h.ticks(35)
	if got, want := h.slots(), "slot1=ready/up/w1"; got != want {
		t.Fatalf("after scale-down got %s, want %s (servers deleted)", got, want)
	}
}

func TestLoopRebindsAfterHAProxyRestart(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, harnessOpt{mode: mode})
			h.tick()
			h.load(map[string]int{"slot1": 15})
			h.ticks(2)
			before := h.slots()
			h.lb.Fake.Restart()
			h.tick()
			if got := h.slots(); got != before {
				t.Fatalf("after restart:\n got %s\nwant %s", got, before)
			}
			if h.engine.Starts != 2 {
				t.Errorf("%d starts: re-binding must not start containers", h.engine.Starts)
			}
		})
	}
}

func TestLoopReplacesMissingAndUnhealthyContainers(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	// Removed behind slotscaler's back (an exited container reads the same).
	cs, _ := h.engine.Containers(context.Background())
	h.engine.Remove(context.Background(), cs[0].ID, 0)
	h.ticks(2)
	if got := h.serving(); got != 1 || h.engine.Starts != 2 {
		t.Fatalf("want a replacement serving: %s, %d starts", h.slots(), h.engine.Starts)
	}
	// Unhealthy: the container runs but the check fails for unhealthy_after.
	cs, _ = h.engine.Containers(context.Background())
	h.engine.Mu.Lock()
	h.engine.Sick[cs[0].Port] = true
	h.engine.Mu.Unlock()
	h.ticks(5)
	if h.engine.Starts != 2 {
		t.Fatalf("replaced before unhealthy_after: %d starts", h.engine.Starts)
	}
	h.ticks(8)
	if got := h.serving(); got != 1 || h.engine.Starts != 3 || h.engine.Count() != 1 {
		t.Fatalf("want the unhealthy container replaced: %s, %d starts, %d containers", h.slots(), h.engine.Starts, h.engine.Count())
	}
}

func TestLoopStartFailureLeavesSlotFree(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.engine.StartErr = fmt.Errorf("image web:1 on host local: %w", scaler.ErrImageNotFound)
	h.ticks(10)
	if got := h.slots(); strings.Contains(got, "ready") || h.engine.Count() != 0 {
		t.Fatalf("failed start left state behind: %s", got)
	}
	if !strings.Contains(h.logs.String(), "image not found") {
		t.Error("start failure not logged with its cause")
	}
	// Backed off (2, 4, 8 s): not a start and an event at every tick.
	if n := len(h.loop.Events("web")); n > 8 {
		t.Errorf("%d events in 10 ticks of failing starts: want backoff", n)
	}
	if n := strings.Count(h.logs.String(), "event=start_failed"); n != 3 {
		t.Errorf("%d failed starts in 10 ticks, want 3 (at 0, 2 and 6 s)", n)
	}
	h.engine.StartErr = nil
	h.ticks(9)
	if h.serving() != 1 {
		t.Fatalf("recovered engine: want 1 serving once the backoff passed: %s", h.slots())
	}
}

func TestLoopHostCapacity(t *testing.T) {
	h := newHarness(t, harnessOpt{capacity: 2})
	h.tick()
	h.load(map[string]int{"slot1": 40})
	h.ticks(3)
	if got := h.engine.Count(); got != 2 {
		t.Fatalf("%d containers on a host with max_containers 2", got)
	}
	if !strings.Contains(h.logs.String(), "no_capacity") {
		t.Error("no capacity event logged")
	}
}

func TestLoopHostDownNeverScalesDown(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.load(map[string]int{"slot1": 25})
	h.ticks(2)
	h.engine.Mu.Lock()
	h.engine.ListErr = errors.New("Cannot connect to the Docker daemon")
	h.engine.Mu.Unlock()
	h.load(map[string]int{"slot1": 0, "slot2": 0, "slot3": 0})
	h.ticks(60)
	if got := h.serving(); got != 3 {
		t.Fatalf("serving %d while docker was down, want 3 kept: %s", got, h.slots())
	}
	h.engine.Mu.Lock()
	h.engine.ListErr = nil
	h.engine.Mu.Unlock()
	h.ticks(3)
	if got := h.serving(); got != 1 {
		t.Fatalf("serving %d once docker is back, want 1: %s", got, h.slots())
	}
}

func TestLoopStrayContainersRemoved(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.engine.Start(context.Background(), scaler.Spec{Name: "old", Service: "web", Slot: "slot9"})
	h.engine.Start(context.Background(), scaler.Spec{Name: "other", Service: "not-ours", Slot: "slot1"})
	h.ticks(2)
	cs, _ := h.engine.Containers(context.Background())
	var names []string
	for _, c := range cs {
		names = append(names, c.Service+"/"+c.Slot)
	}
	slices.Sort(names)
	if want := []string{"not-ours/slot1", "web/slot1"}; !slices.Equal(names, want) {
		t.Fatalf("containers %v, want %v (unknown slot removed, other services untouched)", names, want)
	}
}

func TestLoopScalesOnCPU(t *testing.T) {
	h := newHarness(t, harnessOpt{tune: func(c *config.Config) {
		c.Services[0].Target = config.Target{CPUPercent: 50, Tolerance: 0.1}
		c.Services[0].Container.CPUs = 0.5
	}})
	h.engine.CPUShare = 0.45 // 90% of the 0.5 CPU limit
	h.tick()                 // min replica
	h.tick()                 // first sample: no percent yet
	if got := h.serving(); got != 1 {
		t.Fatalf("one sample must not scale: %d serving", got)
	}
	h.tick() // 90% of the limit against a 50% target: 2 replicas
	if got := h.serving(); got != 2 {
		t.Fatalf("serving %d at 90%% CPU with a 50%% target, want 2: %s", got, h.slots())
	}
}

// Two hosts, one only for overflow: replicas go to the preferred host
// until it is full, starts in flight count against capacity.
func TestLoopPlacesAcrossHosts(t *testing.T) {
	main, spare := fakeengine.New("main", 30000), fakeengine.New("spare", 40000)
	h := newHarness(t, harnessOpt{hosts: []scaler.Host{
		{Name: "main", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 2, Preferred: true, Engine: main},
		{Name: "spare", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 2, Preferred: false, Engine: spare},
	}})
	h.tick()
	h.load(map[string]int{"slot1": 40})
	h.ticks(3)
	if main.Count() != 2 || spare.Count() != 2 {
		t.Fatalf("containers main %d spare %d, want 2 and 2", main.Count(), spare.Count())
	}
	if got := h.serving(); got != 4 {
		t.Fatalf("serving %d, want 4: %s", got, h.slots())
	}
}

// garbageSocket is a runtime socket that answers "show info" properly (or
// not, when infoToo) and everything else with junk.
func garbageSocket(t *testing.T, infoToo bool) string {
	path := t.TempDir() + "/garbage.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				n, _ := c.Read(buf)
				if strings.Contains(string(buf[:n]), "show info") && !infoToo {
					fmt.Fprint(c, "Name: HAProxy\nVersion: 2.6.12\nPid: 42\nStart_time_sec: 1700000000\nUptime_sec: 5\n\n")
					return
				}
				fmt.Fprint(c, "# pxname,svname\x00\xff\xfe,,,\n\"unterminated,quote\n1,2,3,4,5,6,7,8,9,10,11,12\n")
			}()
		}
	}()
	return "unix://" + path
}

// TestLoopSurvivesGarbageRuntimeSocket: junk from the runtime socket is
// an error, never a panic, and nothing is started or stopped on it.
func TestLoopSurvivesGarbageRuntimeSocket(t *testing.T) {
	for _, infoToo := range []bool{false, true} {
		t.Run(fmt.Sprintf("info_garbage=%v", infoToo), func(t *testing.T) {
			client, err := runtimeapi.New(garbageSocket(t, infoToo))
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, harnessOpt{})
			loop, err := scaler.New(scaler.Options{Config: h.cfg, LB: haproxy.New(client.WithTimeout(time.Second)), StateDir: t.TempDir(),
				Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 4, Preferred: true, Engine: h.engine}},
				Log:   slog.New(slog.NewTextHandler(h.logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				loop.Tick(context.Background())
				loop.Wait()
			}
			if h.engine.Starts != 0 || h.engine.Count() != 0 {
				t.Errorf("acted on junk: %d starts", h.engine.Starts)
			}
			if ok, why := loop.Ready(); ok || len(why) == 0 {
				t.Errorf("Ready() = %v %v, want not ready with a reason", ok, why)
			}
		})
	}
}

func TestBackoffWhileHAProxyIsAway(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{time.Second, 0, time.Second},
		{time.Second, 1, 2 * time.Second},
		{time.Second, 2, 4 * time.Second},
		{time.Second, 3, 5 * time.Second},
		{time.Second, 1000, 5 * time.Second},
		{10 * time.Second, 3, 10 * time.Second},
		{200 * time.Millisecond, 3, 1600 * time.Millisecond},
	} {
		if got := scaler.Backoff(c.interval, c.failures); got != c.want {
			t.Errorf("backoff(%s, %d) = %s, want %s", c.interval, c.failures, got, c.want)
		}
	}
}

// A scale-down calls a start off while its undo (its slot reset by a
// restart of HAProxy) waits for tickMu: the container goes, as for any
// start called off (review: kept for a rebind, it was bound again under a
// pin of 0).
func TestLoopStartCalledOffDuringResetUndo(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	restarted, hooked := false, false
	h.lb.afterApply = func(changes []scaler.Change) {
		if !restarted && slices.ContainsFunc(changes, func(c scaler.Change) bool { return c.Op == scaler.ChangeHealth }) {
			restarted = true
			h.lb.Fake.Restart()
		}
	}
	inTick := make(chan struct{}, 1)
	h.lb.afterBackend = func(b scaler.Backend) {
		srv, ok := b.Server("slot1")
		if !restarted || hooked || !ok || srv.Port != 9 {
			return
		}
		hooked = true
		if err := h.loop.Pin("web", 0); err != nil {
			t.Error(err)
		}
		h.lb.onInfo = func() { h.lb.onInfo = nil; inTick <- struct{}{}; time.Sleep(50 * time.Millisecond) }
		go h.loop.Tick(context.Background())
		<-inTick // the tick holds tickMu; the undo waits for it, rebind already decided
	}
	h.loop.Tick(context.Background())
	h.loop.Wait()
	if !hooked {
		t.Fatal("no reset seen")
	}
	h.now = h.now.Add(time.Second)
	h.tick()
	h.tick()
	if n := h.engine.Count(); n != 0 || strings.Contains(h.slots(), "ready") {
		t.Errorf("a called-off start's container kept and bound again under a pin of 0: %s, %d containers", h.slots(), n)
	}
}
