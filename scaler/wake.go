package scaler

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// ErrClosed means a service takes no requests now: the max replicas in
// force is 0 (e.g. a schedule's outside: {max_replicas: 0}), or an
// operator pinned or paused it at 0. The wake listener answers 503 at once
// and nothing is started.
var ErrClosed = errors.New("closed")

// wakeHub is the loop's side of scale to zero: which services have
// requests held at their wake listener, a kick that makes the loop tick at
// once, and the serving slots held requests may go to. Its zero value is
// ready; it has its own lock so that waiting requests never take Loop.mu
// for long.
type wakeHub struct {
	mu       sync.Mutex
	kick     chan struct{}
	services map[string]*wakeService
}

type wakeService struct {
	active  int              // requests held, or still being passed to a container
	serving []netip.AddrPort // slots that passed their check and take traffic
	next    int              // round robin over serving
	closed  bool
	changed chan struct{} // closed (and replaced) when serving or closed change
}

func (w *wakeHub) service(name string) *wakeService {
	if w.services == nil {
		w.services = map[string]*wakeService{}
	}
	ws := w.services[name]
	if ws == nil {
		ws = &wakeService{changed: make(chan struct{})}
		w.services[name] = ws
	}
	return ws
}

// kicked is the channel Run also waits on: a send makes it tick at once.
func (w *wakeHub) kicked() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kick == nil {
		w.kick = make(chan struct{}, 1)
	}
	return w.kick
}

// active is what Observation.Held counts for a service.
func (w *wakeHub) active(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws := w.services[name]; ws != nil {
		return ws.active
	}
	return 0
}

// publish replaces a service's serving slots and closed state, waking the
// requests that wait for them.
func (w *wakeHub) publish(name string, serving []netip.AddrPort, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setLocked(w.service(name), serving, closed)
}

// add makes addr a serving slot of a service at once (a start's first
// passed check), before the next tick publishes the whole table.
func (w *wakeHub) add(name string, addr netip.AddrPort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.service(name)
	if !slices.Contains(ws.serving, addr) {
		w.setLocked(ws, append(slices.Clone(ws.serving), addr), ws.closed)
	}
}

func (w *wakeHub) setLocked(ws *wakeService, serving []netip.AddrPort, closed bool) {
	if slices.Equal(ws.serving, serving) && ws.closed == closed {
		return
	}
	ws.serving, ws.closed = serving, closed
	close(ws.changed)
	ws.changed = make(chan struct{})
}

// Wake is how the wake listener of a service holds one request: it counts
// the request as activity (a service at zero then wants a replica, and the
// last replica does not go), makes the loop tick at once rather than at
// the next interval (one start serves a burst: the tick sees the replica
// already starting), and returns the address of a serving slot once a slot
// passed its health check and takes traffic. release must be called once
// the request is done with that slot (a WebSocket may last long); on error
// the request is already released. The error is ErrClosed when the service
// is closed, ErrUnknown for an unknown service, or ctx's.
func (l *Loop) Wake(ctx context.Context, name string) (netip.AddrPort, func(), error) {
	l.mu.Lock()
	s := l.serviceLocked(name)
	closed := s != nil && l.closedLocked(s, l.clock.Now())
	l.mu.Unlock()
	switch {
	case s == nil:
		return netip.AddrPort{}, nil, unknownService(name)
	case closed:
		return netip.AddrPort{}, nil, fmt.Errorf("service %s: %w", name, ErrClosed)
	}
	w := &l.wake
	w.mu.Lock()
	w.service(name).active++
	w.mu.Unlock()
	var once sync.Once
	release := func() {
		once.Do(func() {
			w.mu.Lock()
			w.services[name].active--
			w.mu.Unlock()
		})
	}
	select {
	case w.kicked() <- struct{}{}:
	default: // a tick is already due
	}
	for {
		w.mu.Lock()
		ws := w.services[name]
		addr, changed, closed := netip.AddrPort{}, ws.changed, ws.closed
		if n := len(ws.serving); n > 0 && !closed {
			addr = ws.serving[ws.next%n]
			ws.next++
		}
		w.mu.Unlock()
		switch {
		case closed:
			release()
			return netip.AddrPort{}, nil, fmt.Errorf("service %s: %w", name, ErrClosed)
		case addr.IsValid():
			return addr, release, nil
		}
		select {
		case <-ctx.Done():
			release()
			return netip.AddrPort{}, nil, ctx.Err()
		case <-changed:
		}
	}
}

// closedLocked reports whether a service takes no requests at now: a max
// of 0 in force, or pinned or paused at 0. Call with Loop.mu held.
func (l *Loop) closedLocked(s *service, now time.Time) bool {
	if s.hold != nil {
		return s.hold.replicas == 0
	}
	return LimitsAt(s.cfg, now).Max == 0
}

// wakePublish hands a tick's view of a service with wake to its waiting
// requests: the slots serving, and the draining ones this tick took back
// (they serve again at once), but not those this tick began to drain. It
// runs after the tick's flush, which sets and clears those intents.
func (l *Loop) wakePublish(s *service, st ServiceStatus) {
	if s.cfg.Wake == nil {
		return
	}
	var serving []netip.AddrPort
	l.mu.Lock()
	for _, sl := range st.Slots {
		if _, draining := s.draining[sl.Name]; draining || sl.State != SlotServing && sl.State != SlotDraining {
			continue
		}
		if a, err := netip.ParseAddrPort(sl.Addr); err == nil {
			serving = append(serving, a)
		}
	}
	closed := l.closedLocked(s, st.Updated)
	l.mu.Unlock()
	l.wake.publish(s.cfg.Name, serving, closed)
}

// wakeServing tells held requests of s that addr serves now.
func (l *Loop) wakeServing(s *service, addr netip.AddrPort) {
	if s.cfg.Wake != nil {
		l.wake.add(s.cfg.Name, addr)
	}
}

// idleAfter is the decision's IdleAfter of a service: only one with wake
// goes to zero.
func idleAfter(s config.Service) time.Duration {
	if s.Wake == nil {
		return 0
	}
	return s.Wake.IdleAfter.Duration
}

// wakeReloadable refuses a reload that adds, removes or changes a wake
// block: the listeners are set up when slotscaler starts.
func wakeReloadable(running, next *config.Config) error {
	var changed []string
	for _, sc := range next.Services {
		var was *config.Wake
		for _, r := range running.Services {
			if r.Name == sc.Name {
				was = r.Wake
			}
		}
		if (was == nil) != (sc.Wake == nil) || was != nil && *was != *sc.Wake {
			changed = append(changed, "services."+sc.Name+".wake")
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("%s: wake listeners start with slotscaler; restart it to change them: %w", strings.Join(changed, ", "), ErrConflict)
	}
	return nil
}

// sleepOrWake is the loop's wait between ticks, cut short when a request
// is held for a service at zero or when Run's probe sees the load rise
// (early.go). It returns ctx's error only when ctx ended.
func (l *Loop) sleepOrWake(ctx context.Context, d time.Duration) error {
	sleep, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	wake, early := l.wake.kicked(), l.early.kick
	go func() { // ends with this sleep
		select {
		case <-wake:
			cancel()
		case <-early:
			cancel()
		case <-done:
		}
	}()
	_ = l.clock.Sleep(sleep, d)
	return ctx.Err()
}
