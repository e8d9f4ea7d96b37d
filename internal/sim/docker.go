package sim

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
)

// host is one simulated Docker host: starts take time and may fail, images
// may be missing, the engine may stop answering, containers may die.
type host struct {
	w          *world
	name       string
	addr       netip.Addr
	capacity   int
	nextPort   int
	nextID     int
	containers []*container
	down       bool          // the engine does not answer
	failP      float64       // a start fails
	slowStart  time.Duration // scenarios: every start takes this long
}

type container struct {
	scaler.Container
	healthy bool      // its app answers checks (a "bad" image never does)
	diedAt  time.Time // when it died (not when it was removed)
}

// die makes c exit on its own.
func (w *world) die(h *host, c *container) {
	c.Running, c.diedAt = false, w.sched.Now()
	w.trace("docker %s: %s died", h.name, c.ID)
}

// diedUnseen finds a container published at addr:port that died after
// process proc last listed its host: to slotscaler it still runs.
func (w *world) diedUnseen(addr netip.Addr, port, proc int) *container {
	for _, h := range w.hosts {
		r, ok := w.listedAt[h.name]
		if h.addr != addr || !ok || r.proc != proc {
			continue
		}
		for _, c := range h.containers {
			if c.Port == port && !c.Running && !c.diedAt.IsZero() && c.diedAt.After(r.at) {
				return c
			}
		}
	}
	return nil
}

// healthyAt reports whether a running, healthy container is published at
// addr:port on some host.
func (w *world) healthyAt(addr netip.Addr, port int) bool {
	c, _ := w.containerAt(addr, port)
	return c != nil && c.Running && c.healthy
}

func (w *world) containerAt(addr netip.Addr, port int) (*container, *host) {
	for _, h := range w.hosts {
		if h.addr != addr {
			continue
		}
		for _, c := range h.containers {
			if c.Port == port && c.Running {
				return c, h
			}
		}
	}
	return nil, nil
}

// engine is one slotscaler process's scaler.Engine on a host.
type engine struct {
	h    *host
	proc int
}

var _ scaler.Engine = engine{}

func (e engine) call(lo, hi time.Duration) error {
	if !e.h.w.sched.park(e.proc, e.h.w.sched.between(lo, hi)) {
		return errKilled
	}
	if e.h.down {
		return fmt.Errorf("docker host %s: Cannot connect to the Docker daemon", e.h.name)
	}
	return nil
}

func (e engine) Containers(context.Context) ([]scaler.Container, error) {
	if err := e.call(time.Millisecond, 20*time.Millisecond); err != nil {
		if e.h.w.sched.label() == "tick" {
			e.h.w.listFail[e.h.name] = e.h.w.tickSeq
		}
		return nil, err
	}
	e.h.w.listedAt[e.h.name] = readMark{e.proc, e.h.w.sched.Now()}
	var out []scaler.Container
	for _, c := range e.h.containers {
		out = append(out, c.Container)
	}
	return out, nil
}

func (e engine) Start(ctx context.Context, spec scaler.Spec) (scaler.Container, error) {
	w := e.h.w
	if err := e.call(time.Millisecond, 5*time.Millisecond); err != nil {
		return scaler.Container{}, err
	}
	if strings.HasSuffix(spec.Image, ":missing") {
		return scaler.Container{}, fmt.Errorf("image %s on host %s: %w", spec.Image, e.h.name, scaler.ErrImageNotFound)
	}
	// Created at once, running after the start latency.
	e.h.nextID++
	e.h.nextPort++
	port := e.h.nextPort
	c := &container{Container: scaler.Container{ID: fmt.Sprintf("%s-%d", e.h.name, e.h.nextID), Name: spec.Name, Service: spec.Service, Slot: spec.Slot,
		Host: e.h.name, Generation: spec.Generation, Image: spec.Image, Created: w.sched.Now()}, healthy: !strings.HasSuffix(spec.Image, ":bad")}
	e.h.containers = append(e.h.containers, c)
	w.trace("docker %s: created %s for %s/%s (%s)", e.h.name, c.ID, spec.Service, spec.Slot, spec.Image)
	lo, hi := 50*time.Millisecond, 1500*time.Millisecond
	if e.h.slowStart > 0 {
		lo, hi = e.h.slowStart, e.h.slowStart
	}
	if err := e.call(lo, hi); err != nil {
		return scaler.Container{}, err
	}
	if ctx.Err() != nil || w.faults && w.sched.chance(e.h.failP) {
		// The driver removes what a failed start left.
		e.h.containers = slices.DeleteFunc(e.h.containers, func(x *container) bool { return x == c })
		return scaler.Container{}, fmt.Errorf("start %s on %s: failed (ctx: %v)", spec.Name, e.h.name, ctx.Err())
	}
	c.Running, c.Port = true, port
	w.trace("docker %s: %s running on %s:%d", e.h.name, c.ID, e.h.addr, c.Port)
	return c.Container, nil
}

func (e engine) Remove(_ context.Context, id string, _ time.Duration) error {
	w := e.h.w
	if err := e.call(time.Millisecond, 5*time.Millisecond); err != nil {
		return err
	}
	i := slices.IndexFunc(e.h.containers, func(c *container) bool { return c.ID == id })
	if i < 0 {
		return fmt.Errorf("remove %s: No such container", id)
	}
	c := e.h.containers[i]
	w.removing(e.proc, e.h, c)
	// SIGTERM: it stops taking connections now, and is gone after a while.
	c.Running = false
	if err := e.call(10*time.Millisecond, 500*time.Millisecond); err != nil {
		return err
	}
	e.h.containers = slices.DeleteFunc(e.h.containers, func(x *container) bool { return x == c })
	return nil
}

func (e engine) CPU(context.Context, string) (scaler.CPUSample, error) {
	return scaler.CPUSample{}, fmt.Errorf("sim: no CPU signal")
}
