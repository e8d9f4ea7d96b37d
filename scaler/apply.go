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
// to the next tick, which observes and plans again. A tick's own changes
// of HAProxy are queued and sent together when its plans are all made
// (flush): one save of the intents they need, then one Apply, which is one
// batch per HAProxy instance and one write of the server state file. A
// dry run applies nothing: it logs the plan, one line per action, and
// writes it for a person to Options.PlanOut.

// queued is a change of a tick's, sent by flush.
type queued struct {
	s      *service
	log    *slog.Logger
	change Change
	// intent: a draining intent of slotscaler's for the slot, recorded
	// and saved before the change (since at); killed in between, the next
	// run finds a drain or maint it knows to be its own, never one it
	// would take for an operator's.
	intent bool
	at     time.Time
	// settle: a failure is followed (see settle), as the intent was
	// recorded for it.
	settle bool
	// done follows the change's outcome (err nil: it took); true when
	// it forgot an intent in memory, which flush then saves.
	done func(err error) bool
}

// queue adds a change to the tick's batch (see flush).
func (l *Loop) queue(q queued) { l.batch = append(l.batch, q) }

// apply carries out actions for service s, or shows them in a dry run.
// Changes of HAProxy are queued for the tick's flush. False when a Hold
// could not be saved: the actions after it are not carried out (see hold).
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
	for _, a := range acts {
		switch a := a.(type) {
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
			l.restoreWeight(log, s, a.Slot)
		case Undrain:
			l.undrain(log, s, a.Slot)
		case Start:
			h := l.host(a.Host)
			spec := s.spec(a.Slot, h, a.Image, l.clock.Now())
			l.launch(ctx, s, a.Slot, &op{kind: opStart, host: a.Host, fresh: true}, func(ctx context.Context) { l.start(ctx, log, s, a.Slot, h, spec, nil) })
		case CancelStart:
			l.cancelStart(log, s, a.Slot)
		case Drain:
			l.drain(log, s, a)
		default:
			panic(fmt.Sprintf("scaler: no executor for action %T", a))
		}
	}
	return true
}

// flush sends the tick's queued changes. The intents they need are
// recorded and saved first, in one write; if it fails, those changes are
// not made (the next tick plans them again). Then every change goes in one
// Apply (one batch per HAProxy instance). What a failed change's intent
// was for is settled with one read per service, in the batch's order.
func (l *Loop) flush(ctx context.Context) {
	batch := l.batch
	l.batch = nil
	if len(batch) == 0 {
		return
	}
	var intents []intentChange
	for _, q := range batch {
		if q.intent {
			intents = append(intents, intentChange{q.s.draining, q.change.Server, q.at})
		}
	}
	saved := l.changeIntents(intents) == nil
	send := make([]queued, 0, len(batch))
	changes := make([]Change, 0, len(batch))
	for _, q := range batch {
		if q.intent && !saved {
			q.log.Warn("change postponed: its intent could not be saved", "change", q.change.String())
			continue
		}
		send, changes = append(send, q), append(changes, q.change)
	}
	if len(changes) == 0 {
		return
	}
	unsettled := map[*service]map[string]AdminState{}
	var order []*service // of unsettled
	forgot := false
	for i, err := range l.lb.Apply(ctx, changes) {
		q := send[i]
		if err != nil && q.settle {
			if unsettled[q.s] == nil {
				unsettled[q.s] = map[string]AdminState{}
				order = append(order, q.s)
			}
			unsettled[q.s][q.change.Server] = q.change.State
		}
		forgot = q.done(err) || forgot
	}
	// Read even when ctx ended (slotscaler stopping) since the intents
	// were saved: left, they would make an operator's drain or maint of
	// those slots while slotscaler is stopped pass for its own at the
	// next start.
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	for _, s := range order {
		forgot = l.settle(settleCtx, s, unsettled[s]) || forgot
	}
	if forgot {
		// A forgotten intent's purpose ended: a failed save leaves it
		// forgotten, for the next save to write (see changeIntents).
		_ = l.persist()
	}
}

// settleTimeout bounds the reads that settle a tick's failed changes.
const settleTimeout = 5 * time.Second

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
	l.queue(queued{s: s, log: log, change: SetState(s.cfg.Backend, a.Slot, AdminMaint), intent: !had, at: l.clock.Now(),
		// A failed maint under an intent from before (a drain of ours)
		// keeps it: the slot is still slotscaler's drain.
		settle: !had,
		done: func(err error) bool {
			if err != nil {
				log.Warn("set maint", "slot", a.Slot, "err", err)
				return false
			}
			forgot := l.forget(s.binding, a.Slot)
			l.remove(ctx, log, s, a.Slot, a.Containers, a.Reason)
			return forgot
		}})
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
func (l *Loop) restoreWeight(log *slog.Logger, s *service, slot string) {
	l.queue(queued{s: s, log: log, change: SetWeight(s.cfg.Backend, slot, 100), done: func(err error) bool {
		if err != nil {
			log.Warn("restore weight", "slot", slot, "err", err)
			return false
		}
		return l.forget(s.binding, slot)
	}})
}

// undrain takes back a slot slotscaler was draining: no container to start.
func (l *Loop) undrain(log *slog.Logger, s *service, slot string) {
	l.queue(queued{s: s, log: log, change: SetState(s.cfg.Backend, slot, AdminReady), done: func(err error) bool {
		if err != nil {
			log.Warn("re-enable draining slot", "slot", slot, "err", err)
			return false
		}
		l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventUndrain, Message: "draining slot taken back"})
		return l.forget(s.draining, slot)
	}})
}

// drain drains a slot to scale down. Its intent is saved before the drain
// (with the tick's others, in one write): killed in between, the next run
// finds a drain it knows to be its own (or an intent for a slot still
// ready, which it forgets), never a drain it would take for an operator's.
// The drains of a scale-down go in the tick's batch.
func (l *Loop) drain(log *slog.Logger, s *service, a Drain) {
	l.queue(queued{s: s, log: log, change: SetState(s.cfg.Backend, a.Slot, AdminDrain), intent: true, at: a.At, settle: true, done: func(err error) bool {
		if err != nil {
			log.Warn("drain", "slot", a.Slot, "err", err)
			return false
		}
		l.event(Event{Service: s.cfg.Name, Slot: a.Slot, Kind: EventDrain, Message: "draining slot"}, "sessions", a.Sessions)
		return false
	}})
}

// settle follows changes of slotscaler's that failed (slot: the admin
// state each wanted): a reply lost on the way back may hide a change that
// took, which without its intent would pass for an operator's, so the
// intent was kept. The backend is read again at once, once for all of
// them: where a change did not take anywhere, the intent goes now, not at
// the next tick, so that an operator's drain or maint meanwhile is not
// taken for slotscaler's (sim: "operator intents kept"). A read that fails
// keeps the intents; the next tick settles them. True when it forgot one
// (in memory: the caller saves).
func (l *Loop) settle(ctx context.Context, s *service, want map[string]AdminState) bool {
	b, err := l.lb.Backend(ctx, s.cfg.Backend)
	if err != nil {
		return false
	}
	forgot := false
	for slot, w := range want {
		if srv, ok := b.Server(slot); ok && srv.Admin < w {
			forgot = l.forget(s.draining, slot) || forgot
		}
	}
	return forgot
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
