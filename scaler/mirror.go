package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/slotscaler/slotscaler/runtimeapi"
)

// Mirror is an LB over several HAProxy instances that serve the same
// backends (haproxy.runtime_api with more than one entry). The first is
// the primary: its slots are the truth. Every change goes to all of them;
// every read reads all of them (any failure fails the read, so nothing is
// decided on part of the traffic), brings a secondary that drifted (it
// restarted, or missed a change) back to the primary's slots, and merges:
// sessions and queues are summed, and a slot counts as up only when every
// instance's check passed.
//
// Slots are steered through slotscaler (lbctl, the API) or the primary's
// socket: a drain made on a secondary's socket alone is undone.
type Mirror struct {
	// mu makes a read-and-sync and each change atomic with respect to each
	// other: a sync must never act on a primary read from before a change
	// and a secondary read from after it.
	mu    sync.Mutex
	lbs   []LB
	names []string
	opts  func(backend string) (runtimeapi.ServerOptions, bool)
	log   *slog.Logger
}

var _ LB = (*Mirror)(nil)

// NewMirror keeps lbs (named, for logs) in step. opts gives the "add
// server" keywords of a backend's dynamic slots, for re-adding them to an
// instance that lost them.
func NewMirror(lbs []LB, names []string, opts func(backend string) (runtimeapi.ServerOptions, bool), log *slog.Logger) *Mirror {
	return &Mirror{lbs: lbs, names: names, opts: opts, log: log}
}

// Info is the primary's, with the latest start time of all, so a restart of
// any instance is seen.
func (m *Mirror) Info(ctx context.Context) (runtimeapi.Info, error) {
	var out runtimeapi.Info
	for i, lb := range m.lbs {
		info, err := lb.Info(ctx)
		if err != nil {
			return runtimeapi.Info{}, fmt.Errorf("%s: %w", m.names[i], err)
		}
		if i == 0 {
			out = info
		}
		out.StartTime = max(out.StartTime, info.StartTime)
	}
	return out, nil
}

// Backend reads the backend on every instance, syncs the secondaries to
// the primary, and returns the merged view.
func (m *Mirror) Backend(ctx context.Context, name string) (runtimeapi.Backend, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	views := make([]runtimeapi.Backend, len(m.lbs))
	for i, lb := range m.lbs {
		b, err := lb.Backend(ctx, name)
		if err != nil {
			return runtimeapi.Backend{}, fmt.Errorf("%s: %w", m.names[i], err)
		}
		views[i] = b
	}
	merged := views[0]
	merged.Servers = append([]runtimeapi.Server(nil), views[0].Servers...)
	for i := 1; i < len(views); i++ {
		m.sync(ctx, i, views[0], views[i])
		merged.Sessions += views[i].Sessions
		merged.Queue += views[i].Queue
		for j := range merged.Servers {
			if s, ok := views[i].Server(merged.Servers[j].Name); ok {
				merged.Servers[j] = mergeServer(merged.Servers[j], s)
			}
		}
	}
	return merged, nil
}

// mergeServer adds b's load to a, and keeps the view of whichever check is
// worse: a slot is up only when it is up everywhere.
func mergeServer(a, b runtimeapi.Server) runtimeapi.Server {
	a.Sessions += b.Sessions
	a.Queue += b.Queue
	if checkPassed(a) && !checkPassed(b) || a.Health != runtimeapi.HealthDown && b.Health == runtimeapi.HealthDown {
		a.Status, a.Health, a.CheckStatus, a.Transition, a.LastChange = b.Status, b.Health, b.CheckStatus, b.Transition, b.LastChange
	}
	return a
}

// sync brings secondary i to the primary's servers of one backend.
func (m *Mirror) sync(ctx context.Context, i int, primary, secondary runtimeapi.Backend) {
	lb, be := m.lbs[i], primary.Name
	fix := func(what string, err error) {
		if err != nil {
			m.log.Warn("secondary haproxy not synced; retried at the next read", "instance", m.names[i], "backend", be, "change", what, "err", err)
		} else {
			m.log.Info("secondary haproxy synced", "instance", m.names[i], "backend", be, "change", what)
		}
	}
	for _, p := range primary.Servers {
		s, ok := secondary.Server(p.Name)
		if !ok {
			// Only dynamic servers can be missing: the instance restarted.
			opts, dynamic := m.opts(be)
			if !dynamic || !p.Addr.IsValid() {
				continue
			}
			err := lb.AddServer(ctx, be, p.Name, p.Addr, p.Port, opts)
			if err == nil {
				err = lb.EnableHealth(ctx, be, p.Name)
			}
			fix("add server "+p.Name, err)
			if err != nil {
				continue
			}
			s = runtimeapi.Server{Name: p.Name, Addr: p.Addr, Port: p.Port, Admin: runtimeapi.AdminMaint, Weight: p.Weight}
		}
		if p.Addr.IsValid() && (p.Addr != s.Addr || p.Port != s.Port) {
			fix("addr "+p.Name, lb.SetAddr(ctx, be, p.Name, p.Addr, p.Port))
		}
		if (p.Weight == 0) != (s.Weight == 0) {
			pct := 100
			if p.Weight == 0 {
				pct = 0
			}
			fix("weight "+p.Name, lb.SetWeight(ctx, be, p.Name, pct))
		}
		if p.Admin != s.Admin {
			fix("state "+p.Name+" "+p.Admin.String(), lb.SetState(ctx, be, p.Name, p.Admin))
		}
	}
	for _, s := range secondary.Servers {
		if _, ok := primary.Server(s.Name); ok {
			continue
		}
		if _, dynamic := m.opts(be); !dynamic {
			continue
		}
		err := lb.SetState(ctx, be, s.Name, runtimeapi.AdminMaint)
		if err == nil {
			err = lb.DelServer(ctx, be, s.Name)
		}
		fix("del server "+s.Name, err)
	}
}

// each applies a change to every instance: the primary's error is the
// caller's; a secondary's is logged and repaired by the next read's sync.
func (m *Mirror) each(what string, f func(LB) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for i, lb := range m.lbs {
		err := f(lb)
		switch {
		case err == nil:
		case i == 0:
			first = err
		default:
			m.log.Warn("change not applied on a secondary haproxy; the next read syncs it", "instance", m.names[i], "change", what, "err", err)
		}
	}
	return first
}

// SetAddr points the server at addr:port on every instance.
func (m *Mirror) SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error {
	return m.each("addr", func(lb LB) error { return lb.SetAddr(ctx, backend, server, addr, port) })
}

// SetState sets the admin state on every instance.
func (m *Mirror) SetState(ctx context.Context, backend, server string, state runtimeapi.AdminState) error {
	return m.each("state", func(lb LB) error { return lb.SetState(ctx, backend, server, state) })
}

// SetWeight sets the weight on every instance.
func (m *Mirror) SetWeight(ctx context.Context, backend, server string, percent int) error {
	return m.each("weight", func(lb LB) error { return lb.SetWeight(ctx, backend, server, percent) })
}

// EnableHealth enables checks on every instance.
func (m *Mirror) EnableHealth(ctx context.Context, backend, server string) error {
	return m.each("enable health", func(lb LB) error { return lb.EnableHealth(ctx, backend, server) })
}

// AddServer adds the server on every instance; one that has it already
// (it kept it across our restart) is not an error there.
func (m *Mirror) AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts runtimeapi.ServerOptions) error {
	return m.each("add server", func(lb LB) error {
		err := lb.AddServer(ctx, backend, server, addr, port, opts)
		if lb != m.lbs[0] && errors.Is(err, runtimeapi.ErrAlreadyExists) {
			return lb.SetAddr(ctx, backend, server, addr, port)
		}
		return err
	})
}

// DelServer deletes the server on every instance.
func (m *Mirror) DelServer(ctx context.Context, backend, server string) error {
	return m.each("del server", func(lb LB) error {
		err := lb.DelServer(ctx, backend, server)
		if lb != m.lbs[0] && errors.Is(err, runtimeapi.ErrNoSuchServer) {
			return nil
		}
		return err
	})
}
