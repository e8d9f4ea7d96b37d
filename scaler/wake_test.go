package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

const wakeConfig = `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
interval: 100ms
services:
  - name: web
    backend: web
    container: {image: web:1, port: 8080}
    min_replicas: 0
    max_replicas: 3
    target: {sessions_per_replica: 10}
    stabilization: {scale_down: 1s}
    wake: {listen: 127.0.0.1:9301, idle_after: 1s}
`

// wakeAll holds n requests at once, as a burst at the wake listener.
func wakeAll(loop *scaler.Loop, n int, timeout time.Duration) (addrs []netip.AddrPort, releases []func(), errs []error) {
	addrs, releases, errs = make([]netip.AddrPort, n), make([]func(), n), make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { addrs[i], releases[i], errs[i] = loop.Wake(ctx, "web") })
	}
	wg.Wait()
	return addrs, releases, errs
}

// A burst held at a service at zero makes the running loop tick at once
// and start one replica; every request gets its address once its check
// passed; the released service goes back to zero after idle_after.
func TestWakeBurstStartsOneReplica(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(300 * time.Millisecond)
	if n := f.Engine.Count(); n != 0 {
		t.Fatalf("%d containers at zero, want 0", n)
	}

	begin := time.Now()
	addrs, releases, errs := wakeAll(f.Loop, 50, 10*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("wake %d: %v", i, err)
		}
		if addrs[i] != addrs[0] {
			t.Errorf("wake %d went to %s, wake 0 to %s: one replica should serve the burst", i, addrs[i], addrs[0])
		}
	}
	t.Logf("burst of 50 served by %s after %s", addrs[0], time.Since(begin).Round(time.Millisecond))
	if n := f.Engine.Count(); n != 1 {
		t.Errorf("%d containers started for the burst, want 1", n)
	}
	if !f.Engine.RunningOn(int(addrs[0].Port())) {
		t.Errorf("no container runs on %s", addrs[0])
	}
	time.Sleep(1500 * time.Millisecond) // past idle_after: requests still being passed on keep the replica
	if n := f.Engine.Count(); n != 1 {
		t.Fatalf("replica went while requests were still passed to it: %d containers", n)
	}
	for _, r := range releases {
		r()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Engine.Count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not back to zero: %d containers", f.Engine.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := f.Loop.Service("web"); st.Replicas.Serving != 0 || st.Desired != 0 {
		t.Errorf("status at zero: %+v", st.Replicas)
	}
}

// A held request starts its replica at once, not at the next tick: with
// an interval of an hour, the request is served within seconds of the
// loop's first tick.
func TestWakeDoesNotWaitForTheInterval(t *testing.T) {
	f := scalertest.New(t, strings.Replace(wakeConfig, "interval: 100ms", "interval: 1h", 1), scalertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(300 * time.Millisecond) // the first tick, then the loop sleeps for the interval
	begin := time.Now()
	_, releases, errs := wakeAll(f.Loop, 3, 5*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("wake %d with an interval of 1h: %v", i, err)
		}
		releases[i]()
	}
	t.Logf("served %s after the request, interval 1h", time.Since(begin).Round(time.Millisecond))
	if n := f.Engine.Count(); n != 1 {
		t.Errorf("%d containers started, want 1", n)
	}
}

// Pinned or paused at 0 the service is closed: Wake refuses at once and
// nothing starts. A rollout at zero records the image the next wake runs.
func TestWakeClosedAndRolloutAtZero(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	ctx := context.Background()
	tick := func() { f.Loop.Tick(ctx); f.Loop.Wait() }
	tick()
	if err := f.Loop.Pin("web", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Loop.Wake(ctx, "web"); !errors.Is(err, scaler.ErrClosed) {
		t.Fatalf("pinned at 0: Wake = %v, want ErrClosed", err)
	}
	tick()
	if n := f.Engine.Count(); n != 0 {
		t.Fatalf("closed service started %d containers", n)
	}
	if err := f.Loop.Resume("web"); err != nil {
		t.Fatal(err)
	}
	if err := f.Loop.Pause("web"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Loop.Wake(ctx, "web"); !errors.Is(err, scaler.ErrClosed) {
		t.Fatalf("paused at 0: Wake = %v, want ErrClosed", err)
	}
	if err := f.Loop.Resume("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		tick()
	}
	if r, _ := f.Loop.RolloutStatus("web"); r.State != scaler.RolloutSucceeded || f.Engine.Count() != 0 {
		t.Fatalf("rollout at zero: %s (%s), %d containers", r.State, r.Message, f.Engine.Count())
	}
	if err := wakeTicking(t, f, tick); err != nil {
		t.Fatalf("wake after rollout: %v", err)
	}
	if imgs := f.Engine.Images(); imgs["web:2"] != 1 || len(imgs) != 1 {
		t.Errorf("the wake after a rollout at zero ran %v, want web:2", imgs)
	}
}

// wakeTicking holds one request of web and runs tick until a replica
// serves it (Tick does not wait for a kick: the test ticks itself); it
// returns the wake's error.
func wakeTicking(t *testing.T, f *scalertest.Fixture, tick func()) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, release, err := f.Loop.Wake(ctx, "web")
		if release != nil {
			release()
		}
		result <- err
	}()
	for {
		tick()
		select {
		case err := <-result:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A reload may not add, remove or change a wake block (its listener starts
// with slotscaler); other changes of such a service still reload.
func TestReloadKeepsWake(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	for _, tt := range []struct {
		name    string
		edit    *strings.Replacer
		refused bool
	}{
		{"other key", strings.NewReplacer("max_replicas: 3", "max_replicas: 2"), false},
		{"wake listen", strings.NewReplacer("listen: 127.0.0.1:9301", "listen: 127.0.0.1:9302"), true},
		{"wake removed", strings.NewReplacer("    wake: {listen: 127.0.0.1:9301, idle_after: 1s}\n", "", "min_replicas: 0", "min_replicas: 1"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.edit.Replace(wakeConfig)))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Loop.Reload(cfg)
			if refused := errors.Is(err, scaler.ErrConflict); refused != tt.refused {
				t.Errorf("Reload = %v, want refused %v", err, tt.refused)
			}
		})
	}
}

// Business hours with scale to zero: a window keeps 2 replicas by day;
// outside it (min 0, max 2) the service sleeps once idle for idle_after,
// wakes on a request at night with one replica, sleeps again, and the
// next morning's window brings its 2 back. Ticks run on a fixed clock.
func TestWakeBusinessHours(t *testing.T) {
	yaml := strings.Replace(wakeConfig, "idle_after: 1s", "idle_after: 5m", 1) + `
    schedule:
      timezone: UTC
      windows: [{days: Mon-Fri, start: "09:00", end: "17:00", min_replicas: 2, max_replicas: 3}]
      outside: {min_replicas: 0, max_replicas: 2}
`
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC) // a Monday
	at := func(h, m int, day int) {
		mu.Lock()
		now = time.Date(2026, 11, 23+day, h, m, 0, 0, time.UTC)
		mu.Unlock()
	}
	f := scalertest.New(t, yaml, scalertest.Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	ctx := context.Background()
	// ticks runs ticks a second apart until want containers serve.
	ticks := func(what string, want int) {
		t.Helper()
		for range 30 {
			f.Loop.Tick(ctx)
			f.Loop.Wait()
			if st, _ := f.Loop.Service("web"); f.Engine.Count() == want && st.Replicas.Serving == want {
				return
			}
			mu.Lock()
			now = now.Add(time.Second)
			mu.Unlock()
		}
		st, _ := f.Loop.Service("web")
		t.Fatalf("%s: %d containers, %+v; want %d serving", what, f.Engine.Count(), st.Replicas, want)
	}
	ticks("Monday 16:00, in the window", 2)
	at(17, 0, 0)
	ticks("17:00, outside the window and idle since 16:00", 0)
	if st, _ := f.Loop.Service("web"); st.Min != 0 || st.Max != 2 {
		t.Errorf("outside the window: min %d, max %d; want 0, 2", st.Min, st.Max)
	}

	at(23, 0, 0)
	if err := wakeTicking(t, f, func() { f.Loop.Tick(ctx); f.Loop.Wait() }); err != nil {
		t.Fatalf("a request at 23:00: %v", err)
	}
	if n := f.Engine.Count(); n != 1 {
		t.Errorf("the night's wake started %d containers, want 1", n)
	}
	at(23, 4, 0)
	for range 5 {
		f.Loop.Tick(ctx)
		f.Loop.Wait()
	}
	if st, _ := f.Loop.Service("web"); f.Engine.Count() != 1 || st.Replicas.Serving != 1 {
		t.Fatalf("23:04, idle for less than idle_after: %d containers, %+v; want the one kept", f.Engine.Count(), st.Replicas)
	}
	at(23, 6, 0)
	ticks("23:06, idle_after after the night's request", 0)

	at(9, 0, 1)
	ticks("Tuesday 09:00, the window opens", 2)
}

// A tick's drains and undrains reach held requests with that tick's
// publish: the slot it begins to drain is no longer handed out, and the
// draining one it takes back is, at once (wakePublish tells them apart by
// the draining intents, which the tick's batch now sets and clears only
// at its flush, after the publish).
func TestWakeSeesTheTicksDrainsAndUndrains(t *testing.T) {
	h := newHarness(t, harnessOpt{tune: func(c *config.Config) {
		c.Services[0].Wake = &config.Wake{Listen: "127.0.0.1:9301", IdleAfter: config.Duration{Duration: time.Hour}}
	}})
	wakes := func() map[netip.AddrPort]bool {
		seen := map[netip.AddrPort]bool{}
		for range 6 {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			addr, release, err := h.loop.Wake(ctx, "web")
			cancel()
			if err != nil {
				t.Fatalf("wake: %v", err)
			}
			release()
			seen[addr] = true
		}
		return seen
	}
	drained := func() (string, netip.AddrPort) {
		b, err := h.lb.Fake.Backend(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Servers {
			if s.Admin == runtimeapi.AdminDrain {
				return s.Name, netip.AddrPortFrom(s.Addr, uint16(s.Port))
			}
		}
		return "", netip.AddrPort{}
	}
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	h.ticks(3)
	for i := 1; i <= 4; i++ {
		_ = h.lb.Fake.SetLoad("web", fmt.Sprintf("slot%d", i), 1, 0) // the drain lasts
	}
	if err := h.loop.Pin("web", 2); err != nil {
		t.Fatal(err)
	}
	h.tick()
	slot, at := drained()
	if slot == "" {
		t.Fatalf("no slot drained by the scale-down: %s", h.slots())
	}
	if seen := wakes(); seen[at] {
		t.Errorf("held requests went to %s (%s), which the tick began to drain: %v", slot, at, seen)
	}
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if s, _ := drained(); s != "" {
		t.Fatalf("%s still drained after the scale-up: %s", s, h.slots())
	}
	if seen := wakes(); !seen[at] {
		t.Errorf("held requests never went to %s (%s), which the tick took back: %v", slot, at, seen)
	}
}
