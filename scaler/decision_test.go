package scaler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func policy() Policy {
	return Policy{
		SessionsPerReplica: 50, Tolerance: 0.1, MaxScaleUp: 2,
		QueueSustain: 2 * time.Second, ScaleDownWindow: 2 * time.Minute,
		ScaleUpCooldown: 10 * time.Second, ScaleDownCooldown: 30 * time.Second,
	}
}

func TestDecide(t *testing.T) {
	lim := Limits{Min: 1, Max: 5, Window: -1}
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	old := []Recommendation{{At: ago(3 * time.Minute), Desired: 4}}
	for _, tt := range []struct {
		name      string
		p         func(*Policy)
		o         Observation
		h         History
		want      int
		reason    Reason
		limitedBy Reason
	}{
		{name: "within tolerance keeps count", o: Observation{Serving: 2, Sessions: 105, Limits: lim}, want: 2, reason: ReasonStable},
		{name: "sessions scale up", o: Observation{Serving: 2, Sessions: 200, Limits: lim}, want: 4, reason: ReasonSessions},
		{name: "step bounds a big jump", o: Observation{Serving: 1, Sessions: 500, Limits: lim}, want: 3, reason: ReasonSessions, limitedBy: ReasonStep},
		{name: "clamped to max", o: Observation{Serving: 4, Sessions: 1000, Limits: lim}, want: 5, reason: ReasonSessions, limitedBy: ReasonMax},
		{name: "below min scales up despite cooldown", o: Observation{Serving: 0, Limits: Limits{Min: 2, Max: 5}}, h: History{LastScaleUp: ago(time.Second)}, want: 2, reason: ReasonMin},
		{name: "sustained queue adds one", o: Observation{Serving: 2, Sessions: 100, Queue: 3, Limits: lim}, h: History{QueueSince: ago(5 * time.Second)}, want: 3, reason: ReasonQueueSustained},
		{name: "fresh queue waits", o: Observation{Serving: 2, Sessions: 100, Queue: 3, Limits: lim}, want: 2, reason: ReasonStable},
		{name: "queue target", p: func(p *Policy) { p.QueuePerReplica = 2 }, o: Observation{Serving: 2, Sessions: 100, Queue: 8, Limits: lim}, want: 4, reason: ReasonQueue},
		{name: "cpu", p: func(p *Policy) { p.SessionsPerReplica, p.CPUPercent = 0, 60 }, o: Observation{Serving: 2, CPU: 90, Limits: lim}, want: 3, reason: ReasonCPU},
		{name: "max over signals", p: func(p *Policy) { p.CPUPercent = 50 }, o: Observation{Serving: 2, Sessions: 150, CPU: 100, Limits: lim}, want: 4, reason: ReasonCPU},
		{name: "unknown cpu ignored", p: func(p *Policy) { p.CPUPercent = 50 }, o: Observation{Serving: 2, Sessions: 100, CPU: -1, Limits: lim}, want: 2, reason: ReasonStable},
		{name: "scale-up cooldown", o: Observation{Serving: 2, Sessions: 200, Limits: lim}, h: History{LastScaleUp: ago(2 * time.Second)}, want: 2, reason: ReasonSessions, limitedBy: ReasonCooldown},
		{name: "scale-down held by stabilization", o: Observation{Serving: 4, Sessions: 50, Limits: lim}, h: History{Recent: []Recommendation{{At: ago(30 * time.Second), Desired: 4}}}, want: 4, reason: ReasonSessions, limitedBy: ReasonStabilizing},
		{name: "scale-down to highest recent", o: Observation{Serving: 4, Sessions: 50, Limits: lim}, h: History{Recent: []Recommendation{{At: ago(90 * time.Second), Desired: 3}}}, want: 3, reason: ReasonSessions, limitedBy: ReasonStabilizing},
		{name: "scale-down after window", o: Observation{Serving: 4, Sessions: 50, Limits: lim}, h: History{Recent: old}, want: 1, reason: ReasonSessions},
		{name: "scale-down cooldown", o: Observation{Serving: 4, Sessions: 50, Limits: lim}, h: History{Recent: old, LastScaleDown: ago(10 * time.Second)}, want: 4, reason: ReasonSessions, limitedBy: ReasonCooldown},
		{name: "fresh history never scales down", o: Observation{Serving: 4, Sessions: 0, Limits: lim}, want: 4, reason: ReasonMin, limitedBy: ReasonStabilizing},
		{name: "off-hours max applies at once", o: Observation{Serving: 4, Sessions: 200, Limits: Limits{Min: 1, Max: 1}}, h: History{LastScaleDown: ago(time.Second)}, want: 1, reason: ReasonMax, limitedBy: ReasonMax},
		{name: "starting replicas count", o: Observation{Serving: 1, Starting: 2, Sessions: 150, Limits: lim}, want: 3, reason: ReasonStable},
		{name: "wake from zero", o: Observation{Held: 30, Limits: Limits{Min: 0, Max: 5}}, want: 1, reason: ReasonWake},
		{name: "wake ignores the scale-up cooldown", o: Observation{Held: 1, Limits: Limits{Min: 0, Max: 5}}, h: History{LastScaleUp: ago(time.Second)}, want: 1, reason: ReasonWake},
		{name: "closed: no wake at max 0", o: Observation{Held: 3, Limits: Limits{Min: 0, Max: 0}}, want: 0, reason: ReasonWake, limitedBy: ReasonMax},
		{name: "at zero without requests stays", o: Observation{Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old}, want: 0, reason: ReasonStable},
		{name: "starting from a wake is kept", o: Observation{Starting: 1, Held: 5, Limits: Limits{Min: 0, Max: 5}}, want: 1, reason: ReasonStable},
		{name: "held requests keep the last replica", p: func(p *Policy) { p.IdleAfter = time.Minute }, o: Observation{Serving: 1, Held: 1, Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old, LastActive: ago(time.Hour)}, want: 1, reason: ReasonSessions, limitedBy: ReasonIdle},
		{name: "last replica kept before idle_after", p: func(p *Policy) { p.IdleAfter = time.Minute }, o: Observation{Serving: 1, Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old, LastActive: ago(59 * time.Second)}, want: 1, reason: ReasonSessions, limitedBy: ReasonIdle},
		{name: "last replica goes after idle_after", p: func(p *Policy) { p.IdleAfter = time.Minute }, o: Observation{Serving: 1, Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old, LastActive: ago(time.Minute)}, want: 0, reason: ReasonSessions},
		{name: "closing goes to zero at once", p: func(p *Policy) { p.IdleAfter = time.Hour }, o: Observation{Serving: 2, Sessions: 40, Limits: Limits{Min: 0, Max: 0}}, h: History{LastActive: t0, LastScaleDown: ago(time.Second)}, want: 0, reason: ReasonMax, limitedBy: ReasonMax},
		{name: "idle floor does not hold above one", p: func(p *Policy) { p.IdleAfter = time.Hour }, o: Observation{Serving: 3, Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old, LastActive: t0}, want: 1, reason: ReasonSessions, limitedBy: ReasonIdle},
		{name: "nothing serving yet never shrinks", o: Observation{Serving: 0, Starting: 2, Limits: Limits{Min: 0, Max: 5}}, h: History{Recent: old}, want: 2, reason: ReasonStable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := policy()
			if tt.p != nil {
				tt.p(&p)
			}
			tt.o.Now = t0
			d, _ := Decide(p, tt.o, tt.h)
			if d.Desired != tt.want || d.Reason != tt.reason || d.LimitedBy != tt.limitedBy {
				t.Errorf("Decide = %+v, want desired %d reason %q limited by %q", d, tt.want, tt.reason, tt.limitedBy)
			}
		})
	}
}

// A service at zero wakes on a held request, serves, and goes back to zero
// only once idle_after has passed with no session, queue or held request
// (each of which restarts the wait), on a fixed clock.
func TestDecideScaleToZero(t *testing.T) {
	p := policy()
	p.IdleAfter = 5 * time.Minute
	lim := Limits{Min: 0, Max: 2, Window: -1}
	var h History
	replicas := 0
	type step struct {
		at                 time.Duration
		sessions, queue    float64
		held, wantReplicas int
	}
	var log []string
	for _, st := range []step{
		{at: 0, wantReplicas: 0},
		{at: time.Second, held: 1, wantReplicas: 1},         // wake
		{at: 2 * time.Second, sessions: 1, wantReplicas: 1}, // serving
		{at: 4 * time.Minute, wantReplicas: 1},              // idle for less than idle_after
		{at: 5 * time.Minute, queue: 1, wantReplicas: 1},    // a queue restarts the wait
		{at: 9 * time.Minute, held: 1, wantReplicas: 1},     // so does a held request
		{at: 14*time.Minute - time.Second, wantReplicas: 1}, // just before idle_after since then
		{at: 14 * time.Minute, wantReplicas: 0},             // idle_after without activity: to zero
		{at: 15 * time.Minute, wantReplicas: 0},             // stays at zero
		{at: 16 * time.Minute, held: 2, wantReplicas: 1},    // wakes again at once
	} {
		d, nh := Decide(p, Observation{Now: t0.Add(st.at), Serving: replicas, Sessions: st.sessions, Queue: st.queue, Held: st.held, Limits: lim}, h)
		h = nh
		replicas = d.Desired
		log = append(log, fmt.Sprintf("%s: %+v", st.at, d))
		if replicas != st.wantReplicas {
			t.Fatalf("at %s: %d replicas, want %d\n%s", st.at, replicas, st.wantReplicas, strings.Join(log, "\n"))
		}
	}
}

// Load that swings around the target every few seconds must not make the
// replica count swing: up once, then held by the stabilization window.
func TestDecideDoesNotFlap(t *testing.T) {
	p := policy()
	var h History
	replicas, changes := 4, 0
	for tick := range 600 { // ten minutes at 1s
		load := 180.0
		if tick/7%2 == 0 {
			load = 290
		}
		d, nh := Decide(p, Observation{Now: t0.Add(time.Duration(tick) * time.Second), Serving: replicas, Sessions: load, Limits: Limits{Min: 1, Max: 10}}, h)
		h = nh
		if d.Desired != replicas {
			changes++
			replicas = d.Desired
		}
	}
	if changes != 1 || replicas != 6 {
		t.Errorf("flapping load: %d changes, ending at %d replicas; want 1 change to 6", changes, replicas)
	}
}

// The history keeps what can hold a scale-down: the recommendations of the
// window higher than every later one. The highest of the window is always
// among them, so stabilization decides as if it had every tick's.
func TestRemember(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rec := func(s, desired int) Recommendation { return Recommendation{At: at(s), Desired: desired} }
	for _, tt := range []struct {
		name string
		rs   []Recommendation
		rec  Recommendation
		want []Recommendation
	}{
		{"first", nil, rec(10, 3), []Recommendation{rec(10, 3)}},
		{"a steady count keeps one", []Recommendation{rec(9, 3)}, rec(10, 3), []Recommendation{rec(10, 3)}},
		{"falling counts all kept", []Recommendation{rec(8, 5), rec(9, 4)}, rec(10, 3), []Recommendation{rec(8, 5), rec(9, 4), rec(10, 3)}},
		{"a rise drops what it passes", []Recommendation{rec(7, 6), rec(8, 2), rec(9, 4)}, rec(10, 5), []Recommendation{rec(7, 6), rec(10, 5)}},
		{"out of the window", []Recommendation{rec(0, 9), rec(5, 4)}, rec(10, 3), []Recommendation{rec(5, 4), rec(10, 3)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.rs)
			got := remember(tt.rs, at(0), tt.rec)
			if !slices.Equal(got, tt.want) {
				t.Errorf("remember = %v, want %v", got, tt.want)
			}
			if !slices.Equal(tt.rs, in) {
				t.Errorf("remember changed its input: %v, was %v", tt.rs, in)
			}
		})
	}
	// Ten minutes of a steady count at 1 s: one recommendation, not 120.
	p, h := policy(), History{}
	for tick := range 600 {
		_, h = Decide(p, Observation{Now: at(tick), Serving: 2, Sessions: 100, Limits: Limits{Min: 1, Max: 5}}, h)
	}
	if len(h.Recent) != 1 {
		t.Errorf("after 600 steady ticks: %d recommendations kept, want 1", len(h.Recent))
	}
}
