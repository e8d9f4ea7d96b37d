package scaler

import (
	"context"
	"sync"
	"time"
)

// Clock is the loop's time and how it runs its operations: the wall clock
// and plain goroutines in production; virtual time and goroutines run one
// at a time in the simulator (internal/sim). Every wait of the loop (a
// sleep, a poll, a busy lock) goes through it, so that the simulator sees a
// waiting goroutine as waiting and can decide, from its seed, what happens
// next.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx ends (then it returns ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
	// Go runs fn in a goroutine of its own.
	Go(fn func())
}

// WallClock is the real time.
type WallClock struct{}

// Now is time.Now.
func (WallClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (WallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Go starts a goroutine.
func (WallClock) Go(fn func()) { go fn() }

// fixedNow is the wall clock with the time read from now (unit tests).
type fixedNow struct {
	WallClock
	now func() time.Time
}

func (c fixedNow) Now() time.Time { return c.now() }

// lockOn takes mu. A waiter sleeps on the clock between tries instead of
// blocking in the runtime: the simulator runs one goroutine at a time and
// must see the waiter as waiting. Contention is rare (two state writes, or
// a change and a read of several HAProxy instances, at once), so the polls
// cost nothing measurable.
func lockOn(c Clock, mu *sync.Mutex) {
	for !mu.TryLock() {
		_ = c.Sleep(context.Background(), time.Millisecond)
	}
}
