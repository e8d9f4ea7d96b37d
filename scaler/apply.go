package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// The executor: it carries out a plan's actions (plan.go), in order, with
// the Runtime API, the Docker hosts and the intents kept in state_dir. Slow
// work runs in operations it owns (launch); a failure is logged and left
// to the next tick, which observes and plans again. A dry run applies
// nothing: it logs the plan, one line per action, and writes it for a
// person to Options.PlanOut.

// apply carries out actions for service s, or shows them in a dry run.
// False when a Hold could not be saved: the actions after it are not
// carried out (see hold).
func (l *Loop) apply(ctx context.Context, log *slog.Logger, s *service, acts []Action) bool {
	if l.dryRun {
		for _, a := range acts {
			log.Info("dry run: planned", append([]any{"action", a.Kind()}, a.Attrs()...)...)
			if l.planOut != nil {
				fmt.Fprintf(l.planOut, "%s: %s\n", s.cfg.Name, a)
			}
		}
		return true
	}
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case NoteBound:
			l.boundTo(s, a.Slot, a.At)
		case Hold:
			if l.hold(log, s, a.Slot) != nil {
				return false
			}
		case Retired:
			l.retired(s, a.Slot)
		case ClearIntent:
			l.setIntent(s.intents(a.Intent), a.Slot, time.Time{})
		case Rebind:
			l.rebind(ctx, log, s, a)
		case Remove:
			l.remove(ctx, log, s, a.Slot, a.Containers, a.Reason)
		case Discard:
			l.discard(ctx, log, s, a.Container, a.Reason)
		case Retire:
			l.retire(ctx, log, s, a)
		case RestoreWeight:
			l.restoreWeight(ctx, log, s, a.Slot)
		case Undrain:
			l.undrain(ctx, log, s, a.Slot)
		case Start:
			h := l.host(a.Host)
			spec := s.spec(a.Slot, h, a.Image, l.clock.Now())
			l.launch(ctx, s, a.Slot, &op{kind: opStart, host: a.Host, fresh: true}, func(ctx context.Context) { l.start(ctx, log, s, a.Slot, h, spec, nil) })
		case CancelStart:
			l.cancelStart(log, s, a.Slot)
		case Drain:
			// The drains of a scale-down go together: their intents in one
			// save, their commands in one batch.
			drains := []Drain{a}
			for i+1 < len(acts) {
				next, ok := acts[i+1].(Drain)
				if !ok {
					break
				}
				drains, i = append(drains, next), i+1
			}
			l.drain(ctx, log, s, drains)
		default:
			panic(fmt.Sprintf("scaler: no executor for action %T", a))
		}
	}
	return true
}

// intents is the map of intents of kind k.
func (s *service) intents(k intentKind) map[string]time.Time {
	if k == intentDraining {
		return s.draining
	}
	return s.binding
}

// rebind binds a running container again, in a start operation.
func (l *Loop) rebind(ctx context.Context, log *slog.Logger, s *service, a Rebind) {
	c := a.Container
	l.event(Event{Service: s.cfg.Name, Slot: a.Slot, Kind: EventRebind, Message: "re-binding running container " + c.Name})
	l.launch(ctx, s, a.Slot, &op{kind: opStart, host: c.Host, container: c.ID}, func(ctx context.Context) { l.start(ctx, log, s, a.Slot, l.host(c.Host), Spec{}, &c) })
}

// retire takes a slot out of the balancing at once (maint) and removes its
// containers. The maint is recorded as slotscaler's first (a draining
// intent, kept until the containers are gone): killed in between, the next
// run does not take it for an operator's.
func (l *Loop) retire(ctx context.Context, log *slog.Logger, s *service, a Retire) {
	l.event(Event{Service: s.cfg.Name, Slot: a.Slot, Kind: EventRetire, Reason: a.Reason, Message: "slot to maint, container to remove"})
	had := l.has(s.draining, a.Slot)
	if !had {
		if err := l.setIntent(s.draining, a.Slot, l.clock.Now()); err != nil {
			log.Warn("retire postponed: its intent could not be saved", "slot", a.Slot, "err", err)
			return
		}
	}
	if err := change(ctx, l.lb, SetState(s.cfg.Backend, a.Slot, AdminMaint)); err != nil {
		log.Warn("set maint", "slot", a.Slot, "err", err)
		if !had {
			l.settle(ctx, s, a.Slot, AdminMaint)
		}
		return
	}
	l.setIntent(s.binding, a.Slot, time.Time{})
	l.remove(ctx, log, s, a.Slot, a.Containers, a.Reason)
}

// remove stops and removes a maint slot's containers, and deletes the
// server of a dynamic slot, in an operation.
func (l *Loop) remove(ctx context.Context, log *slog.Logger, s *service, name string, mine []Container, why string) {
	l.launch(ctx, s, name, &op{kind: opRemove}, func(ctx context.Context) {
		for _, c := range mine {
			h := l.host(c.Host)
			if h == nil {
				continue
			}
			if err := h.Engine.Remove(ctx, c.ID, StopGrace); err != nil {
				log.Error("remove container", "slot", name, "container", c.Name, "err", err)
				return
			}
			l.event(Event{Service: s.cfg.Name, Slot: name, Kind: EventRemoved, Reason: why, Message: "container " + c.Name + " removed"}, "host", c.Host)
		}
		if s.cfg.Slots.Mode == config.ModeDynamic {
			l.deleteServer(ctx, log, s, name)
		}
		l.retired(s, name)
	})
}

// discard removes one container no slot uses, in an operation keyed by the
// container so that its slot stays free for the ticks. A removal of it
// already under way is not launched twice.
func (l *Loop) discard(ctx context.Context, log *slog.Logger, s *service, c Container, why string) {
	key := "container/" + c.ID
	if l.opKind(s, key) != opNone {
		return
	}
	h := l.host(c.Host)
	l.launch(ctx, s, key, &op{kind: opRemove}, func(ctx context.Context) {
		if err := h.Engine.Remove(ctx, c.ID, StopGrace); err != nil {
			log.Error("remove stray container", "container", c.Name, "err", err)
			return
		}
		l.event(Event{Service: s.cfg.Name, Kind: EventRemoved, Reason: why, Message: "stray container " + c.Name + " removed"}, "host", c.Host, "label_slot", c.Slot)
	})
}

// restoreWeight lets traffic into a slot bound by an earlier run that
// stopped before the first check passed.
func (l *Loop) restoreWeight(ctx context.Context, log *slog.Logger, s *service, slot string) {
	if err := change(ctx, l.lb, SetWeight(s.cfg.Backend, slot, 100)); err != nil {
		log.Warn("restore weight", "slot", slot, "err", err)
		return
	}
	l.setIntent(s.binding, slot, time.Time{})
}

// undrain takes back a slot slotscaler was draining: no container to start.
func (l *Loop) undrain(ctx context.Context, log *slog.Logger, s *service, slot string) {
	if err := change(ctx, l.lb, SetState(s.cfg.Backend, slot, AdminReady)); err != nil {
		log.Warn("re-enable draining slot", "slot", slot, "err", err)
		return
	}
	l.setIntent(s.draining, slot, time.Time{})
	l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventUndrain, Message: "draining slot taken back"})
}

// drain drains slots to scale down. The intents are saved before the
// drains, all in one write: killed in between, the next run finds a drain
// it knows to be its own (or an intent for a slot still ready, which it
// forgets), never a drain it would take for an operator's. The drains go
// as one batch.
func (l *Loop) drain(ctx context.Context, log *slog.Logger, s *service, drains []Drain) {
	since := map[string]time.Time{}
	changes := make([]Change, len(drains))
	for i, a := range drains {
		since[a.Slot] = a.At
		changes[i] = SetState(s.cfg.Backend, a.Slot, AdminDrain)
	}
	if err := l.setIntents(s.draining, since); err != nil {
		log.Warn("drain postponed: its intent could not be saved", "slots", len(drains), "err", err)
		return
	}
	for i, err := range l.lb.Apply(ctx, changes) {
		a := drains[i]
		if err != nil {
			log.Warn("drain", "slot", a.Slot, "err", err)
			l.settle(ctx, s, a.Slot, AdminDrain)
			continue
		}
		l.event(Event{Service: s.cfg.Name, Slot: a.Slot, Kind: EventDrain, Message: "draining slot"}, "sessions", a.Sessions)
	}
}

// settle follows a change of slotscaler's that failed: a reply lost on the
// way back may hide a change that took, which without its intent would
// pass for an operator's, so the intent was kept. The slot is read again
// at once: if the change did not take anywhere, the intent goes now, not at
// the next tick, so that an operator's drain or maint meanwhile is not
// taken for slotscaler's (sim: "operator intents kept"). A read that fails
// keeps the intent; the next tick settles it.
func (l *Loop) settle(ctx context.Context, s *service, slot string, want AdminState) {
	b, err := l.lb.Backend(ctx, s.cfg.Backend)
	if err != nil {
		return
	}
	if srv, ok := b.Server(slot); ok && srv.Admin < want {
		l.setIntent(s.draining, slot, time.Time{})
	}
}

// errStartCalledOff ends a start that a scale-down no longer needs.
var errStartCalledOff = errors.New("start called off: fewer replicas wanted")

// cancelStart calls off the start of a new container in slot, unless it
// ended or was called off since the plan saw it.
func (l *Loop) cancelStart(log *slog.Logger, s *service, slot string) {
	l.mu.Lock()
	o := s.ops[slot]
	ok := o != nil && o.kind == opStart && o.fresh && !o.cancelled
	if ok {
		o.cancelled = true
		o.cancel(errStartCalledOff)
	}
	l.mu.Unlock()
	if ok {
		log.Info("start called off: fewer replicas wanted", "slot", slot)
	}
}

// deleteServer deletes a dynamic slot; HAProxy refuses while a connection
// is still attached, so it retries for a while.
func (l *Loop) deleteServer(ctx context.Context, log *slog.Logger, s *service, name string) {
	for range 20 {
		err := change(ctx, l.lb, DelServer(s.cfg.Backend, name))
		switch {
		case err == nil, errors.Is(err, ErrNoSuchServer):
			return
		case !errors.Is(err, ErrHasConnections):
			log.Warn("del server", "slot", name, "err", err)
			return
		}
		if l.clock.Sleep(ctx, 500*time.Millisecond) != nil {
			return
		}
	}
	log.Warn("del server: connections still attached; the next tick retries", "slot", name)
}

// launch runs fn as an operation owning slot until it returns.
func (l *Loop) launch(ctx context.Context, s *service, slot string, o *op, fn func(context.Context)) {
	ctx, cancel := context.WithCancelCause(ctx)
	o.cancel, o.began = cancel, l.clock.Now()
	l.mu.Lock()
	s.ops[slot] = o
	l.mu.Unlock()
	l.ops.Add(1)
	l.clock.Go(func() {
		defer l.ops.Done()
		defer func() {
			l.mu.Lock()
			delete(s.ops, slot)
			l.mu.Unlock()
			cancel(nil)
		}()
		fn(ctx)
	})
}
