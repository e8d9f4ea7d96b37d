package scaler

import (
	"math"
	"time"
)

// Reason says why a Decision is what it is; the words are fixed because
// they become log fields and metric labels.
type Reason string

// Reasons.
const (
	ReasonSessions       Reason = "sessions"
	ReasonQueue          Reason = "queue"
	ReasonQueueSustained Reason = "queue_sustained"
	ReasonCPU            Reason = "cpu"
	ReasonMin            Reason = "min"
	ReasonMax            Reason = "max"
	ReasonStable         Reason = "stable"
	ReasonCooldown       Reason = "cooldown"
	ReasonStabilizing    Reason = "stabilizing"
	ReasonStep           Reason = "step" // a scale-up cut to Policy.MaxScaleUp
	ReasonPinned         Reason = "pinned"
	ReasonPaused         Reason = "paused"
	ReasonRollout        Reason = "rollout" // held at its count during a rollout
	ReasonWake           Reason = "wake"    // a request waits at the wake listener of a service at zero
	ReasonIdle           Reason = "idle"    // the last replica stays until wake.idle_after without activity
)

// Policy is a service's scaling rules, with durations already parsed.
type Policy struct {
	SessionsPerReplica float64 // 0: signal off
	QueuePerReplica    float64 // 0: signal off
	CPUPercent         float64 // 0: signal off
	Tolerance          float64 // dead band around 1.0 for the usage ratio
	MaxScaleUp         int     // replicas added per decision at most
	QueueSustain       time.Duration
	ScaleDownWindow    time.Duration // stabilization
	ScaleUpCooldown    time.Duration
	ScaleDownCooldown  time.Duration
	IdleAfter          time.Duration // scale to zero: how long without activity the last replica stays
}

// Limits are the min/max replicas in force (a schedule may change them).
type Limits struct {
	Min, Max int
	Window   int // index of the active schedule window, -1 outside or without schedule
}

// Observation is one tick's view of a service. Operator-drained and
// maint slots are not in Serving: they are not capacity.
type Observation struct {
	Now      time.Time
	Serving  int     // slots ready and UP
	Starting int     // bound or being started, not yet UP
	Sessions float64 // scur summed over serving slots
	Queue    float64 // backend queue plus server queues
	CPU      float64 // mean container CPU percent; negative when unknown
	Held     int     // requests the wake listener holds, or still passes to a container
	Limits   Limits
}

// History is what a decision remembers between ticks.
type History struct {
	LastScaleUp   time.Time
	LastScaleDown time.Time
	QueueSince    time.Time // zero while there is no queue
	LastActive    time.Time // last time with sessions, queue or held requests
	Recent        []Recommendation
}

// Recommendation is a past unclamped-by-stabilization desired value.
type Recommendation struct {
	At      time.Time
	Desired int
}

// Decision is the replica count a service should have now and why.
type Decision struct {
	Current   int
	Desired   int
	Reason    Reason
	LimitedBy Reason // "" or what held Desired back: min, max, cooldown, stabilizing, or the step bound
}

// Decide computes the desired replicas for one tick. It is pure: the
// returned History replaces the one passed in.
//
// Each enabled signal proposes ceil(usage / target) replicas unless the
// per-replica usage is within the tolerance of its target (then: keep the
// current count); the highest proposal wins. A queue that lasted
// QueueSustain asks for at least one more. The result is clamped to the
// limits in force; a scale-up happens at once, bounded by MaxScaleUp and the
// scale-up cooldown; a scale-down only to the highest recommendation of the
// stabilization window, and not within the scale-down cooldown. Replicas
// above an (off-hours) max are removed without waiting.
//
// Scale to zero: a request held by the wake listener of a service at zero
// asks for one replica at once (no cooldown), unless the max in force is
// 0; the last replica goes only after IdleAfter without sessions, queue
// or held requests.
func Decide(p Policy, o Observation, h History) (Decision, History) {
	current := o.Serving + o.Starting
	d := Decision{Current: current, Desired: current, Reason: ReasonStable}
	if o.Sessions > 0 || o.Queue > 0 || o.Held > 0 || h.LastActive.IsZero() {
		h.LastActive = o.Now // a fresh history counts as active: a restart does not go to zero at once
	}
	waking := current == 0 && o.Held > 0

	switch {
	case o.Queue <= 0:
		h.QueueSince = time.Time{}
	case h.QueueSince.IsZero():
		h.QueueSince = o.Now
	}

	base := float64(max(o.Serving, 1))
	first := true
	for _, s := range []struct {
		reason        Reason
		usage, target float64
	}{
		{ReasonSessions, o.Sessions, p.SessionsPerReplica},
		{ReasonQueue, o.Queue, p.QueuePerReplica},
		{ReasonCPU, o.CPU * base, p.CPUPercent},
	} {
		if s.target <= 0 || s.usage < 0 {
			continue
		}
		want := current
		if math.Abs(s.usage/base/s.target-1) > p.Tolerance {
			want = int(math.Ceil(s.usage / s.target))
		}
		if o.Serving == 0 {
			// Nothing serves yet: zero usage says nothing about need.
			want = max(want, current)
		}
		if first || want > d.Desired {
			d.Desired, d.Reason = want, s.reason
			first = false
		}
	}
	if !h.QueueSince.IsZero() && o.Now.Sub(h.QueueSince) >= p.QueueSustain && d.Desired <= current {
		d.Desired, d.Reason = current+1, ReasonQueueSustained
	}
	if d.Desired == current {
		d.Reason = ReasonStable
	}

	// Stabilization remembers raw recommendations; a fresh history starts
	// with the current count so a restart cannot scale down at once.
	if len(h.Recent) == 0 {
		h.Recent = append(h.Recent, Recommendation{At: o.Now, Desired: current})
	}
	h.Recent = remember(h.Recent, o.Now.Add(-p.ScaleDownWindow), Recommendation{At: o.Now, Desired: d.Desired})

	lim := o.Limits
	if waking && d.Desired < 1 {
		d.Desired, d.Reason = 1, ReasonWake
	}
	switch {
	case d.Desired < lim.Min:
		d.Desired, d.Reason = lim.Min, ReasonMin
	case d.Desired > lim.Max:
		d.Desired, d.LimitedBy = lim.Max, ReasonMax
		if current > lim.Max {
			d.Reason = ReasonMax
		}
	}

	switch {
	case d.Desired > current:
		switch {
		case current >= lim.Min && !waking && !h.LastScaleUp.IsZero() && o.Now.Sub(h.LastScaleUp) < p.ScaleUpCooldown:
			d.Desired, d.LimitedBy = current, ReasonCooldown
		case d.Desired-current > p.MaxScaleUp:
			d.Desired, d.LimitedBy = current+p.MaxScaleUp, ReasonStep
		}
		if d.Desired > current {
			h.LastScaleUp = o.Now
		}
	case d.Desired < current:
		if current <= lim.Max {
			stable := d.Desired
			for _, r := range h.Recent {
				stable = max(stable, min(r.Desired, lim.Max))
			}
			if stable > d.Desired {
				d.Desired, d.LimitedBy = min(stable, current), ReasonStabilizing
			}
			if d.Desired < current && !h.LastScaleDown.IsZero() && o.Now.Sub(h.LastScaleDown) < p.ScaleDownCooldown {
				d.Desired, d.LimitedBy = current, ReasonCooldown
			}
			if d.Desired == 0 && o.Now.Sub(h.LastActive) < p.IdleAfter {
				d.Desired, d.LimitedBy = 1, ReasonIdle
			}
		}
		if d.Desired < current {
			h.LastScaleDown = o.Now
		}
	}
	return d, h
}

// remember returns the recommendations after cutoff that can still hold a
// scale-down, and rec. Only the highest of the window holds one, so an
// older recommendation no higher than rec never matters again: the
// history stays as long as the recommendations fall, not as long as the
// window (every tick of it, copied at every tick).
func remember(rs []Recommendation, cutoff time.Time, rec Recommendation) []Recommendation {
	out := make([]Recommendation, 0, len(rs)+1)
	for _, r := range rs {
		if r.At.After(cutoff) && r.Desired > rec.Desired {
			out = append(out, r)
		}
	}
	return append(out, rec)
}
