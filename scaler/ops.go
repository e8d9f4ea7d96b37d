package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// shortOfRoom reports a lack of room once, not at every tick while it
// lasts (the event ring and scale_events_total would fill with it); none:
// there was room.
func (l *Loop) shortOfRoom(s *service, short []shortage) {
	if len(short) == 0 {
		s.noCapacity = ""
	}
	for _, sh := range short {
		if s.noCapacity != sh.Message {
			s.noCapacity = sh.Message
			l.event(Event{Service: s.cfg.Name, Kind: EventNoCapacity, Reason: sh.Reason, Message: sh.Message})
		}
	}
}

// startsInFlight are the starts of new containers under way that a
// scale-down may call off.
func (l *Loop) startsInFlight(s *service) []startInFlight {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []startInFlight
	for slot, o := range s.ops {
		if o.kind == opStart && o.fresh && !o.cancelled {
			out = append(out, startInFlight{Slot: slot, Began: o.began})
		}
	}
	return out
}

// hostLoads counts every managed container per host, plus starts whose
// container the listing could not show yet.
func (l *Loop) hostLoads(s *service, inv inventory) []HostLoad {
	loads := make([]HostLoad, len(l.hosts))
	listed := map[string]bool{}
	for i, h := range l.hosts {
		cs := inv.byHost[h.Name]
		loads[i] = HostLoad{Name: h.Name, Capacity: h.Capacity, Preferred: h.Preferred, Down: inv.down[h.Name] != nil}
		for _, c := range cs {
			listed[c.ID] = true
			loads[i].Total++
			if c.Service == s.cfg.Name {
				loads[i].OfService++
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, other := range l.services {
		for _, o := range other.ops {
			if o.kind != opStart || listed[o.container] && o.container != "" {
				continue
			}
			for i := range loads {
				if loads[i].Name == o.host {
					loads[i].Total++
					if other == s {
						loads[i].OfService++
					}
				}
			}
		}
	}
	return loads
}

// backedOff reports whether starts of generation wait after failures.
func (l *Loop) backedOff(s *service, generation string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Before(s.retry[generation].at)
}

// start runs a container for slot on h (or takes the one given), binds the
// slot at weight 0, waits for HAProxy's first passed check, and only then
// lets traffic in. Whatever fails is undone: the slot goes back to maint
// and the container away.
func (l *Loop) start(ctx context.Context, log *slog.Logger, s *service, slot string, h *Host, spec Spec, c *Container) {
	begin := time.Now()
	fresh := c == nil // a container this start runs, not one it binds again
	if c == nil {
		started, err := h.Engine.Start(ctx, spec)
		if err != nil {
			if context.Cause(ctx) == errStartCalledOff {
				log.Info("start called off before the container ran", "slot", slot)
				return
			}
			l.startFailed(s, spec.Generation, Event{Service: s.cfg.Name, Slot: slot, Kind: EventStartFailed, Reason: "start", Message: err.Error()}, "host", h.Name)
			return
		}
		c = &started
		l.mu.Lock()
		s.ops[slot].container = c.ID
		l.mu.Unlock()
		log.Info("container started", "slot", slot, "host", h.Name, "container", c.Name, "port", c.Port, "took", time.Since(begin).Round(time.Millisecond).String())
	}
	at := netip.AddrPortFrom(h.Addr, uint16(c.Port)) // where the slot points at the container once bound
	keepBinding := false
	readied := false // the bind got to state ready
	undo := func(why string, err error) {
		// A slot HAProxy reset while it came up (a restart or reload) says
		// nothing of the container: it is kept for the next tick to bind
		// again (plan: Rebind), and the start does not count as failed (it
		// was removed, and the next tick started another; a rollout's
		// surge counted it against the new image). Once: a re-bind that
		// sees its slot reset again is undone as any failed start, so that
		// a slot that never shows the container's address (review) backs
		// off instead of being bound again at every tick.
		reset := errors.Is(err, errSlotReset) && fresh
		calledOff := func() bool { return context.Cause(ctx) == errStartCalledOff }
		if !reset && !calledOff() {
			l.startFailed(s, c.Generation, Event{Service: s.cfg.Name, Slot: slot, Kind: EventStartFailed, Reason: why, Message: fmt.Sprintf("slot not brought up, undone: %v", err)}, "container", c.Name)
		}
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace+10*time.Second)
		defer cancel()
		switch err := l.takeOutStart(cleanup, s, slot, c.Name, at, readied); {
		case errors.Is(err, errDrainedMeanwhile):
			return // theirs now, container and all
		case err != nil:
			// The slot stays a start of ours for the ticks to finish.
			log.Warn("undo postponed", "slot", slot, "err", err)
			keepBinding = true
			return
		}
		// Whether the start was called off is read after takeOutStart:
		// a tick calls starts off under tickMu, which it held, so the
		// answer is final (review: read before, a start called off while
		// the undo waited kept its container, bound again under a pin of 0).
		switch {
		case calledOff():
			l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventRemoved, Reason: "called_off", Message: "start called off: container " + c.Name + " to remove"})
		case reset:
			log.Warn("slot reset while it came up: taken out, container kept to bind again", "slot", slot, "container", c.Name, "err", err)
			return
		}
		if err := h.Engine.Remove(cleanup, c.ID, StopGrace); err != nil {
			// The intent stays with the container: the next tick finds a
			// maint of slotscaler's and removes it (not an operator's).
			log.Warn("remove container: the next tick retries", "slot", slot, "err", err)
			return
		}
		if s.cfg.Slots.Mode == config.ModeDynamic {
			l.deleteServer(cleanup, log, s, slot)
		}
		l.retired(s, slot)
	}
	// Saved before the weight goes to 0: a restart in between must not
	// take the weight 0 for an operator's. The slot's last bound address
	// goes with it: this bind may point the slot there again (a re-bind
	// after HAProxy restarted), and until its state ready a maint there is
	// this start's, not an operator's (review: killed before it, the slot
	// was held for good).
	l.mu.Lock()
	_, hadBound := s.lastBound[slot]
	delete(s.lastBound, slot)
	_, hadBinding := s.binding[slot]
	l.mu.Unlock()
	if hadBound && hadBinding { // setIntent saves only a change of the intent
		if err := l.persist(); err != nil {
			undo("save state", err)
			return
		}
	}
	if err := l.setIntent(s.binding, slot, l.clock.Now()); err != nil {
		undo("save state", err)
		return
	}
	defer func() {
		if !keepBinding {
			l.setIntent(s.binding, slot, time.Time{})
		}
	}()
	if err := l.bind(ctx, s, slot, h.Addr, c.Port); err != nil {
		undo("bind", err)
		return
	}
	readied = true
	// Ready under a start of ours: a drain of ours from before (a re-bind
	// after HAProxy restarted mid-drain) is over, or an operator's maint
	// of the slot would pass for it (sim seed 1179). Where the bind got to
	// is saved now, not with the next write: after a restart, a maint found
	// at this address is an operator's, not a start of ours cut short
	// before its state ready (sim seeds 459 and 589, one each way). A
	// failed save is logged and leaves that one case ambiguous.
	l.boundTo(s, slot, at)
	l.mu.Lock()
	delete(s.draining, slot)
	l.mu.Unlock()
	_ = l.persist()
	switch err := l.waitUp(ctx, s, slot, at); {
	case errors.Is(err, errDrainedMeanwhile):
		// An operator drained the slot while it came up: theirs now, as
		// any drain they make (sim scenario TestScenarioOperatorDrainsStartingSlot).
		l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventControl, Reason: "operator_drain", Message: "drained by an operator while starting: left drained, container " + c.Name + " kept"})
		return
	case errors.Is(err, errMaintMeanwhile):
		// An operator's maint: the container goes, the slot stays theirs.
		if l.hold(log, s, slot) != nil {
			keepBinding = true // the next tick finds the maint on a start of ours and holds it
			return
		}
		undo("operator maint", err)
		return
	case err != nil:
		undo("first health check", err)
		return
	}
	// Tried three times before the next tick takes it over: a passing
	// refusal should not keep a healthy slot at weight 0 for an interval.
	err := change(ctx, l.lb, SetWeight(s.cfg.Backend, slot, 100))
	for try := 1; err != nil && try < 3 && l.clock.Sleep(ctx, 20*time.Millisecond) == nil; try++ {
		err = change(ctx, l.lb, SetWeight(s.cfg.Backend, slot, 100))
	}
	if err != nil {
		// Not undone: a lost reply may hide a weight that took, and the
		// slot would go from serving to maint (sim: "serving floor"). It
		// stays a start of ours; the next tick weights it or finds it
		// serving.
		log.Warn("set weight: the next tick finishes the start", "slot", slot, "err", err)
		keepBinding = true
		return
	}
	l.mu.Lock()
	delete(s.retry, c.Generation)
	l.mu.Unlock()
	l.wakeServing(s, at) // wake (issue 13)
	l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventServing, Message: "slot serving " + c.Name},
		"host", h.Name, "addr", at.String(), "image", c.Image, "took", time.Since(begin).Round(time.Millisecond).String())
}

// takeOutStart sets a start's slot to maint for its undo. It runs under
// tickMu, which an operator's drain through the API holds too: read under
// it, the slot shows a drain that landed while the start failed, and that
// drain is theirs to keep, container and all (errDrainedMeanwhile; sim
// seed 985 took the slot out from under them).
//
// readied tells that the bind got to state ready at at: a maint there since
// is an operator's (as waitUp finds it), held before the container goes
// (sim scenario TestScenarioOperatorMaintAsStartFails: taken for the
// undo's own, the slot was filled again).
func (l *Loop) takeOutStart(ctx context.Context, s *service, slot, container string, at netip.AddrPort, readied bool) error {
	lockOn(l.clock, &l.tickMu)
	defer l.tickMu.Unlock()
	b, err := l.lb.Backend(ctx, s.cfg.Backend)
	if err != nil {
		// Nothing is taken out on a read that failed: an operator's drain
		// may have landed meanwhile (sim seed 2503 set it to maint).
		return fmt.Errorf("read again before the maint (container kept for the next tick): %w", err)
	}
	srv, ok := b.Server(slot)
	switch {
	case ok && srv.Admin == AdminDrain:
		l.event(Event{Service: s.cfg.Name, Slot: slot, Kind: EventControl, Reason: "operator_drain", Message: "drained by an operator while starting: left drained, container " + container + " kept"})
		return errDrainedMeanwhile
	case ok && readied && srv.Admin == AdminMaint && srv.AddrPort() == at && !l.isHeld(s, slot):
		if err := l.hold(s.log, s, slot); err != nil {
			return fmt.Errorf("the operator's maint is not recorded (container kept for the next tick): %w", err)
		}
	}
	// A maint of slotscaler's is recorded first (a draining intent): one
	// without it is an operator's.
	if err := l.setIntent(s.draining, slot, l.clock.Now()); err != nil {
		return fmt.Errorf("its intent could not be saved: %w", err)
	}
	if err := change(ctx, l.lb, SetState(s.cfg.Backend, slot, AdminMaint)); err != nil && !errors.Is(err, ErrNoSuchServer) {
		// HAProxy may still send it traffic: the container stays.
		return fmt.Errorf("set maint (container kept for the next tick): %w", err)
	}
	return nil
}

// spec is the container a slot runs.
func (s *service) spec(slot string, h *Host, image string, now time.Time) Spec {
	cc := s.cfg.Container
	return Spec{
		Name:       fmt.Sprintf("slotscaler-%s-%s-%x", s.cfg.Name, slot, now.UnixNano()&0xffffffff),
		Service:    s.cfg.Name,
		Slot:       slot,
		Host:       h.Name,
		Generation: s.generationOf(image),
		Image:      image,
		Port:       cc.Port,
		PublishIP:  h.Addr,
		Env:        cc.Env,
		Volumes:    cc.Volumes,
		Labels:     cc.Labels,
		Command:    cc.Command,
		Memory:     int64(cc.Memory),
		CPUs:       cc.CPUs,
	}
}

// bind points the slot at the container with weight 0 and makes it ready,
// so HAProxy checks it but sends it nothing yet. The first three changes
// go as one batch: a slot still in maint serves nothing whatever part of
// it took; ready is sent only once all three did.
func (l *Loop) bind(ctx context.Context, s *service, slot string, addr netip.Addr, port int) error {
	be := s.cfg.Backend
	dynamic := s.cfg.Slots.Mode == config.ModeDynamic
	point := SetAddr(be, slot, addr, port)
	if dynamic {
		point = AddServer(be, slot, addr, port, DynamicServerOptions(s.cfg))
	}
	errs := l.lb.Apply(ctx, []Change{point, SetWeight(be, slot, 0), EnableHealth(be, slot)})
	if dynamic && errors.Is(errs[0], ErrAlreadyExists) {
		errs[0] = change(ctx, l.lb, SetAddr(be, slot, addr, port))
	}
	for _, err := range errs {
		if err != nil {
			return err // the first: the others follow from it
		}
	}
	return change(ctx, l.lb, SetState(be, slot, AdminReady))
}

// DynamicServerOptions are the keywords of a service's "add server": the
// checks "render" writes for template slots, as dynamic servers inherit no
// default-server, and reusable idle connections.
func DynamicServerOptions(s config.Service) ServerOptions {
	fast := fmt.Sprintf("%dms", config.FastInter(s.Check.Inter.Duration).Milliseconds())
	return ServerOptions{
		Check: true, Inter: fmt.Sprintf("%dms", s.Check.Inter.Milliseconds()), Rise: s.Check.Rise, Fall: s.Check.Fall,
		Extra: []string{"fastinter", fast, "downinter", fast, "pool-purge-delay", "5s"},
	}
}

// checkPassed reports whether HAProxy's own check of the server passed and
// no rise/fall transition is under way.
func checkPassed(srv Server) bool {
	return srv.Health == HealthUp && !srv.Transition && strings.Contains(srv.CheckStatus, "OK")
}

// errDrainedMeanwhile and errMaintMeanwhile: someone else drained the
// slot, or set it to maint, while it came up; errSlotReset: HAProxy put
// it back at another address (a template slot) or dropped it (a dynamic
// one), as a restart or reload without its state does.
var (
	errDrainedMeanwhile = errors.New("drained meanwhile")
	errMaintMeanwhile   = errors.New("set to maint meanwhile")
	errSlotReset        = errors.New("reset by a restart or reload of haproxy")
)

// fastPoll is waitUp's period right after a bind, for one slot waiting.
const fastPoll = 10 * time.Millisecond

// waitUp polls the slot until its health check passed, for at most the
// service's unhealthy_after (counted in the sleeps between polls, so that
// a clock that only tests move does not make it wait for ever).
func (l *Loop) waitUp(ctx context.Context, s *service, slot string, at netip.AddrPort) error {
	// Polled often: the slot takes traffic only once this sees the pass.
	// HAProxy runs its first check of a slot it just made ready within
	// one inter (a template slot's check keeps the phase it had in maint,
	// measured uniform over the inter; a dynamic server's comes after
	// fastinter), so in the first two inters the poll is faster: every
	// fastPoll times the slots waiting: their polls together stay near
	// 100 a second, and with more than five waiting each polls at the
	// usual period, as before.
	l.waitingUp.Add(1)
	defer l.waitingUp.Add(-1)
	inter := s.cfg.Check.Inter.Duration
	usual := min(max(inter/10, fastPoll), 50*time.Millisecond)
	last := "no reading"
	for waited := time.Duration(0); ; {
		b, err := l.lb.Backend(ctx, s.cfg.Backend)
		if err == nil {
			srv, ok := b.Server(slot)
			switch {
			case !ok:
				return fmt.Errorf("slot %s/%s disappeared: %w", s.cfg.Backend, slot, errSlotReset)
			case srv.Admin == AdminDrain:
				return fmt.Errorf("slot %s/%s: %w", s.cfg.Backend, slot, errDrainedMeanwhile)
			case srv.Admin == AdminMaint && srv.AddrPort() == at:
				return fmt.Errorf("slot %s/%s: %w", s.cfg.Backend, slot, errMaintMeanwhile)
			case srv.AddrPort() != at:
				// Back at another address: HAProxy restarted or reloaded,
				// maybe between the bind's first batch and its ready, which
				// then put the placeholder in the balancing: undone at once,
				// not after unhealthy_after (TestLoopStartUndoneWhenReadyLandsAfterRestart).
				return fmt.Errorf("slot %s/%s is at %s: %w", s.cfg.Backend, slot, srv.AddrPort(), errSlotReset)
			case checkPassed(srv):
				return nil
			}
			last = fmt.Sprintf("status %q, check %q", srv.Status, srv.CheckStatus)
		}
		if waited >= s.cfg.UnhealthyAfter.Duration {
			return fmt.Errorf("no passed check within %s (last: %s): %w", s.cfg.UnhealthyAfter.Duration, last, context.DeadlineExceeded)
		}
		poll := usual
		if waited < 2*inter {
			poll = min(usual, fastPoll*time.Duration(max(l.waitingUp.Load(), 1)))
		}
		if err := l.clock.Sleep(ctx, poll); err != nil {
			return fmt.Errorf("waiting for a passed check (last: %s): %w", last, err)
		}
		waited += poll
	}
}

// cpu is the mean CPU use of the serving containers since the previous
// tick, in percent of each container's CPU limit (of one CPU without one).
// The samples are taken at once: each is an engine round trip.
func (l *Loop) cpu(ctx context.Context, s *service, b Backend, containers []Container) float64 {
	var serving []*Container
	for _, srv := range b.Servers {
		if c := l.bound(srv, containers); c != nil && srv.Serving() {
			serving = append(serving, c)
		}
	}
	samples := make([]CPUSample, len(serving))
	errs := make([]error, len(serving))
	var wg sync.WaitGroup
	for i, c := range serving {
		wg.Go(func() { samples[i], errs[i] = l.host(c.Host).Engine.CPU(ctx, c.ID) })
	}
	wg.Wait()
	var sum float64
	var n int
	seen := map[string]bool{}
	for i, c := range serving {
		if errs[i] != nil {
			continue
		}
		seen[c.ID] = true
		if p := samples[i].Percent(s.cpu[c.ID]); p >= 0 {
			if s.cfg.Container.CPUs > 0 {
				p /= s.cfg.Container.CPUs
			}
			sum += p
			n++
		}
		s.cpu[c.ID] = samples[i]
	}
	for id := range s.cpu {
		if !seen[id] {
			delete(s.cpu, id)
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

// startFailed counts a start that never served against its generation (a
// rollout watches this) and reports it.
func (l *Loop) startFailed(s *service, generation string, e Event, attrs ...any) {
	l.mu.Lock()
	s.startFailures[generation]++
	r := s.retry[generation]
	r.failures++
	r.at = l.clock.Now().Add(min(l.interval<<min(r.failures, 20), maxStartBackoff))
	s.retry[generation] = r
	l.mu.Unlock()
	l.event(e, attrs...)
}
