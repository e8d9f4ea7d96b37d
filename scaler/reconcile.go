package scaler

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// reconcileSlot makes one slot and its containers agree (HAProxy's admin
// state says what must exist) and says what the slot is now. bound is the
// one of mine the slot points at, if any.
func (l *Loop) reconcileSlot(ctx context.Context, log *slog.Logger, s *service, name string, srv Server, exists bool, mine []Container, bound *Container, inv inventory, now time.Time) SlotState {
	complete := inv.complete
	switch {
	case !exists || srv.Admin == AdminMaint:
		draining := l.has(s.draining, name)
		// slotscaler records a draining intent before each maint of its
		// own: a maint without one, on a slot that points at its container,
		// is an operator's. So is one at the address the slot had when last
		// seen out of maint and bound: its container may have died since or
		// be on a host that does not answer, and the hold is what keeps the
		// operator's maint after that (sim: "operator intents kept"). The
		// slot stays theirs, not to be filled again until they enable it.
		// A start of ours that a restart cut short before its "state
		// ready" also points a maint slot at its container: with a binding
		// intent, only an address its bind got to the end with counts
		// (sim seed 589 held such a slot for an operator's).
		binding := l.has(s.binding, name)
		if exists && !draining && !l.held(s, name) && (bound != nil && !binding || l.boundAt(s, name, srv)) {
			if l.hold(log, s, name) != nil {
				return SlotOperator
			}
		}
		if len(mine) == 0 && exists && l.onSilentHost(srv, inv) {
			// Its container may be on the host that did not answer: not
			// free (sim: an operator's maint of such a slot was taken for a
			// free slot and filled).
			if l.held(s, name) {
				return SlotOperator
			}
			return SlotBusy
		}
		if len(mine) == 0 {
			l.retired(s, name)
			l.setIntent(s.binding, name, time.Time{})
			if l.held(s, name) {
				return SlotOperator
			}
			return SlotFree
		}
		if !complete {
			return SlotBusy // its containers may be on the host that did not answer
		}
		// A running container the slot does not point at: HAProxy restarted
		// (template slots came back with the placeholder, dynamic ones are
		// gone) or a start was cut short.
		// Bind it again rather than churn it. One that the slot still points
		// at was put in maint on purpose: remove it.
		if bound == nil && len(mine) == 1 && mine[0].Running && !l.held(s, name) {
			c := mine[0]
			l.event(Event{Service: s.cfg.Name, Slot: name, Kind: EventRebind, Message: "re-binding running container " + c.Name})
			l.launch(ctx, log, s, name, &op{kind: opStart, host: c.Host, container: c.ID}, "re-bind "+c.Name, func(ctx context.Context) { l.start(ctx, log, s, name, l.host(c.Host), Spec{}, &c) })
			return SlotBusy
		}
		l.setIntent(s.binding, name, time.Time{})
		l.remove(ctx, log, s, name, mine, "slot in maint")
		return SlotBusy
	case srv.Admin == AdminDrain:
		for _, c := range mine {
			if bound != nil && c.ID != bound.ID {
				l.discard(ctx, log, s, c, "not the slot's container")
			}
		}
		since, ours := l.intent(s.draining, name)
		if !ours {
			return SlotOperator
		}
		// Nothing is set to maint on data not complete for the slot: its
		// container may be on the host that did not answer.
		if !complete {
			return SlotDraining
		}
		if srv.Sessions == 0 && srv.Queue == 0 || now.Sub(since) >= s.cfg.DrainTimeout.Duration || bound == nil {
			l.retire(ctx, log, s, name, mine, RetireDrained)
			return SlotBusy
		}
		return SlotDraining
	}
	// Ready.
	l.setIntent(s.draining, name, time.Time{})
	if srv.Weight == 0 && !l.has(s.binding, name) {
		// Weighted out by someone else: not capacity, and neither
		// replaced nor cleaned up until they weight it back, whatever its
		// container does (sim: "operator intents kept").
		return SlotOperator
	}
	if bound != nil || complete {
		for _, c := range mine {
			if bound == nil || c.ID != bound.ID {
				l.discard(ctx, log, s, c, "not the slot's container")
			}
		}
	}
	if bound == nil {
		if !complete {
			// Cannot tell: trust HAProxy's view of it.
			if srv.Serving() && srv.Weight > 0 {
				return SlotServing
			}
			return SlotStarting
		}
		l.retire(ctx, log, s, name, nil, RetireMissing)
		return SlotBusy
	}
	switch {
	case srv.Health == HealthDown && time.Duration(srv.LastChange)*time.Second >= s.cfg.UnhealthyAfter.Duration:
		l.retire(ctx, log, s, name, []Container{*bound}, RetireUnhealthy)
		return SlotBusy
	case srv.Weight == 0:
		// Bound by an earlier run that stopped before the first check passed.
		if checkPassed(srv) {
			if err := l.act(ctx, func(ctx context.Context) error { return l.lb.SetWeight(ctx, s.cfg.Backend, name, 100) }); err != nil {
				log.Warn("restore weight", "slot", name, "err", err)
				return SlotStarting
			}
			l.setIntent(s.binding, name, time.Time{})
		}
		return SlotStarting
	case srv.Serving():
		l.setIntent(s.binding, name, time.Time{}) // a start whose last reply was lost
		return SlotServing
	}
	return SlotStarting
}

// onSilentHost reports whether srv points at a host that did not answer
// this tick's listing.
func (l *Loop) onSilentHost(srv Server, inv inventory) bool {
	for _, h := range l.hosts {
		if inv.down[h.Name] != nil && h.Addr == srv.Addr {
			return true
		}
	}
	return false
}

// act runs a runtime API change unless this is a dry run.
func (l *Loop) act(ctx context.Context, f func(context.Context) error) error {
	if l.dryRun {
		return nil
	}
	return f(ctx)
}

// retire takes a slot out of the balancing at once (maint) and removes its
// containers. The maint is recorded as slotscaler's first (a draining
// intent, kept until the containers are gone): killed in between, the next
// run does not take it for an operator's.
func (l *Loop) retire(ctx context.Context, log *slog.Logger, s *service, name string, mine []Container, why string) {
	l.event(Event{Service: s.cfg.Name, Slot: name, Kind: EventRetire, Reason: why, Message: "slot to maint, container to remove"}, "dry_run", l.dryRun)
	had := l.has(s.draining, name)
	if !had && !l.dryRun {
		if err := l.setIntent(s.draining, name, l.clock.Now()); err != nil {
			log.Warn("retire postponed: its intent could not be saved", "slot", name, "err", err)
			return
		}
	}
	if err := l.act(ctx, func(ctx context.Context) error {
		return l.lb.SetState(ctx, s.cfg.Backend, name, AdminMaint)
	}); err != nil {
		log.Warn("set maint", "slot", name, "err", err)
		if !had {
			l.settle(ctx, s, name, AdminMaint)
		}
		return
	}
	l.setIntent(s.binding, name, time.Time{})
	l.remove(ctx, log, s, name, mine, why)
}

// remove stops and removes a maint slot's containers, and deletes the
// server of a dynamic slot, in an operation.
func (l *Loop) remove(ctx context.Context, log *slog.Logger, s *service, name string, mine []Container, why string) {
	l.launch(ctx, log, s, name, &op{kind: opRemove}, "remove containers ("+why+")", func(ctx context.Context) {
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

// retired ends a maint of slotscaler's whose containers are gone: its
// draining intent goes, and first the slot's last bound address, so that a
// maint found there later is not taken for an operator's.
func (l *Loop) retired(s *service, slot string) {
	l.mu.Lock()
	delete(s.lastBound, slot)
	l.mu.Unlock()
	l.setIntent(s.draining, slot, time.Time{})
}

// boundTo records where a slot points at its container. It is saved with
// the next write of the state: a restarted slotscaler still tells an
// operator's maint there from a free slot after the container died.
func (l *Loop) boundTo(s *service, slot string, at netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.lastBound[slot] = at
}

// boundAt reports whether srv points where the slot pointed at its
// container when last seen out of maint.
func (l *Loop) boundAt(s *service, slot string, srv Server) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := s.lastBound[slot]
	return ok && at == netip.AddrPortFrom(srv.Addr, uint16(srv.Port))
}

// deleteServer deletes a dynamic slot; HAProxy refuses while a connection
// is still attached, so it retries for a while.
func (l *Loop) deleteServer(ctx context.Context, log *slog.Logger, s *service, name string) {
	for range 20 {
		err := l.lb.DelServer(ctx, s.cfg.Backend, name)
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

// removeStrays removes containers of the service that carry an unknown
// slot label (the config shrank, or a template changed).
func (l *Loop) removeStrays(ctx context.Context, log *slog.Logger, s *service, names []string, containers []Container, inv inventory) {
	if !inv.complete {
		return
	}
	for _, c := range containers {
		if !slices.Contains(names, c.Slot) {
			l.discard(ctx, log, s, c, "no such slot")
		}
	}
}

// discard removes one container no slot uses, in an operation keyed by the
// container so that its slot stays free for the ticks.
func (l *Loop) discard(ctx context.Context, log *slog.Logger, s *service, c Container, why string) {
	key := "container/" + c.ID
	if l.opKind(s, key) != opNone {
		return
	}
	h := l.host(c.Host)
	l.launch(ctx, log, s, key, &op{kind: opRemove}, "remove stray container "+c.Name+" ("+why+")", func(ctx context.Context) {
		if err := h.Engine.Remove(ctx, c.ID, StopGrace); err != nil {
			log.Error("remove stray container", "container", c.Name, "err", err)
			return
		}
		l.event(Event{Service: s.cfg.Name, Kind: EventRemoved, Reason: why, Message: "stray container " + c.Name + " removed"}, "host", c.Host, "label_slot", c.Slot)
	})
}

// launch runs fn as an operation owning slot until it returns; a dry run
// only says what it would do.
func (l *Loop) launch(ctx context.Context, log *slog.Logger, s *service, slot string, o *op, what string, fn func(context.Context)) {
	if l.dryRun {
		log.Info("dry run: would "+what, "slot", slot)
		return
	}
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

// intent reads an intent of slot (a drain to scale down, a bind under
// way) and since when.
func (l *Loop) intent(intents map[string]time.Time, slot string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := intents[slot]
	return t, ok
}

// has reports whether slot has an intent in intents.
func (l *Loop) has(intents map[string]time.Time, slot string) bool {
	_, ok := l.intent(intents, slot)
	return ok
}

// setIntent records (or, with a zero time, forgets) an intent and saves it
// when it changed: after a restart, a drain or a weight 0 not recorded is an
// operator's. A recorded intent that could not be saved is an error (wrapping
// ErrNotSaved): the change it was for must not be made.
func (l *Loop) setIntent(intents map[string]time.Time, slot string, since time.Time) error {
	l.mu.Lock()
	_, had := intents[slot]
	if since.IsZero() {
		delete(intents, slot)
	} else {
		intents[slot] = since
	}
	l.mu.Unlock()
	if had == !since.IsZero() {
		return nil
	}
	err := l.persist()
	if err != nil && !had {
		// Not saved, so the change it was for is not made: nor is the
		// intent kept in memory, where it would make an operator's later
		// drain of the slot pass for slotscaler's (sim).
		l.mu.Lock()
		delete(intents, slot)
		l.mu.Unlock()
	}
	return err
}
