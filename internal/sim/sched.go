package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
)

// errKilled is what a killed slotscaler process gets from every port: its
// goroutines run to their end with no effect on the world.
var errKilled = errors.New("sim: slotscaler process killed")

// sched runs the world on a virtual clock, one goroutine at a time. A
// goroutine of the loop (the tick, an operation, an API call) runs until it
// calls a port or sleeps; it then parks, and the driver picks, from the
// seed, which parked goroutine or world event goes next. So one seed gives
// one interleaving, and every interleaving is a seed away.
type sched struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	rng    *rand.Rand
	active int // goroutines running, not parked
	seq    int
	queue  []*entry
	dead   map[int]bool // killed slotscaler processes
	// running is the goroutine that runs now (nil: the driver).
	running *gor
	// panicked hears a goroutine's panic (it is recovered).
	panicked func(label string, v any)
}

// gor is a goroutine of the loop, labelled by what started it: "tick",
// "api" (an operator's call) or "op" (an operation the loop launched).
type gor struct {
	proc  int
	label string
}

// entry is something due at a virtual time: a parked goroutine to resume
// or a world event to run.
type entry struct {
	due  time.Time
	seq  int
	proc int           // the slotscaler process of a parked goroutine; 0 for world events
	gor  *gor          // the parked goroutine
	wake chan struct{} // a parked goroutine
	run  func()        // a world event
}

func newSched(seed uint64, start time.Time) *sched {
	s := &sched{now: start, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), dead: map[int]bool{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Now is the virtual time.
func (s *sched) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// at schedules a world event (run by the driver, not in a goroutine).
func (s *sched) at(due time.Time, run func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.queue = append(s.queue, &entry{due: due, seq: s.seq, run: run})
}

// park suspends the calling goroutine of proc for d of virtual time; false
// when proc was killed meanwhile (or before): the caller must then do
// nothing to the world.
func (s *sched) park(proc int, d time.Duration) bool {
	s.mu.Lock()
	if s.dead[proc] {
		d = 0 // still a yield: a killed process's goroutine may spin on a lock another one holds
	}
	s.seq++
	e := &entry{due: s.now.Add(d), seq: s.seq, proc: proc, gor: s.running, wake: make(chan struct{})}
	s.queue = append(s.queue, e)
	s.active--
	s.cond.Broadcast()
	s.mu.Unlock()
	<-e.wake
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead[proc]
}

// spawn queues fn to run in a goroutine of proc's: it starts when the
// driver picks it, never beside the goroutine that spawned it. If proc was
// killed by then, skipped runs instead (when set).
func (s *sched) spawn(proc int, label string, fn, skipped func()) {
	s.mu.Lock()
	s.seq++
	e := &entry{due: s.now, seq: s.seq, proc: proc, gor: &gor{proc: proc, label: label}, wake: make(chan struct{})}
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	go func() {
		<-e.wake
		defer func() {
			s.mu.Lock()
			s.active--
			s.running = nil
			s.cond.Broadcast()
			s.mu.Unlock()
		}()
		defer func() {
			if v := recover(); v != nil && s.panicked != nil {
				s.panicked(label, v)
			}
		}()
		switch {
		case s.alive(proc):
			fn()
		case skipped != nil:
			skipped()
		}
	}()
}

// label is what started the goroutine running now ("" for the driver).
func (s *sched) label() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return ""
	}
	return s.running.label
}

// quiesce waits until every goroutine is parked or ended. A goroutine that
// blocks outside the scheduler (a channel, a mutex held across a port
// call) would hang the run: that is reported, with the stacks.
func (s *sched) quiesce() {
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for s.active > 0 {
			s.cond.Wait()
		}
		s.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("sim: a goroutine blocks outside the simulator's clock and ports\n%s", buf[:runtime.Stack(buf, true)]))
	}
}

// step runs the next thing due: one of those due now, chosen by the seed;
// when none is, the clock moves to the earliest. False when nothing is left
// before until.
func (s *sched) step(until time.Time) bool {
	s.mu.Lock()
	if len(s.queue) == 0 {
		s.mu.Unlock()
		return false
	}
	earliest := slices.MinFunc(s.queue, func(a, b *entry) int { return a.due.Compare(b.due) }).due
	if earliest.After(until) {
		s.mu.Unlock()
		return false
	}
	if earliest.After(s.now) {
		s.now = earliest
	}
	var ready []int
	for i, e := range s.queue {
		if !e.due.After(s.now) {
			ready = append(ready, i)
		}
	}
	// Queue order is insertion order: the pick depends on the seed only.
	i := ready[s.rng.IntN(len(ready))]
	e := s.queue[i]
	s.queue = slices.Delete(s.queue, i, i+1)
	if e.wake != nil {
		s.active++
		s.running = e.gor
		s.mu.Unlock()
		close(e.wake)
		s.quiesce()
		return true
	}
	s.running = nil
	s.mu.Unlock()
	e.run()
	s.quiesce()
	return true
}

// kill ends a slotscaler process: its parked goroutines are woken at once
// to run to their end, every port refusing them.
func (s *sched) kill(proc int) {
	s.mu.Lock()
	s.dead[proc] = true
	for _, e := range s.queue {
		if e.proc == proc {
			e.due = s.now
		}
	}
	s.mu.Unlock()
}

// alive reports whether proc has not been killed.
func (s *sched) alive(proc int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead[proc]
}

// intn, chance and between draw from the seed (driver only).
func (s *sched) intn(n int) int { s.mu.Lock(); defer s.mu.Unlock(); return s.rng.IntN(n) }
func (s *sched) chance(p float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}
func (s *sched) between(lo, hi time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// clock is one slotscaler process's scaler.Clock.
type clock struct {
	s    *sched
	proc int
}

func (c clock) Now() time.Time { return c.s.Now() }

func (c clock) Sleep(ctx context.Context, d time.Duration) error {
	if !c.s.park(c.proc, d) {
		return errKilled
	}
	return ctx.Err()
}

func (c clock) Go(fn func()) { c.s.spawn(c.proc, "op", fn, nil) }
