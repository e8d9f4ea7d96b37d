// Package haproxy adapts HAProxy's Runtime API client (runtimeapi) to the
// loop's port, scaler.LB: it converts runtimeapi's types to scaler's and
// maps HAProxy's refusals onto scaler's sentinel errors. It decides
// nothing; the loop, in turn, never sees a runtimeapi type.
package haproxy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
)

// Client is the part of the Runtime API the loop uses, in runtimeapi's
// types: *runtimeapi.Client and *runtimeapi.Fake implement it, as does the
// simulator's HAProxy.
type Client interface {
	Info(ctx context.Context) (runtimeapi.Info, error)
	Backend(ctx context.Context, name string) (runtimeapi.Backend, error)
	Backends(ctx context.Context, backend string) ([]runtimeapi.Backend, error) // "": every backend
	Loads(ctx context.Context) ([]runtimeapi.Load, error)                       // every backend's own counters
	Batch(ctx context.Context, cmds []runtimeapi.Command) ([]runtimeapi.Result, error)
}

var (
	_ Client = (*runtimeapi.Client)(nil)
	_ Client = (*runtimeapi.Fake)(nil)
)

// LB is a Client as the loop's scaler.LB.
type LB struct {
	c Client
}

var _ scaler.LB = (*LB)(nil)

// New adapts c.
func New(c Client) *LB {
	return &LB{c: c}
}

// Info returns the process's PID and start time.
func (l *LB) Info(ctx context.Context) (scaler.ProcessInfo, error) {
	info, err := l.c.Info(ctx)
	if err != nil {
		return scaler.ProcessInfo{}, mapErr(err)
	}
	return scaler.ProcessInfo{PID: info.PID, StartTime: info.StartTime, Uptime: info.Uptime}, nil
}

// Backend reads the backend's queue and servers.
func (l *LB) Backend(ctx context.Context, name string) (scaler.Backend, error) {
	b, err := l.c.Backend(ctx, name)
	if err != nil {
		return scaler.Backend{}, mapErr(err)
	}
	return backend(b), nil
}

// Backends reads every backend in one show stat and one show servers
// state, and keeps the named ones.
func (l *LB) Backends(ctx context.Context, names []string) (map[string]scaler.Backend, error) {
	bs, err := l.c.Backends(ctx, "")
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(map[string]scaler.Backend, len(names))
	for _, b := range bs {
		if slices.Contains(names, b.Name) {
			out[b.Name] = backend(b)
		}
	}
	return out, nil
}

// Loads reads every backend's own counters and keeps the named ones.
func (l *LB) Loads(ctx context.Context, names []string) (map[string]scaler.BackendLoad, error) {
	ls, err := l.c.Loads(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(map[string]scaler.BackendLoad, len(names))
	for _, b := range ls {
		if slices.Contains(names, b.Backend) {
			out[b.Backend] = scaler.BackendLoad{Sessions: b.Sessions, Queue: b.Queue}
		}
	}
	return out, nil
}

// backend converts one backend: one allocation, as it runs for every
// service at every tick.
func backend(b runtimeapi.Backend) scaler.Backend {
	servers := make([]scaler.Server, len(b.Servers))
	for i, s := range b.Servers {
		servers[i] = scaler.Server{
			Name: s.Name, Status: s.Status, Health: health(s.Health), Transition: s.Transition, CheckStatus: s.CheckStatus,
			Weight: s.Weight, Addr: s.Addr, Port: s.Port, Sessions: s.Sessions, Queue: s.Queue, LastChange: s.LastChange,
			Admin: admin(s.Admin),
		}
	}
	return scaler.Backend{Name: b.Name, Queue: b.Queue, Servers: servers}
}

// Apply sends the changes as one batch over the client's connection.
func (l *LB) Apply(ctx context.Context, changes []scaler.Change) []error {
	errs := make([]error, len(changes))
	cmds := make([]runtimeapi.Command, 0, len(changes))
	at := make([]int, 0, len(changes)) // cmds[k] is changes[at[k]]
	for i, c := range changes {
		cmd, err := command(c)
		if err != nil {
			errs[i] = err
			continue
		}
		cmds, at = append(cmds, cmd), append(at, i)
	}
	if len(cmds) == 0 {
		return errs
	}
	// A lost connection is in the results of the commands it left
	// unanswered (runtimeapi.ErrNotAnswered); err covers any result a
	// Client left out.
	results, err := l.c.Batch(ctx, cmds)
	for k, i := range at {
		switch {
		case k < len(results):
			errs[i] = mapErr(results[k].Err)
		case err != nil:
			errs[i] = err
		default:
			errs[i] = fmt.Errorf("%s: no reply in the batch", changes[i])
		}
	}
	return errs
}

// command is the Runtime API command of a change.
func command(c scaler.Change) (runtimeapi.Command, error) {
	switch c.Op {
	case scaler.ChangeAddr:
		return runtimeapi.SetAddrCommand(c.Backend, c.Server, c.Addr, c.Port), nil
	case scaler.ChangeState:
		var to runtimeapi.AdminState
		switch c.State {
		case scaler.AdminReady:
			to = runtimeapi.AdminReady
		case scaler.AdminDrain:
			to = runtimeapi.AdminDrain
		case scaler.AdminMaint:
			to = runtimeapi.AdminMaint
		default:
			return runtimeapi.Command{}, fmt.Errorf("set state %s/%s: unknown admin state %d", c.Backend, c.Server, c.State)
		}
		return runtimeapi.SetStateCommand(c.Backend, c.Server, to), nil
	case scaler.ChangeWeight:
		return runtimeapi.SetWeightCommand(c.Backend, c.Server, c.Weight), nil
	case scaler.ChangeHealth:
		return runtimeapi.EnableHealthCommand(c.Backend, c.Server), nil
	case scaler.ChangeAdd:
		o := c.Options
		return runtimeapi.AddServerCommand(c.Backend, c.Server, c.Addr, c.Port, runtimeapi.ServerOptions{Check: o.Check, Inter: o.Inter, Rise: o.Rise, Fall: o.Fall, Extra: o.Extra}), nil
	case scaler.ChangeDel:
		return runtimeapi.DelServerCommand(c.Backend, c.Server), nil
	}
	return runtimeapi.Command{}, fmt.Errorf("%s: unknown change %d", c, c.Op)
}

// sentinels pairs runtimeapi's refusals with the loop's.
var sentinels = []struct{ from, to error }{
	{runtimeapi.ErrNoSuchServer, scaler.ErrNoSuchServer},
	{runtimeapi.ErrAlreadyExists, scaler.ErrAlreadyExists},
	{runtimeapi.ErrHasConnections, scaler.ErrHasConnections},
}

// mapErr adds scaler's sentinel to an error that wraps runtimeapi's, and
// keeps the error as it is otherwise (its message and errors.As to
// *runtimeapi.CommandError included).
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s.from) {
			return &refusal{err: err, sentinel: s.to}
		}
	}
	return err
}

// refusal is err, also matching sentinel.
type refusal struct {
	err      error
	sentinel error
}

func (r *refusal) Error() string   { return r.err.Error() }
func (r *refusal) Unwrap() []error { return []error{r.err, r.sentinel} }

func health(h runtimeapi.Health) scaler.Health {
	switch h {
	case runtimeapi.HealthUp:
		return scaler.HealthUp
	case runtimeapi.HealthDown:
		return scaler.HealthDown
	case runtimeapi.HealthNoCheck:
		return scaler.HealthNoCheck
	}
	return scaler.HealthOther
}

func admin(s runtimeapi.AdminState) scaler.AdminState {
	switch s {
	case runtimeapi.AdminDrain:
		return scaler.AdminDrain
	case runtimeapi.AdminMaint:
		return scaler.AdminMaint
	}
	return scaler.AdminReady
}
