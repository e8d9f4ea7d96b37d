package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

// summary is backend web of f, one "slot=admin/wN/addr:port" per slot.
func summary(t *testing.T, f *runtimeapi.Fake) string { return summaryOf(t, f, "web") }

// fakeWeb is an HAProxy with backend web, of slots template slots (none:
// dynamic), whose checks pass where engine runs a container.
func fakeWeb(engine *fakeengine.Engine, slots int) *runtimeapi.Fake {
	f := runtimeapi.NewFake()
	f.SetChecker(func(_ netip.Addr, port int) bool { return engine.RunningOn(port) })
	f.DeclareBackend("web", "roundrobin")
	if slots > 0 {
		f.DeclareTemplate("web", "slot", slots, netip.MustParseAddrPort("127.0.0.1:9"))
	}
	return f
}

// mirroredFakes are two HAProxy instances with backend web (four template
// slots in template mode), whose checks pass where engine runs a container.
func mirroredFakes(mode string, engine *fakeengine.Engine, clock func() time.Time) []*runtimeapi.Fake {
	slots := 0
	if mode == config.ModeTemplate {
		slots = 4
	}
	fakes := []*runtimeapi.Fake{fakeWeb(engine, slots), fakeWeb(engine, slots)}
	for _, f := range fakes {
		f.SetClock(clock)
	}
	return fakes
}

// Two HAProxy instances behind one slotscaler: changes reach both, load
// on either counts, and an instance that restarted is brought back.
func TestMirrorKeepsInstancesInStep(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			cfg, err := config.Parse(fmt.Appendf(nil, harnessConfig, 10, mode))
			if err != nil {
				t.Fatal(err)
			}
			engine := fakeengine.New("local", 30000)
			now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			fakes := mirroredFakes(mode, engine, clock)
			var lbs []scaler.LB
			for _, f := range fakes {
				lbs = append(lbs, haproxy.New(f))
			}
			opts := func(string) (scaler.ServerOptions, bool) {
				return scaler.DynamicServerOptions(cfg.Services[0]), mode == config.ModeDynamic
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			loop, err := scaler.New(scaler.Options{Config: cfg, LB: scaler.NewMirror(lbs, []string{"a", "b"}, opts, scaler.WallClock{}, log), StateDir: t.TempDir(), Log: log, Now: clock,
				Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 10, Preferred: true, Engine: engine}}})
			if err != nil {
				t.Fatal(err)
			}
			tick := func() { loop.Tick(context.Background()); loop.Wait(); now = now.Add(time.Second) }
			same := func(when string) {
				t.Helper()
				if a, b := summary(t, fakes[0]), summary(t, fakes[1]); a != b {
					t.Fatalf("%s: instances differ\n a: %s\n b: %s", when, a, b)
				}
			}
			tick()
			same("after the first start")
			fakes[1].SetLoad("web", "slot1", 25, 0) // the load arrives through the second instance only
			tick()
			tick() // the status shows what the previous tick started
			if st, _ := loop.Service("web"); st.Replicas.Serving != 3 {
				t.Fatalf("load on the secondary: %d serving, want 3", st.Replicas.Serving)
			}
			same("after the scale-up")
			fakes[1].Restart()
			tick()
			same("after the secondary restarted")
			if engine.Starts != 3 {
				t.Errorf("%d starts: a secondary's restart must not start containers", engine.Starts)
			}
			fakes[1].SetLoad("web", "slot1", 0, 0)
			for range 40 {
				tick()
			}
			tick()
			same("after the scale-down")
			if st, _ := loop.Service("web"); st.Replicas.Serving != 1 {
				t.Fatalf("after the load: %d serving, want 1", st.Replicas.Serving)
			}
		})
	}
}

// slotscaler restarts while an instance that restarted is half rebuilt (a
// slot back at its address but still in maint, its "state ready" refused):
// the new run knows from state.json that this instance's rebuild is under
// way, takes it up again, and does not copy its maint onto the other
// instance (which looked like an operator's maint there: sim seed 1112).
func TestMirrorRebuildsAfterSlotscalerRestart(t *testing.T) {
	cfg, err := config.Parse(fmt.Appendf(nil, harnessConfig, 10, config.ModeTemplate))
	if err != nil {
		t.Fatal(err)
	}
	engine := fakeengine.New("local", 30000)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fakes := mirroredFakes(config.ModeTemplate, engine, clock)
	first := &refusingLB{}
	var lbs []scaler.LB
	for i, f := range fakes {
		var lb scaler.LB = haproxy.New(f)
		if i == 0 {
			first.LB = lb
			lb = first
		}
		lbs = append(lbs, lb)
	}
	opts := func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{}, false }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	run := func() *scaler.Loop {
		loop, err := scaler.New(scaler.Options{Config: cfg, LB: scaler.NewMirror(lbs, []string{"a", "b"}, opts, scaler.WallClock{}, log), StateDir: dir, Log: log, Now: clock,
			Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 10, Preferred: true, Engine: engine}}})
		if err != nil {
			t.Fatal(err)
		}
		return loop
	}
	tick := func(l *scaler.Loop) { l.Tick(context.Background()); l.Wait(); now = now.Add(time.Second) }
	before := run()
	tick(before)
	tick(before)
	served := summary(t, fakes[1])
	if !strings.HasPrefix(served, "slot1=ready/") {
		t.Fatalf("not serving after two ticks: %s", served)
	}
	// The first instance restarts; the rebuild gets as far as pointing
	// slot1 back at its container, and slotscaler is gone before it ends.
	fakes[0].Restart()
	first.refuse(true)
	tick(before)
	first.refuse(false)
	after := run()
	tick(after)
	if got := summary(t, fakes[1]); got != served {
		t.Errorf("the instance that did not restart changed:\n was: %s\n now: %s", served, got)
	}
	if a, b := summary(t, fakes[0]), summary(t, fakes[1]); a != b {
		t.Errorf("the restarted instance was not rebuilt:\n a: %s\n b: %s", a, b)
	}
}

// refusingLB refuses every admin state change while told to.
type refusingLB struct {
	scaler.LB
	mu  sync.Mutex
	off bool
}

func (r *refusingLB) refuse(on bool) { r.mu.Lock(); r.off = on; r.mu.Unlock() }

func (r *refusingLB) Apply(ctx context.Context, changes []scaler.Change) []error {
	r.mu.Lock()
	off := r.off
	r.mu.Unlock()
	return applyRefusing(ctx, r.LB, changes, func(c scaler.Change) error {
		if off && c.Op == scaler.ChangeState {
			return errors.New("set server state: connection reset by peer")
		}
		return nil
	})
}

// applyRefusing applies changes on lb but those refuse fails (with its
// error), keeping each change's place in the errors.
func applyRefusing(ctx context.Context, lb scaler.LB, changes []scaler.Change, refuse func(scaler.Change) error) []error {
	errs := make([]error, len(changes))
	var pass []scaler.Change
	var at []int
	for i, c := range changes {
		if errs[i] = refuse(c); errs[i] != nil {
			continue
		}
		pass, at = append(pass, c), append(at, i)
	}
	for k, err := range lb.Apply(ctx, pass) {
		errs[at[k]] = err
	}
	return errs
}

// A change through a Mirror: one batch per instance, and a maint or delete
// of a dynamic server one instance lacks (it restarted) is done there,
// while a failure elsewhere still fails the change.
func TestMirrorApply(t *testing.T) {
	ctx := context.Background()
	fakes := mirroredFakes(config.ModeDynamic, fakeengine.New("node1", 4), time.Now)
	lo := netip.MustParseAddr("127.0.0.1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fakes[0].AddServer(ctx, "web", "slot1", lo, 8080, runtimeapi.ServerOptions{}))
	must(fakes[0].AddServer(ctx, "web", "slot2", lo, 8081, runtimeapi.ServerOptions{}))
	lbs := []scaler.LB{haproxy.New(fakes[0]), haproxy.New(fakes[1])}
	m := scaler.NewMirror(lbs, []string{"a", "b"}, func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{}, true }, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	errs := m.Apply(ctx, []scaler.Change{
		scaler.SetState("web", "slot1", scaler.AdminMaint),
		scaler.DelServer("web", "slot1"),
		scaler.SetState("web", "slot2", scaler.AdminDrain),
	})
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("maint and delete of a server instance b lacks: %v, %v; want done", errs[0], errs[1])
	}
	if !errors.Is(errs[2], scaler.ErrNoSuchServer) || !strings.Contains(errs[2].Error(), "b: ") {
		t.Errorf("drain of a server instance b lacks: %v, want b's no such server", errs[2])
	}
	if got := summary(t, fakes[0]); got != "slot2=drain/w1/127.0.0.1:8081" {
		t.Errorf("instance a: %s", got)
	}
}

// countingLB counts the reads of one instance.
type countingLB struct {
	scaler.LB
	backend, backends int
}

func (c *countingLB) Backend(ctx context.Context, name string) (scaler.Backend, error) {
	c.backend++
	return c.LB.Backend(ctx, name)
}

func (c *countingLB) Backends(ctx context.Context, names []string) (map[string]scaler.Backend, error) {
	c.backends++
	return c.LB.Backends(ctx, names)
}

// A Mirror reads every backend of a tick in one pass per instance, and a
// backend it cannot read on every instance fails alone (BackendErrors):
// the others are merged and returned.
func TestMirrorBackendsOnePassPerInstance(t *testing.T) {
	ctx := context.Background()
	fakes := mirroredFakes(config.ModeTemplate, fakeengine.New("node1", 4), time.Now)
	for _, f := range fakes {
		f.DeclareBackend("api", "roundrobin")
		f.DeclareTemplate("api", "slot", 2, netip.MustParseAddrPort("127.0.0.1:9"))
	}
	fakes[1].DeclareBackend("only-a", "roundrobin") // only on instance b
	counts := []*countingLB{{LB: haproxy.New(fakes[0])}, {LB: haproxy.New(fakes[1])}}
	m := scaler.NewMirror([]scaler.LB{counts[0], counts[1]}, []string{"a", "b"}, func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{}, false },
		scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	bs, err := m.Backends(ctx, []string{"web", "api", "only-a"})
	failed, ok := errors.AsType[scaler.BackendErrors](err)
	if !ok || len(failed) != 1 || failed["only-a"] == nil || !strings.Contains(failed["only-a"].Error(), "a: backend only-a is not in HAProxy's stats") {
		t.Fatalf("err %v, want only-a failed on instance a", err)
	}
	if len(bs["web"].Servers) != 4 || len(bs["api"].Servers) != 2 || len(bs) != 2 {
		t.Errorf("backends read: %v", bs)
	}
	for i, c := range counts {
		if c.backends != 1 || c.backend != 0 {
			t.Errorf("instance %d: %d passes and %d single reads, want 1 pass", i, c.backends, c.backend)
		}
	}
	if _, err := m.Backend(ctx, "only-a"); err == nil || !strings.Contains(err.Error(), "only-a") {
		t.Errorf("Backend of a backend instance a lacks: %v", err)
	}
}

// summaryOf is summary for any backend.
func summaryOf(t *testing.T, f *runtimeapi.Fake, backend string) string {
	t.Helper()
	b, err := f.Backend(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(b.Servers, func(a, b runtimeapi.Server) int { return strings.Compare(a.Name, b.Name) })
	var out []string
	for _, s := range b.Servers {
		out = append(out, fmt.Sprintf("%s=%s/w%d/%s:%d", s.Name, s.Admin, s.Weight, s.Addr, s.Port))
	}
	return strings.Join(out, " ")
}

// hookLB is one instance with a hook before its Backends pass, and a next
// batch cut short as by a lost connection after cut changes answered, or
// changes refused while refuse is on.
type hookLB struct {
	scaler.LB
	beforeBackends func()
	cut            int // > 0: the next Apply answers this many changes only
	refuse         bool
	applied        []scaler.Change
}

func (h *hookLB) Backends(ctx context.Context, names []string) (map[string]scaler.Backend, error) {
	if h.beforeBackends != nil {
		h.beforeBackends()
		h.beforeBackends = nil
	}
	return h.LB.Backends(ctx, names)
}

func (h *hookLB) Apply(ctx context.Context, changes []scaler.Change) []error {
	h.applied = append(h.applied, changes...)
	if h.refuse {
		return applyRefusing(ctx, h.LB, changes, func(c scaler.Change) error {
			return fmt.Errorf("%s: %w: dial: connection refused", c, runtimeapi.ErrNotAnswered)
		})
	}
	if h.cut <= 0 || h.cut >= len(changes) {
		return h.LB.Apply(ctx, changes)
	}
	n := h.cut
	h.cut = 0
	errs := append(h.LB.Apply(ctx, changes[:n]), make([]error, len(changes)-n)...)
	for j := n; j < len(changes); j++ {
		errs[j] = fmt.Errorf("%s: %w: read: connection reset by peer", changes[j], runtimeapi.ErrNotAnswered)
	}
	return errs
}

// twoBackends are two instances with backends web (four template or no
// dynamic slots) and api (two), slot1 of each serving on both.
func twoBackends(t *testing.T, mode string) ([]*runtimeapi.Fake, []*hookLB, *scaler.Mirror) {
	t.Helper()
	ctx := context.Background()
	fakes := mirroredFakes(mode, fakeengine.New("node1", 4), time.Now)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, f := range fakes {
		f.DeclareBackend("api", "roundrobin")
		if mode == config.ModeTemplate {
			f.DeclareTemplate("api", "slot", 2, netip.MustParseAddrPort("127.0.0.1:9"))
		}
		for be, port := range map[string]int{"web": 8080, "api": 8081} {
			var err error
			if mode == config.ModeTemplate {
				err = f.SetAddr(ctx, be, "slot1", lo, port)
			} else {
				err = f.AddServer(ctx, be, "slot1", lo, port, runtimeapi.ServerOptions{Check: true})
			}
			if err == nil {
				err = f.SetState(ctx, be, "slot1", runtimeapi.AdminReady)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	hooks := []*hookLB{{LB: haproxy.New(fakes[0])}, {LB: haproxy.New(fakes[1])}}
	opts := func(string) (scaler.ServerOptions, bool) {
		return scaler.ServerOptions{Check: true}, mode == config.ModeDynamic
	}
	m := scaler.NewMirror([]scaler.LB{hooks[0], hooks[1]}, []string{"a", "b"}, opts, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return fakes, hooks, m
}

// twoBackendsRead is twoBackends read once through the Mirror, which then
// has both instances' history.
func twoBackendsRead(t *testing.T, mode string) ([]*runtimeapi.Fake, []*hookLB, *scaler.Mirror) {
	t.Helper()
	fakes, hooks, m := twoBackends(t, mode)
	if _, err := m.Backend(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	return fakes, hooks, m
}

// refusedBy applies changes through m while instance i refuses them:
// each must fail.
func refusedBy(t *testing.T, m *scaler.Mirror, hooks []*hookLB, i int, changes ...scaler.Change) {
	t.Helper()
	hooks[i].refuse = true
	defer func() { hooks[i].refuse = false }()
	for j, err := range m.Apply(context.Background(), changes) {
		if err == nil {
			t.Fatalf("%s: not refused by instance %d", changes[j], i)
		}
	}
}

func sameOn(t *testing.T, fakes []*runtimeapi.Fake, when string) {
	t.Helper()
	for _, be := range []string{"web", "api"} {
		if a, b := summaryOf(t, fakes[0], be), summaryOf(t, fakes[1], be); a != b {
			t.Errorf("%s: backend %s differs\n a: %s\n b: %s", when, be, a, b)
		}
	}
}

// A rebuild's batch over two backends cut short by a lost connection: a
// backend whose changes all took is good, one whose changes were not
// reached fails alone and is rebuilt again at the next read.
func TestMirrorRebuildBatchCutShortOverTwoBackends(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		for _, cut := range []int{1, 2, 3, 5, 8, 12, 13, 15} {
			t.Run(fmt.Sprintf("%s/cut%d", mode, cut), func(t *testing.T) {
				ctx := context.Background()
				fakes, hooks, m := twoBackends(t, mode)
				names := []string{"web", "api"}
				if _, err := m.Backends(ctx, names); err != nil {
					t.Fatal(err)
				}
				fakes[1].Restart()
				hooks[1].cut = cut
				hooks[1].applied = nil
				_, err := m.Backends(ctx, names)
				failed, _ := errors.AsType[scaler.BackendErrors](err)
				var webChanges int
				for _, c := range hooks[1].applied {
					if c.Backend == "web" {
						webChanges++
					}
				}
				if cut < webChanges && failed["web"] == nil {
					t.Errorf("web's changes cut short after %d of %d, web not failed: %v", cut, webChanges, err)
				}
				if cut >= webChanges && failed["web"] != nil {
					t.Errorf("web's %d changes all answered, web failed: %v", webChanges, err)
				}
				if cut < len(hooks[1].applied) && failed["api"] == nil {
					t.Errorf("api's changes not all reached, api not failed: %v", err)
				}
				if _, err := m.Backends(ctx, names); err != nil {
					t.Fatalf("the read after: %v", err)
				}
				sameOn(t, fakes, "after the read after")
				if _, err := m.Backends(ctx, names); err != nil {
					t.Fatalf("a third read: %v", err)
				}
				sameOn(t, fakes, "after a third read")
			})
		}
	}
}

// One backend with history, another without: an instance restarting
// between the pass's first show info and its backends' read is rebuilt
// for both.
func TestMirrorRestartDuringPassWithAndWithoutHistory(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			fakes, hooks, m := twoBackends(t, mode)
			if _, err := m.Backend(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			hooks[1].beforeBackends = fakes[1].Restart
			if _, err := m.Backends(ctx, []string{"web", "api"}); err != nil {
				t.Fatal(err)
			}
			sameOn(t, fakes, "after the restart during the pass")
			if got := summaryOf(t, fakes[1], "api"); !strings.HasPrefix(got, "slot1=ready/") || !strings.Contains(got, "127.0.0.1:8081") {
				t.Errorf("api on b: %s", got)
			}
		})
	}
}

// An add refused in a rebuild fails its backend only; the changes of that
// server sent after it in the same batch change nothing, and the next read
// completes the rebuild.
func TestMirrorRefusedAddFailsItsBackendOnly(t *testing.T) {
	ctx := context.Background()
	fakes, hooks, m := twoBackends(t, config.ModeDynamic)
	names := []string{"web", "api"}
	if _, err := m.Backends(ctx, names); err != nil {
		t.Fatal(err)
	}
	fakes[1].Restart()
	// b refuses web's adds: an add that failed leaves no server.
	plain := hooks[1].LB
	hooks[1].LB = adderFilter{plain, "web"}
	_, err := m.Backends(ctx, names)
	failed, _ := errors.AsType[scaler.BackendErrors](err)
	if failed["web"] == nil || failed["api"] != nil {
		t.Errorf("err %v, want web failed alone", err)
	}
	if got := summaryOf(t, fakes[1], "web"); got != "" {
		t.Errorf("web on b after refused adds: %q, want no server", got)
	}
	hooks[1].LB = plain
	if _, err := m.Backends(ctx, names); err != nil {
		t.Fatal(err)
	}
	sameOn(t, fakes, "after the read after")
}

// adderFilter refuses the adds of one backend and passes on the rest.
type adderFilter struct {
	scaler.LB
	backend string
}

func (a adderFilter) Apply(ctx context.Context, changes []scaler.Change) []error {
	return applyRefusing(ctx, a.LB, changes, func(c scaler.Change) error {
		if c.Op == scaler.ChangeAdd && c.Backend == a.backend {
			return errors.New("add server: refused")
		}
		return nil
	})
}

// An instance whose first sync failed (no history of it) restarts, and
// its rebuild gets as far as pointing slot1 back at its container, still
// in maint: the next read goes on rebuilding it, and does not follow that
// maint onto the other instance, where slot1 serves (sim seed 4241 held
// slot1 there for an operator's maint).
func TestMirrorRebuildsInstanceWithoutHistory(t *testing.T) {
	ctx := context.Background()
	fakes := mirroredFakes(config.ModeTemplate, fakeengine.New("local", 30000), time.Now)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, f := range fakes {
		for i, slot := range []string{"slot1", "slot2"} {
			if err := errors.Join(f.SetAddr(ctx, "web", slot, lo, 8080+i), f.SetWeight(ctx, "web", slot, 100), f.SetState(ctx, "web", slot, runtimeapi.AdminReady)); err != nil {
				t.Fatal(err)
			}
		}
	}
	second := &refusingLB{LB: haproxy.New(fakes[1])}
	m := scaler.NewMirror([]scaler.LB{haproxy.New(fakes[0]), second}, []string{"a", "b"}, func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{}, false }, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// An operator's drain on a that b does not take: b has no history.
	if err := fakes[0].SetState(ctx, "web", "slot2", runtimeapi.AdminDrain); err != nil {
		t.Fatal(err)
	}
	second.refuse(true)
	if _, err := m.Backend(ctx, "web"); err == nil {
		t.Fatal("b took the drain it was told to refuse")
	}
	fakes[1].Restart()
	if _, err := m.Backend(ctx, "web"); err == nil {
		t.Fatal("b's rebuild completed while it refused every state")
	}
	second.refuse(false)
	if _, err := m.Backend(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	want := "slot1=ready/w1/127.0.0.1:8080 slot2=drain/w1/127.0.0.1:8081 slot3=maint/w1/127.0.0.1:9 slot4=maint/w1/127.0.0.1:9"
	for i, f := range fakes {
		if got := summary(t, f); got != want {
			t.Errorf("instance %d:\n got: %s\nwant: %s", i, got, want)
		}
	}
}

// failingLoads fails every Loads while told to.
type failingLoads struct {
	scaler.LB
	fail bool
}

func (f *failingLoads) Loads(ctx context.Context, names []string) (map[string]scaler.BackendLoad, error) {
	if f.fail {
		return nil, errors.New("read: connection reset by peer")
	}
	return f.LB.Loads(ctx, names)
}

// A Mirror's Loads sums the instances' counters, leaves out a backend some
// instance lacks, and fails when any instance fails: a probe never judges
// on part of the traffic.
func TestMirrorLoads(t *testing.T) {
	ctx := context.Background()
	fakes := mirroredFakes(config.ModeTemplate, fakeengine.New("local", 30000), time.Now)
	fakes[0].DeclareBackend("api", "roundrobin") // on one instance only
	for i, f := range fakes {
		if err := f.SetLoad("web", "slot1", 3+i, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.SetBackendQueue("web", 1); err != nil {
			t.Fatal(err)
		}
	}
	second := &failingLoads{LB: haproxy.New(fakes[1])}
	m := scaler.NewMirror([]scaler.LB{haproxy.New(fakes[0]), second}, []string{"a", "b"}, nil, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	got, err := m.Loads(ctx, []string{"web", "api"})
	// Each instance: slot1's sessions plus the backend's queued request.
	want := map[string]scaler.BackendLoad{"web": {Sessions: 3 + 1 + 4 + 1, Queue: 2}}
	if err != nil || !maps.Equal(want, got) {
		t.Errorf("Loads = %v, %v; want %v", got, err, want)
	}
	second.fail = true
	if got, err := m.Loads(ctx, []string{"web"}); err == nil || !strings.Contains(err.Error(), "b: ") {
		t.Errorf("Loads with instance b failing = %v, %v; want b's error", got, err)
	}
}

// An instance that refused a change another took is brought to the
// others at the next read, not the others back to it: taken as the more
// restrictive, b's drain undid the undrain a took, and b's weight 0 the
// weight 100% (the slot then counted as capacity nowhere).
func TestMirrorMissedChangeIsMadeGood(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			fakes, hooks, m := twoBackendsRead(t, mode)
			for _, err := range m.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminDrain), scaler.SetWeight("web", "slot1", 0)}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			refusedBy(t, m, hooks, 1, scaler.SetState("web", "slot1", scaler.AdminReady), scaler.SetWeight("web", "slot1", 100))
			took := summaryOf(t, fakes[0], "web")
			hooks[0].applied = nil
			b, err := m.Backend(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			if srv, _ := b.Server("slot1"); srv.Admin != scaler.AdminReady || srv.Weight == 0 {
				t.Errorf("merged slot1: %s at weight %d, want ready at its weight", srv.Admin, srv.Weight)
			}
			if len(hooks[0].applied) > 0 || summaryOf(t, fakes[0], "web") != took {
				t.Errorf("a, which took the changes, was changed: %v", hooks[0].applied)
			}
			sameOn(t, fakes, "after the read")
			// In step now: a drain made on b's socket alone is an
			// operator's again, followed on a.
			if err := fakes[1].SetState(ctx, "web", "slot1", runtimeapi.AdminDrain); err != nil {
				t.Fatal(err)
			}
			if b, err = m.Backend(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			if srv, _ := b.Server("slot1"); srv.Admin != scaler.AdminDrain {
				t.Errorf("merged slot1 after an operator's drain on b: %s, want drain", srv.Admin)
			}
			sameOn(t, fakes, "after the operator's drain")
		})
	}
}

// A miss is made good only from an instance that took the change and did
// not restart since: with none, the views merge as they are.
func TestMirrorMissForgottenWhenItsSourceRestarted(t *testing.T) {
	ctx := context.Background()
	fakes, hooks, m := twoBackendsRead(t, config.ModeTemplate)
	refusedBy(t, m, hooks, 1, scaler.SetState("web", "slot1", scaler.AdminDrain))
	fakes[0].Restart()
	bs, err := m.Backends(ctx, []string{"web", "api"})
	if err != nil {
		t.Fatal(err)
	}
	if srv, _ := bs["web"].Server("slot1"); srv.Admin != scaler.AdminReady {
		t.Errorf("merged slot1: %s, want b's ready (a restarted: the drain is lost)", srv.Admin)
	}
	sameOn(t, fakes, "after the rebuild")
}

// A miss ends when the instance takes a later change of that field: an
// operator's maint made on its socket after that is theirs, followed on
// the others (sim seed 1323: a weight 100% b refused, then took on a
// retry, kept b's slot out of the merge, and the operator's maint there
// was set back to ready).
func TestMirrorMissMadeUpByALaterChange(t *testing.T) {
	ctx := context.Background()
	fakes, hooks, m := twoBackendsRead(t, config.ModeTemplate)
	weight := scaler.SetWeight("web", "slot1", 100)
	refusedBy(t, m, hooks, 1, weight)
	if err := m.Apply(ctx, []scaler.Change{weight})[0]; err != nil {
		t.Fatal(err)
	}
	if err := fakes[1].SetState(ctx, "web", "slot1", runtimeapi.AdminMaint); err != nil {
		t.Fatal(err)
	}
	b, err := m.Backend(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if srv, _ := b.Server("slot1"); srv.Admin != scaler.AdminMaint {
		t.Errorf("merged slot1 after an operator's maint on b: %s, want maint", srv.Admin)
	}
	if got := summaryOf(t, fakes[1], "web"); !strings.HasPrefix(got, "slot1=maint/") {
		t.Errorf("b: %s, want the operator's maint kept", got)
	}
}

// Read for the first time, an instance of dynamic slots that started
// lately beside one up for longer is rebuilt from it: a rebuild that a kill
// cut short, its note lost, left slot1 re-added in maint at its container's
// address, which the merge copied onto the serving instance (sim scenario
// TestScenarioHalfRebuiltInstanceAfterRestart). HAProxy brings no dynamic
// server back across a reload, so it needs no lost slot to tell (review:
// with slot1 alone re-added, it went to maint on both). Both started lately
// (a boot), neither is.
func TestMirrorRebuildsInstanceStartedLately(t *testing.T) {
	for _, tt := range []struct {
		name  string
		slots int           // serving on a
		up    time.Duration // a's start before b's
		want  string        // on both after the read
	}{
		{"slot2 lost", 2, time.Minute, "slot1=ready/w1/127.0.0.1:8080 slot2=ready/w1/127.0.0.1:8081"},
		{"every slot re-added", 1, time.Minute, "slot1=ready/w1/127.0.0.1:8080"},
		{"both just started", 2, time.Second, "slot1=maint/w1/127.0.0.1:8080 slot2=ready/w1/127.0.0.1:8081"}, // merged as they are, the lost slot2 rebuilt
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
			fakes := mirroredFakes(config.ModeDynamic, fakeengine.New("local", 30000), func() time.Time { return now })
			lo := netip.MustParseAddr("127.0.0.1")
			fakes[0].Restart() // started now
			for i := range tt.slots {
				slot := fmt.Sprintf("slot%d", i+1)
				if err := errors.Join(fakes[0].AddServer(ctx, "web", slot, lo, 8080+i, runtimeapi.ServerOptions{Check: true}), fakes[0].SetState(ctx, "web", slot, runtimeapi.AdminReady)); err != nil {
					t.Fatal(err)
				}
			}
			now = now.Add(tt.up)
			fakes[1].Restart()
			now = now.Add(time.Second)
			if err := fakes[1].AddServer(ctx, "web", "slot1", lo, 8080, runtimeapi.ServerOptions{Check: true}); err != nil {
				t.Fatal(err)
			}
			m := scaler.NewMirror([]scaler.LB{haproxy.New(fakes[0]), haproxy.New(fakes[1])}, []string{"a", "b"}, func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{Check: true}, true }, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if _, err := m.Backend(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			for i, f := range fakes {
				if got := summary(t, f); got != tt.want {
					t.Errorf("instance %d: %s, want %s", i, got, tt.want)
				}
			}
		})
	}
}

// An instance reloaded with the server state file a few seconds before
// slotscaler's first read keeps every slot: not taken for restarted, the
// operator's drain it restored stands, and is followed on the other
// (review: rebuilt from the other, the drain was lost).
func TestMirrorKeepsInstanceReloadedWithItsState(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	fakes := mirroredFakes(config.ModeTemplate, fakeengine.New("local", 30000), func() time.Time { return now })
	lo := netip.MustParseAddr("127.0.0.1")
	fakes[1].Restart()
	if err := errors.Join(fakes[1].SetAddr(ctx, "web", "slot1", lo, 8080), fakes[1].SetState(ctx, "web", "slot1", runtimeapi.AdminReady)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	fakes[0].Restart() // a reload; the state file brings the operator's drain back
	if err := errors.Join(fakes[0].SetAddr(ctx, "web", "slot1", lo, 8080), fakes[0].SetState(ctx, "web", "slot1", runtimeapi.AdminDrain)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	m := scaler.NewMirror([]scaler.LB{haproxy.New(fakes[0]), haproxy.New(fakes[1])}, []string{"a", "b"}, func(string) (scaler.ServerOptions, bool) { return scaler.ServerOptions{Check: true}, false }, scaler.WallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b, err := m.Backend(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if srv, _ := b.Server("slot1"); srv.Admin != scaler.AdminDrain {
		t.Errorf("merged slot1: %s, want the operator's drain a's state file restored", srv.Admin)
	}
	if a, b := summary(t, fakes[0]), summary(t, fakes[1]); a != b {
		t.Errorf("instances differ:\n a: %s\n b: %s", a, b)
	}
}

// refused is a change one instance refuses.
type refused struct {
	c       scaler.Change
	refuser int
}

// Misses crossed between two reads: each field is made good from an
// instance that took its change, whichever instance the merged slot starts
// from (review: the base's missed field was pushed onto the other). A
// failed operator's change ends a miss where it took, and starts none.
func TestMirrorCrossedMisses(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tt := range []struct {
		name  string
		steps []refused
		want  string // slot1 on both
	}{
		{name: "a missed the weight, b the undrain", want: "ready/w1/127.0.0.1:8080", steps: []refused{{scaler.SetState("web", "slot1", scaler.AdminReady), 1}, {scaler.SetWeight("web", "slot1", 100), 0}}},
		{name: "a missed the undrain, b the weight", want: "ready/w1/127.0.0.1:8080", steps: []refused{{scaler.SetState("web", "slot1", scaler.AdminReady), 0}, {scaler.SetWeight("web", "slot1", 100), 1}}},
		{name: "a missed an address, b a weight", want: "drain/w1/127.0.0.1:9090", steps: []refused{{scaler.SetAddr("web", "slot1", lo, 9090), 0}, {scaler.SetWeight("web", "slot1", 100), 1}}},
		{name: "b missed the undrain, then took an lbctl drain a refused", want: "drain/w0/127.0.0.1:8080", steps: []refused{{scaler.SetState("web", "slot1", scaler.AdminReady), 1}, {scaler.SetState("web", "slot1", scaler.AdminDrain).FromOperator(), 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fakes, hooks, m := twoBackendsRead(t, config.ModeTemplate)
			for _, err := range m.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminDrain), scaler.SetWeight("web", "slot1", 0)}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, st := range tt.steps {
				refusedBy(t, m, hooks, st.refuser, st.c)
			}
			if _, err := m.Backend(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			for i, f := range fakes {
				if got, _, _ := strings.Cut(summary(t, f), " "); got != "slot1="+tt.want {
					t.Errorf("instance %d: %s, want slot1=%s", i, got, tt.want)
				}
			}
		})
	}
}
