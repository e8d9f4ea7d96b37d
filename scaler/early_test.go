package scaler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// TestEarlyTick: the probe's trigger, on a fixed clock. One replica serves
// 2 sessions (target 4 each); the last tick decided to keep it.
func TestEarlyTick(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	p := scaler.Policy{SessionsPerReplica: 4, Tolerance: 0.1, MaxScaleUp: 4, QueueSustain: time.Second, ScaleUpCooldown: 10 * time.Second, ScaleDownWindow: time.Minute}
	obs := scaler.Observation{Now: t0, Serving: 1, Sessions: 2, CPU: -1, Limits: scaler.Limits{Min: 1, Max: 5, Window: -1}}
	seen := func(p scaler.Policy, o scaler.Observation, h scaler.History) scaler.TickSeen {
		d, h := scaler.Decide(p, o, h)
		return scaler.TickSeen{Obs: o, History: h, Decision: d}
	}
	steady := seen(p, obs, scaler.History{})
	queued := p
	queued.QueuePerReplica = 2
	for _, tt := range []struct {
		name        string
		p           scaler.Policy
		mode        scaler.ControlMode
		last        scaler.TickSeen
		base, probe scaler.BackendLoad
		want        bool
	}{
		{name: "rise above the target kicks", last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}, want: true},
		{name: "rise within the target does not", last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 4}},
		{name: "no change does not", last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 2}},
		// A drained slot's (or an operator's) 30 sessions are in scur, not
		// in the observation: a constant offset is no rise.
		{name: "constant offset of drained-slot sessions does not", last: steady, base: scaler.BackendLoad{Sessions: 32}, probe: scaler.BackendLoad{Sessions: 32}},
		{name: "a draining slot emptying does not", last: steady, base: scaler.BackendLoad{Sessions: 32}, probe: scaler.BackendLoad{Sessions: 3}},
		{name: "rise over the offset kicks", last: steady, base: scaler.BackendLoad{Sessions: 32}, probe: scaler.BackendLoad{Sessions: 44}, want: true},
		// scur counts queued requests: 8 queued are 8 in scur and 8 in
		// qcur, no session more.
		{name: "queued requests are not sessions too", last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 10, Queue: 8}},
		{name: "queue above its target kicks", p: queued, last: seen(queued, obs, scaler.History{}), base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 10, Queue: 8}, want: true},
		{name: "cooldown in force does not", last: seen(p, obs, scaler.History{LastScaleUp: t0.Add(-2 * time.Second)}), base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}},
		{name: "cooldown over kicks", last: seen(p, obs, scaler.History{LastScaleUp: t0.Add(-20 * time.Second)}), base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}, want: true},
		{name: "at max does not", last: seen(p, func() scaler.Observation { o := obs; o.Limits.Max = 1; return o }(), scaler.History{}), base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}},
		// The last tick already scaled up to 3 (no cooldown): the same load
		// again is not a reason, more load is.
		{name: "what the last tick decided does not", p: func() scaler.Policy { q := p; q.ScaleUpCooldown = 0; return q }(),
			last: seen(func() scaler.Policy { q := p; q.ScaleUpCooldown = 0; return q }(), func() scaler.Observation { o := obs; o.Sessions = 10; return o }(), scaler.History{}),
			base: scaler.BackendLoad{Sessions: 10}, probe: scaler.BackendLoad{Sessions: 11}},
		{name: "more than the last tick decided kicks", p: func() scaler.Policy { q := p; q.ScaleUpCooldown = 0; return q }(),
			last: seen(func() scaler.Policy { q := p; q.ScaleUpCooldown = 0; return q }(), func() scaler.Observation { o := obs; o.Sessions = 10; return o }(), scaler.History{}),
			base: scaler.BackendLoad{Sessions: 10}, probe: scaler.BackendLoad{Sessions: 16}, want: true},
		{name: "pinned does not", mode: scaler.ControlPinned, last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}},
		{name: "paused does not", mode: scaler.ControlPaused, last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}},
		{name: "rollout does not", mode: scaler.ControlRollout, last: steady, base: scaler.BackendLoad{Sessions: 2}, probe: scaler.BackendLoad{Sessions: 14}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.p == (scaler.Policy{}) {
				tt.p = p
			}
			if tt.mode == "" {
				tt.mode = scaler.ControlAuto
			}
			if got := scaler.EarlyTick(tt.p, tt.mode, tt.last, tt.base, tt.probe, t0.Add(200*time.Millisecond)); got != tt.want {
				t.Errorf("EarlyTick = %v, want %v (last decision %+v)", got, tt.want, tt.last.Decision)
			}
		})
	}
}

// tickTimes reports when each tick ended and its first service's status.
type tickTimes struct {
	scaler.Observer
	ticks chan tickAt
}

type tickAt struct {
	at     time.Time
	status scaler.ServiceStatus
}

func (o tickTimes) Event(scaler.Event) {}

func (o tickTimes) Tick(_ time.Duration, services []scaler.ServiceStatus, _ []scaler.HostStatus) {
	select {
	case o.ticks <- tickAt{time.Now(), services[0]}:
	default: // the test is not listening
	}
}

// TestRunTicksEarlyOnLoadRise: with an interval of 1 s, Run does not tick
// early while a free slot carries a constant 50 sessions (in the backend's
// scur, not capacity), and ticks within a few probe periods once the
// serving slot's sessions rise above the target.
func TestRunTicksEarlyOnLoadRise(t *testing.T) {
	cfg, err := config.Parse(fmt.Appendf(nil, harnessConfig, 10, config.ModeTemplate))
	if err != nil {
		t.Fatal(err)
	}
	engine := fakeengine.New("local", 30000)
	fake := fakeWeb(engine, 4)
	if err := fake.SetLoad("web", "slot4", 50, 0); err != nil {
		t.Fatal(err)
	}
	obs := tickTimes{ticks: make(chan tickAt, 1)}
	loop, err := scaler.New(scaler.Options{Config: cfg, LB: haproxy.New(fake), StateDir: t.TempDir(), Observer: obs, Clock: scaler.WallClock{},
		Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 10, Preferred: true, Engine: engine}},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- loop.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	next := func() tickAt {
		t.Helper()
		select {
		case tk := <-obs.ticks:
			return tk
		case <-ctx.Done():
			t.Fatal("no tick")
		}
		return tickAt{}
	}
	last := next()
	for last.status.Replicas.Serving != 1 {
		last = next()
	}
	// Two steady gaps: the 50 sessions of the free slot never kick.
	for range 2 {
		tk := next()
		if gap := tk.at.Sub(last.at); gap < 900*time.Millisecond {
			t.Fatalf("ticks %v apart with a constant load, want the interval (1s)", gap)
		}
		last = tk
	}
	time.Sleep(50 * time.Millisecond) // the read after the tick is made
	if err := fake.SetLoad("web", "slot1", 35, 0); err != nil {
		t.Fatal(err)
	}
	tk := next()
	if gap := tk.at.Sub(last.at); gap > 600*time.Millisecond {
		t.Errorf("tick %v after the last one on a load rise, want an early one (probe every 200ms)", gap)
	}
	if tk.status.Desired <= 1 {
		t.Errorf("the early tick decided %d replicas (%s), want a scale-up", tk.status.Desired, tk.status.Reason)
	}
}
