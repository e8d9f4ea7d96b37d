package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// RolloutState is where a rollout is; the API, lbctl and the metric
// rollouts_total{result} (of the last three) show it as is.
type RolloutState string

// Rollout states.
const (
	RolloutRunning     RolloutState = "running"
	RolloutRollingBack RolloutState = "rolling_back"
	RolloutSucceeded   RolloutState = "succeeded"
	RolloutRolledBack  RolloutState = "rolled_back" // the new image never became healthy; the previous one runs again
	RolloutFailed      RolloutState = "failed"      // even the way back failed; look at the events
)

// DefaultRolloutTimeout bounds a rollout whose request gives no timeout.
const DefaultRolloutTimeout = 10 * time.Minute

// Rollout is a service's image update: surge first (a new container in a
// free slot, UP, then one old one drained and removed), drain first when
// no slot or host has room, one replica at a time. Autoscaling decisions of
// the service are frozen meanwhile.
type Rollout struct {
	ID       int          `json:"id"`
	Image    string       `json:"image"`
	Previous string       `json:"previous"`
	State    RolloutState `json:"state"`
	Replicas int          `json:"replicas"` // held during the rollout
	Updated  int          `json:"updated"`  // replicas serving the image being converged to
	Started  time.Time    `json:"started"`
	Deadline time.Time    `json:"deadline"`
	Ended    time.Time    `json:"ended,omitzero"`
	Message  string       `json:"message"`

	Target string `json:"target"` // image being converged to: Image, or Previous when rolling back

	failures int // start failures of target's generation when it became the target
}

func (r *Rollout) active() bool { return r.State == RolloutRunning || r.State == RolloutRollingBack }

// StartRollout begins a rollout of image; one per service at a time.
func (l *Loop) StartRollout(name, image string, timeout time.Duration) (Rollout, error) {
	l.waitForTick()
	defer l.tickMu.Unlock()
	defer l.publish()
	if image == "" {
		return Rollout{}, fmt.Errorf("image is required: %w", ErrInvalid)
	}
	if timeout <= 0 {
		timeout = DefaultRolloutTimeout
	}
	now := l.clock.Now()
	l.mu.Lock()
	s := l.serviceLocked(name)
	switch {
	case s == nil:
		l.mu.Unlock()
		return Rollout{}, unknownService(name)
	case s.rollout != nil && s.rollout.active():
		l.mu.Unlock()
		return Rollout{}, fmt.Errorf("service %s: rollout %d to %s is in progress: %w", name, s.rollout.ID, s.rollout.Image, ErrConflict)
	}
	id := 1
	if s.rollout != nil {
		id = s.rollout.ID + 1
	}
	// The count to hold comes from a complete observation: before the
	// first one, a rollout would hold 0 replicas and drain every old one.
	n, err := s.lastCountLocked()
	if err != nil {
		l.mu.Unlock()
		return Rollout{}, err
	}
	if s.hold != nil {
		n = s.hold.replicas // a pin or pause in force, maybe not ticked yet
	}
	n = max(n, s.status.Min)
	s.rollout = &Rollout{ID: id, Image: image, Previous: s.image, State: RolloutRunning, Replicas: n, Started: now,
		Deadline: now.Add(timeout), Message: "starting", Target: image}
	s.rollout.failures = s.startFailures[s.generationOf(image)]
	r := *s.rollout
	l.mu.Unlock()
	l.event(Event{Service: name, Kind: EventRollout, Reason: string(RolloutRunning), Message: fmt.Sprintf("rollout %d: %s -> %s, %d replicas", id, r.Previous, image, n)})
	return r, l.persist()
}

// RolloutStatus returns the service's current or last rollout.
func (l *Loop) RolloutStatus(name string) (Rollout, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.serviceLocked(name)
	switch {
	case s == nil:
		return Rollout{}, unknownService(name)
	case s.rollout == nil:
		return Rollout{}, fmt.Errorf("service %s has had no rollout: %w", name, ErrUnknown)
	}
	return *s.rollout, nil
}

// rolloutStep plans an active rollout's next step (planRollout) and takes
// it.
func (l *Loop) rolloutStep(ctx context.Context, log *slog.Logger, s *service, v view, inv inventory) {
	l.mu.Lock()
	r := s.rollout
	in := rolloutSeen{Rollout: *r, Generation: s.generationOf(r.Target), Now: l.clock.Now(), Complete: inv.complete, Min: v.obs.Limits.Min,
		Busy: v.obs.Starting > 0 || len(v.ownDrained) > 0 || v.busy > 0, Serving: v.serving, Free: v.free}
	in.Failed = s.startFailures[in.Generation] > r.failures
	l.mu.Unlock()
	in.Hosts = l.hostLoads(s, inv)
	step := planRollout(in)
	if step.End == RolloutRollingBack {
		l.rollBack(s, step.Message)
		return
	}
	if step.Counted {
		l.mu.Lock()
		r.Updated, r.Replicas = step.Updated, step.Replicas
		if step.End == "" && step.Message != "" {
			r.Message = step.Message
		}
		l.mu.Unlock()
	}
	if step.End != "" {
		l.endRollout(s, step.End, step.Message)
		return
	}
	if step.Started {
		l.shortOfRoom(s, step.Short)
	}
	l.apply(ctx, log, s, step.Actions)
}

func (l *Loop) rollBack(s *service, why string) {
	l.mu.Lock()
	r := s.rollout
	r.State, r.Target, r.Message = RolloutRollingBack, r.Previous, why+"; rolling back to "+r.Previous
	r.failures = s.startFailures[s.generationOf(r.Previous)]
	msg := fmt.Sprintf("rollout %d: %s", r.ID, r.Message)
	l.mu.Unlock()
	l.event(Event{Service: s.cfg.Name, Kind: EventRollout, Reason: string(RolloutRollingBack), Message: msg})
	// Saved so that a restart rolls back too instead of resuming forward.
	_ = l.persist()
}

func (l *Loop) endRollout(s *service, state RolloutState, msg string) {
	l.mu.Lock()
	r := s.rollout
	r.State, r.Message, r.Ended = state, msg, l.clock.Now()
	if state == RolloutSucceeded {
		s.image = r.Image
	} else {
		s.image = r.Previous
	}
	id := r.ID
	l.mu.Unlock()
	_ = l.persist()
	l.event(Event{Service: s.cfg.Name, Kind: EventRollout, Reason: string(state), Message: fmt.Sprintf("rollout %d %s: %s", id, state, msg)})
}
