package scaler

import (
	"context"
	"sync"
	"time"
)

// An early tick: a load step lands anywhere within an interval and waited
// for the next tick, half an interval on average (250 ms of the reaction
// time at interval 500ms). Between ticks, Run reads the backends' own
// counters (LB.Loads: the BACKEND rows only, a fraction of a tick's read)
// and ticks at once when a tick then would scale a service up further
// than its last tick did.
//
// A BACKEND row's sessions count every stream of the backend: drained and
// maint slots' sessions and queued requests too, where Observation.Sessions
// sums serving slots only. The probe therefore never compares the value:
// it adds the change since the read Run made right after the last tick to
// what that tick observed, so a constant offset (a drained slot's
// sessions) never triggers.

// tickSeen is what a service's last tick saw and decided.
type tickSeen struct {
	Obs      Observation
	History  History  // after the tick's decision
	Decision Decision // as the tick planned it (pin, pause and rollout applied)
}

// earlyTick reports whether a tick at now would scale the service up
// beyond what its last tick decided, with the backend's counters at probe
// where the read right after that tick gave base. It is pure: Decide on a
// copy of the last observation, its sessions and queue moved by the
// probe's change, and the service's history; the history Decide returns
// is dropped. Only services under the decision rules are judged: a pinned,
// paused or rolling-out service does not follow its load.
func earlyTick(p Policy, mode ControlMode, last tickSeen, base, probe BackendLoad, now time.Time) bool {
	if mode != ControlAuto {
		return false
	}
	queued := probe.Queue - base.Queue
	o := last.Obs
	o.Now = now
	o.Queue = max(0, o.Queue+float64(queued))
	// scur counts queued requests too: they are in the queue's change.
	o.Sessions = max(0, o.Sessions+float64(probe.Sessions-base.Sessions-queued))
	d, _ := Decide(p, o, last.History)
	return d.Desired > max(d.Current, last.Decision.Desired)
}

// probePeriod is how often Run reads the backends' counters between
// ticks: a fifth of the interval, so a load step waits some 10 to 20% of
// an interval for its tick instead of half of it, at a read of BACKEND
// rows per period (about 0.1 ms on the socket, less than the tick's
// share of the same connection); not below 20 ms, where reads would
// cost more than the milliseconds they gain.
func probePeriod(interval time.Duration) time.Duration {
	return max(interval/5, 20*time.Millisecond)
}

// earlyKick hands the probe's kicks to Run's sleep. A kick judged on the
// counters read after one tick is dropped once another tick has run:
// that tick saw the load.
type earlyKick struct {
	kick chan struct{} // what Run's sleep also waits on (made by New, one kick buffered)

	mu    sync.Mutex
	ticks int                    // ticks Run made
	at    time.Time              // when the last one ended
	base  map[string]BackendLoad // by backend, read right after the last tick; nil: none
}

// ticked records a tick that ended at, the counters read right after it,
// and drops a kick sent meanwhile.
func (e *earlyKick) ticked(at time.Time, base map[string]BackendLoad) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ticks++
	e.at, e.base = at, base
	select {
	case <-e.kick:
	default:
	}
}

// last returns the tick count, when the last tick ended, and the counters
// read after it.
func (e *earlyKick) last() (int, time.Time, map[string]BackendLoad) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ticks, e.at, e.base
}

// send kicks Run if no tick ran since tick.
func (e *earlyKick) send(tick int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if tick != e.ticks {
		return false
	}
	select {
	case e.kick <- struct{}{}:
	default: // a kick is already waiting
	}
	return true
}

// probed are the services the probe judges, with their backends' names.
func (l *Loop) probed() ([]*service, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ss []*service
	var names []string
	for _, s := range l.services {
		if s.seen != nil {
			ss, names = append(ss, s), append(names, s.cfg.Backend)
		}
	}
	return ss, names
}

// readBase reads the counters right after a tick, for the probe to
// compare with; nil when the read failed (the probe then waits for the
// next tick).
func (l *Loop) readBase(ctx context.Context) map[string]BackendLoad {
	_, names := l.probed()
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.interval)
	defer cancel()
	base, err := l.lb.Loads(ctx, names)
	if err != nil {
		l.log.Debug("probe: backend counters not read after the tick: no early tick until the next one", "err", err)
		return nil
	}
	return base
}

// probe reads the backends' counters every probePeriod until ctx ends and
// kicks Run's sleep when earlyTick says a tick now would scale up. At
// most one early tick per half interval, and none before one probe period
// after a tick: the probe can never make ticks run back to back, and it
// at most doubles their rate while the load keeps rising (each early tick
// is followed by a whole interval's sleep).
func (l *Loop) probe(ctx context.Context) {
	period := probePeriod(l.interval)
	var lastKick time.Time
	for l.clock.Sleep(ctx, period) == nil {
		tick, ticked, base := l.early.last()
		if now := l.clock.Now(); base == nil || now.Sub(ticked) < period || now.Sub(lastKick) < l.interval/2 {
			continue
		}
		services, names := l.probed()
		rctx, cancel := context.WithTimeout(ctx, l.interval)
		loads, err := l.lb.Loads(rctx, names)
		cancel()
		if err != nil {
			l.log.Debug("probe: backend counters not read", "err", err)
			continue
		}
		now := l.clock.Now()
		for _, s := range services {
			b, okBase := base[s.cfg.Backend]
			p, okProbe := loads[s.cfg.Backend]
			l.mu.Lock()
			seen := s.seen
			mode, _ := s.controlLocked()
			l.mu.Unlock()
			if !okBase || !okProbe || seen == nil || !earlyTick(s.policy, mode, *seen, b, p, now) {
				continue
			}
			if l.early.send(tick) {
				lastKick = now
				s.log.Debug("early tick: the load rose since the last tick", "sessions", p.Sessions-b.Sessions, "queue", p.Queue-b.Queue)
			}
			break
		}
	}
}
