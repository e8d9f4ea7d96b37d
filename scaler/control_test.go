package scaler_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

func TestPinHoldsUntilResume(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	h.ticks(40) // no load: autoscaling would stay at 1
	if got := h.serving(); got != 3 {
		t.Fatalf("pinned at 3, serving %d", got)
	}
	st, _ := h.loop.Service("web")
	if st.Control != "pinned" || st.Pinned != 3 || st.Reason != scaler.ReasonPinned {
		t.Errorf("status control %q pinned %d reason %q", st.Control, st.Pinned, st.Reason)
	}
	if err := h.loop.Resume("web"); err != nil {
		t.Fatal(err)
	}
	h.ticks(35)
	if got := h.serving(); got != 1 {
		t.Fatalf("resumed: want back to 1 after the window, serving %d", got)
	}
	for _, c := range []struct {
		name string
		n    int
		want error
	}{{"web", 5, scaler.ErrInvalid}, {"web", -1, scaler.ErrInvalid}, {"nope", 1, scaler.ErrUnknown}} {
		if err := h.loop.Pin(c.name, c.n); !errors.Is(err, c.want) {
			t.Errorf("Pin(%s, %d) = %v, want %v", c.name, c.n, err, c.want)
		}
	}
}

func TestPauseFreezesDecisionsButReplacesUnhealthy(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	h.load(map[string]int{"slot1": 15})
	h.tick()
	if err := h.loop.Pause("web"); err != nil {
		t.Fatal(err)
	}
	h.load(map[string]int{"slot1": 40, "slot2": 40})
	h.ticks(3)
	if got := h.serving(); got != 2 {
		t.Fatalf("paused at 2, serving %d", got)
	}
	cs, _ := h.engine.Containers(context.Background())
	h.engine.Remove(context.Background(), cs[0].ID, 0)
	h.ticks(3)
	if got := h.serving(); got != 2 || h.engine.Starts != 3 {
		t.Fatalf("paused: a lost container must still be replaced: serving %d, starts %d", got, h.engine.Starts)
	}
}

func TestOperatorDrainAndEnableThroughTheLoop(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	ctx := context.Background()
	if err := h.loop.DrainSlot(ctx, "web", "slot1"); err != nil {
		t.Fatal(err)
	}
	h.ticks(3)
	st, _ := h.loop.Service("web")
	if st.Replicas.Operator != 1 || st.Replicas.Serving != 1 || st.Slots[0].State != scaler.SlotOperator {
		t.Fatalf("after an operator drain: %+v", st.Replicas)
	}
	if err := h.loop.EnableSlot(ctx, "web", "slot1"); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if st, _ := h.loop.Service("web"); st.Replicas.Serving != 2 {
		t.Fatalf("enabled: want slot1 serving again: %+v", st.Replicas)
	}
	for _, c := range []struct{ backend, slot string }{{"nope", "slot1"}, {"web", "slot9"}} {
		if err := h.loop.DrainSlot(ctx, c.backend, c.slot); !errors.Is(err, scaler.ErrUnknown) {
			t.Errorf("DrainSlot(%s/%s) = %v, want ErrUnknown", c.backend, c.slot, err)
		}
	}
	if err := h.loop.DrainSlot(ctx, "web", "slot4"); !errors.Is(err, scaler.ErrConflict) {
		t.Errorf("draining a free slot = %v, want ErrConflict", err)
	}
}

// rolloutHarness has 3 replicas of web:1 serving.
func rolloutHarness(t *testing.T) *harness {
	h := newHarness(t, harnessOpt{tune: func(c *config.Config) { c.Services[0].UnhealthyAfter.Duration = 100 * time.Millisecond }})
	h.tick()
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	h.ticks(2)
	if err := h.loop.Resume("web"); err != nil {
		t.Fatal(err)
	}
	if h.serving() != 3 {
		t.Fatalf("setup: %s", h.slots())
	}
	return h
}

func (h *harness) rolloutUntilDone(max int) scaler.Rollout {
	h.t.Helper()
	for range max {
		h.tick()
		r, err := h.loop.RolloutStatus("web")
		if err != nil {
			h.t.Fatal(err)
		}
		if r.State != scaler.RolloutRunning && r.State != scaler.RolloutRollingBack {
			return r
		}
		if got := h.serving(); got < 3 {
			h.t.Fatalf("rollout dropped to %d serving: %s", got, h.slots())
		}
	}
	h.t.Fatalf("rollout not done in %d ticks", max)
	return scaler.Rollout{}
}

func TestRolloutSurgesAndSucceeds(t *testing.T) {
	h := rolloutHarness(t)
	if _, err := h.loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := h.loop.StartRollout("web", "web:3", time.Minute); !errors.Is(err, scaler.ErrConflict) {
		t.Errorf("second rollout: %v, want ErrConflict", err)
	}
	if err := h.loop.Pin("web", 2); !errors.Is(err, scaler.ErrConflict) {
		t.Errorf("pin during a rollout: %v, want ErrConflict", err)
	}
	h.load(map[string]int{"slot1": 40}) // demand during the rollout must not scale
	r := h.rolloutUntilDone(40)
	if r.State != scaler.RolloutSucceeded || r.Updated != 3 {
		t.Fatalf("rollout ended %s (%s), updated %d", r.State, r.Message, r.Updated)
	}
	if got := h.engine.Images(); !maps.Equal(got, map[string]int{"web:2": 3}) {
		t.Fatalf("images after the rollout: %v", got)
	}
	st, _ := h.loop.Service("web")
	if st.Image != "web:2" || st.Control != "auto" {
		t.Errorf("service image %q control %q after the rollout", st.Image, st.Control)
	}
}

func TestRolloutOfUnhealthyImageRollsBack(t *testing.T) {
	h := rolloutHarness(t)
	h.engine.SickImages["web:bad"] = true
	if _, err := h.loop.StartRollout("web", "web:bad", time.Minute); err != nil {
		t.Fatal(err)
	}
	r := h.rolloutUntilDone(40)
	if r.State != scaler.RolloutRolledBack || !strings.Contains(r.Message, "never became healthy") {
		t.Fatalf("rollout ended %s: %s", r.State, r.Message)
	}
	if got := h.engine.Images(); !maps.Equal(got, map[string]int{"web:1": 3}) {
		t.Fatalf("images after the rollback: %v", got)
	}
}

// With every slot taken, the rollout drains an old replica first.
func TestRolloutDrainFirstWithoutFreeSlot(t *testing.T) {
	h := newHarness(t, harnessOpt{tune: func(c *config.Config) { c.Services[0].DrainTimeout.Duration = 0 }})
	h.tick()
	if err := h.loop.Pin("web", 4); err != nil {
		t.Fatal(err)
	}
	h.ticks(2)
	h.loop.Resume("web")
	if _, err := h.loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	var r scaler.Rollout
	for range 60 {
		h.tick()
		r, _ = h.loop.RolloutStatus("web")
		if r.State != scaler.RolloutRunning {
			break
		}
		if got := h.serving(); got < 3 {
			t.Fatalf("drain-first went below replicas-1: %s", h.slots())
		}
	}
	if r.State != scaler.RolloutSucceeded || !maps.Equal(h.engine.Images(), map[string]int{"web:2": 4}) {
		t.Fatalf("rollout %s, images %v", r.State, h.engine.Images())
	}
}

// What HAProxy and the labels cannot tell survives a restart: the image a
// rollout left, a pin, and which drains are slotscaler's.
func TestStateSurvivesRestart(t *testing.T) {
	h := rolloutHarness(t)
	if _, err := h.loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	h.rolloutUntilDone(40)
	if err := h.loop.Pin("web", 3); err != nil {
		t.Fatal(err)
	}
	restarted, err := scaler.New(scaler.Options{Config: h.cfg, LB: h.lb, StateDir: h.stateDir,
		Hosts: h.hosts, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := restarted.Service("web")
	if st.Image != "web:2" || st.Control != "pinned" || st.Pinned != 3 {
		t.Errorf("after restart: image %q control %q pinned %d", st.Image, st.Control, st.Pinned)
	}
}

func TestReloadAppliesAtNextTick(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	next := *h.cfg
	next.Services = append([]config.Service(nil), h.cfg.Services...)
	next.Services[0].MinReplicas = 2
	if err := h.loop.Reload(&next); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if got := h.serving(); got != 2 {
		t.Fatalf("reloaded min_replicas 2: serving %d", got)
	}
	slower := next
	slower.Interval.Duration = 5 * time.Second
	if err := h.loop.Reload(&slower); !errors.Is(err, scaler.ErrConflict) {
		t.Errorf("interval change: %v, want ErrConflict (restart needed)", err)
	}
}

// A reload is listed in status at the next tick even when that tick reads
// nothing from HAProxy (the snapshot kept the old services until a tick
// succeeded: review).
func TestReloadListedWhileHAProxyDown(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	next := *h.cfg
	renamed := h.cfg.Services[0]
	renamed.Name = "web2"
	next.Services = []config.Service{renamed}
	if err := h.loop.Reload(&next); err != nil {
		t.Fatal(err)
	}
	h.lb.mu.Lock()
	h.lb.failInfo = true
	h.lb.mu.Unlock()
	h.tick()
	if _, err := h.loop.Service("web2"); err != nil {
		t.Errorf("service added by the reload, after a tick that read nothing: %v", err)
	}
	if _, err := h.loop.Service("web"); err == nil {
		t.Error("service removed by the reload is still listed")
	}
}

// An operator who weights a slot out (set weight 0) is respected like a
// drain: slotscaler does not weight it back in and covers with another.
func TestOperatorWeightZeroRespected(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	if err := h.lb.Fake.SetWeight(context.Background(), "web", "slot1", 0); err != nil {
		t.Fatal(err)
	}
	h.ticks(3)
	if got, want := h.slots(), "slot1=ready/up/w0 slot2=ready/up/w1"; !strings.HasPrefix(got, want) {
		t.Fatalf("got %s, want prefix %s", got, want)
	}
	st, _ := h.loop.Service("web")
	if st.Replicas.Operator != 1 {
		t.Errorf("replicas %+v: the weighted-out slot should count as an operator's", st.Replicas)
	}
}
