package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Errors of the manual controls; the API maps them to 404, 400 and 409.
var (
	ErrUnknown  = errors.New("not found")
	ErrInvalid  = errors.New("invalid request")
	ErrConflict = errors.New("conflict")
)

func unknownService(name string) error { return fmt.Errorf("service %q: %w", name, ErrUnknown) }

// hold freezes a service's replica count: paused keeps what it had when
// paused, pinned what an operator asked for. Health replacement still runs.
type hold struct {
	paused   bool
	replicas int
}

func (l *Loop) serviceLocked(name string) *service {
	for _, s := range l.services {
		if s.cfg.Name == name {
			return s
		}
	}
	return nil
}

// serviceOfBackendLocked is the service of backend (a config gives each
// backend to one service at most).
func (l *Loop) serviceOfBackendLocked(backend string) *service {
	for _, s := range l.services {
		if s.cfg.Backend == backend {
			return s
		}
	}
	return nil
}

// hold records an operator's maint of a slot: it is not filled again until
// the operator enables it. Unsaved, the hold would not outlive a restart,
// and removing the container (deleting a dynamic slot) would erase the
// only other record of the operator's maint: so the hold is undone and the
// error returned, for the caller to leave both in place and the next tick
// to try again (sim seed 1602: a hold lost to a full disk, then a crash).
func (l *Loop) hold(log *slog.Logger, s *service, slot string) error {
	err := l.persistChange(func() (func(), bool) {
		was := s.held[slot]
		s.held[slot] = true
		return func() {
			if !was {
				delete(s.held, slot)
			}
		}, true
	})
	if err != nil {
		log.Warn("operator maint not recorded yet: its container stays until it is", "slot", slot, "err", err)
		return err
	}
	l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventControl, Reason: "operator_maint", Message: "set to maint by an operator: container removed, slot kept out until enabled"})
	return nil
}

// waitForTick takes tickMu for an operator's command: a tick in progress
// ends first. A drain or enable then acts on a read the tick cannot change
// under it (sim seed 876), and a pin, pause, resume or rollout never lands
// between a tick's decision and its changes, where a drain decided before
// it would go out after it returned (sim seed 2388: a pin at 4 returned,
// then the tick's drain left 3 serving). The caller unlocks tickMu.
func (l *Loop) waitForTick() { lockOn(l.clock, &l.tickMu) }

// isHeld reports whether slot is held for an operator's maint.
func (l *Loop) isHeld(s *service, slot string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.held[slot]
}

// Pin holds a service at n replicas until Resume.
func (l *Loop) Pin(name string, n int) error {
	defer l.publish()
	l.waitForTick()
	defer l.tickMu.Unlock()
	l.mu.Lock()
	s := l.serviceLocked(name)
	switch {
	case s == nil:
		l.mu.Unlock()
		return unknownService(name)
	case n < 0 || n > s.cfg.MaxReplicas:
		l.mu.Unlock()
		return fmt.Errorf("replicas %d: want 0 to %d (max_replicas of %s): %w", n, s.cfg.MaxReplicas, name, ErrInvalid)
	case s.rollout != nil && s.rollout.active():
		l.mu.Unlock()
		return fmt.Errorf("service %s has a rollout in progress: %w", name, ErrConflict)
	}
	s.hold = &hold{replicas: n}
	l.mu.Unlock()
	l.event(Event{Service: name, Kind: EventControl, Reason: string(ControlPinned), Message: fmt.Sprintf("pinned at %d replicas until resume", n)})
	return l.persist()
}

// lastCountLocked is the replica count the last tick settled on: its
// decision, whose starts and drains may still be under way. Before the
// service's first complete observation there is none to hold: an error.
func (s *service) lastCountLocked() (int, error) {
	if !s.observed {
		return 0, fmt.Errorf("service %s has not been observed completely yet (HAProxy and every Docker host read): retry in a moment: %w", s.cfg.Name, ErrConflict)
	}
	return s.status.Desired, nil
}

// Pause freezes a service's replica count at what it has now.
func (l *Loop) Pause(name string) error {
	defer l.publish()
	l.waitForTick()
	defer l.tickMu.Unlock()
	l.mu.Lock()
	s := l.serviceLocked(name)
	if s == nil {
		l.mu.Unlock()
		return unknownService(name)
	}
	n, err := s.lastCountLocked()
	if err != nil {
		l.mu.Unlock()
		return err
	}
	s.hold = &hold{paused: true, replicas: n}
	l.mu.Unlock()
	l.event(Event{Service: name, Kind: EventControl, Reason: string(ControlPaused), Message: fmt.Sprintf("paused at %d replicas; health replacement still runs", n)})
	return l.persist()
}

// Resume returns a paused or pinned service to autoscaling.
func (l *Loop) Resume(name string) error {
	defer l.publish()
	l.waitForTick()
	defer l.tickMu.Unlock()
	l.mu.Lock()
	s := l.serviceLocked(name)
	if s == nil {
		l.mu.Unlock()
		return unknownService(name)
	}
	s.hold = nil
	l.mu.Unlock()
	l.event(Event{Service: name, Kind: EventControl, Reason: "resumed", Message: "autoscaling resumed"})
	return l.persist()
}

// slotOf finds the service of a backend and checks the slot exists there.
func (l *Loop) slotOf(ctx context.Context, backend, slot string) (*service, Server, error) {
	l.mu.Lock()
	s := l.serviceOfBackendLocked(backend)
	l.mu.Unlock()
	if s == nil {
		return nil, Server{}, fmt.Errorf("backend %q is not managed by slotscaler: %w", backend, ErrUnknown)
	}
	b, err := l.lb.Backend(ctx, backend)
	if err != nil {
		return nil, Server{}, err
	}
	srv, ok := b.Server(slot)
	if !ok {
		// The service still, for a held dynamic slot whose server is gone.
		return s, Server{}, fmt.Errorf("slot %s/%s: %w", backend, slot, ErrUnknown)
	}
	return s, srv, nil
}

// DrainSlot drains a slot for an operator: slotscaler then neither counts
// it nor re-enables it, keeps its container, and scales other slots to
// cover.
func (l *Loop) DrainSlot(ctx context.Context, backend, slot string) error {
	defer l.publish()
	l.waitForTick()
	defer l.tickMu.Unlock()
	s, srv, err := l.slotOf(ctx, backend, slot)
	if err != nil {
		return err
	}
	if srv.Admin == AdminMaint {
		return fmt.Errorf("slot %s/%s is in maint (free or held): nothing to drain: %w", backend, slot, ErrConflict)
	}
	if l.opKind(s, slot) == opRemove {
		return fmt.Errorf("slot %s/%s is being retired by slotscaler: nothing to drain: %w", backend, slot, ErrConflict)
	}
	if err := change(ctx, l.lb, SetState(backend, slot, AdminDrain).FromOperator()); err != nil {
		return fmt.Errorf("drain %s/%s: %w", backend, slot, err)
	}
	// The operator's now, even if slotscaler was draining it to scale down.
	// Unless that cannot be saved: then it stays slotscaler's, as
	// state.json and the error the operator gets say (in memory alone it
	// was theirs, and slotscaler's drain never ended: sim seed 1781).
	err = l.persistChange(func() (func(), bool) {
		since, ours := s.draining[slot]
		delete(s.draining, slot)
		return func() {
			if ours {
				s.draining[slot] = since
			}
		}, ours
	})
	if err != nil {
		return fmt.Errorf("drain %s/%s: %w", backend, slot, err)
	}
	l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventControl, Reason: "operator_drain", Message: "drained by an operator"})
	return nil
}

// EnableSlot returns a slot an operator drained to slotscaler: ready again
// when it still has its container; a slot in maint is simply free for
// slotscaler to fill when it needs.
func (l *Loop) EnableSlot(ctx context.Context, backend, slot string) error {
	defer l.publish()
	l.waitForTick()
	defer l.tickMu.Unlock()
	s, srv, err := l.slotOf(ctx, backend, slot)
	exists := err == nil
	if !exists {
		// A held dynamic slot's server went with its container: enabling
		// it is releasing the hold (review: it could never be enabled).
		if s == nil || !errors.Is(err, ErrUnknown) {
			return err
		}
		l.mu.Lock()
		held := s.held[slot]
		l.mu.Unlock()
		if !held {
			return err
		}
	}
	// A weight 0 is the operator's too (or a start's they drained): the
	// slot is slotscaler's again only at full weight. Weighted first: if
	// that fails, the slot stays drained, the operator's, as before.
	if exists && srv.Admin != AdminMaint && srv.Weight == 0 && !l.has(s.binding, slot) { // a start's weight 0 is the start's to lift
		if err := change(ctx, l.lb, SetWeight(backend, slot, 100).FromOperator()); err != nil {
			return fmt.Errorf("enable %s/%s: weight: %w", backend, slot, err)
		}
	}
	if exists && srv.Admin == AdminDrain {
		if err := change(ctx, l.lb, SetState(backend, slot, AdminReady).FromOperator()); err != nil {
			return fmt.Errorf("enable %s/%s: %w", backend, slot, err)
		}
	}
	// Handed back in maint, the maint is slotscaler's now, as after a
	// retirement of its own: its container goes and the slot is free. Left
	// as it was, a maint at the slot's last bound address was taken for the
	// operator's again at the next tick (review).
	maint := exists && srv.Admin == AdminMaint
	l.mu.Lock()
	wasHeld := s.held[slot]
	delete(s.held, slot)
	if maint {
		delete(s.lastBound, slot)
	}
	l.mu.Unlock()
	if maint {
		if err := l.setIntent(s.draining, slot, l.clock.Now()); err != nil {
			return fmt.Errorf("enable %s/%s: %w", backend, slot, err)
		}
	}
	l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventControl, Reason: "operator_enable", Message: "returned to slotscaler by an operator"})
	if wasHeld {
		return l.persist()
	}
	return nil
}
