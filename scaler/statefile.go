package scaler

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
)

// WithServerStateFile returns lb that, after every slot change it makes,
// rewrites HAProxy's server state file (atomically) with what dump returns
// ("show servers state"). HAProxy never writes that file itself; kept
// current, it lets an operator's reload restore every slot bound and
// serving before slotscaler re-applies anything.
func WithServerStateFile(lb LB, dump func(context.Context) ([]byte, error), path string, log *slog.Logger) LB {
	return &stateFileLB{LB: lb, dump: dump, path: path, log: log}
}

type stateFileLB struct {
	LB
	dump func(context.Context) ([]byte, error)
	path string
	log  *slog.Logger
	mu   sync.Mutex // one dump and write at a time, in order
}

// changed saves the state after a successful change.
func (s *stateFileLB) changed(ctx context.Context, err error) {
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := s.dump(context.WithoutCancel(ctx))
	if err == nil {
		err = writeAtomic(s.path, data, ServerStateFileMode)
	}
	if err != nil {
		s.log.Error("server state file not updated; an operator's reload now would lose recent slot changes", "path", s.path, "err", err)
	}
}

func (s *stateFileLB) SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error {
	err := s.LB.SetAddr(ctx, backend, server, addr, port)
	s.changed(ctx, err)
	return err
}

func (s *stateFileLB) SetState(ctx context.Context, backend, server string, state AdminState) error {
	err := s.LB.SetState(ctx, backend, server, state)
	s.changed(ctx, err)
	return err
}

func (s *stateFileLB) SetWeight(ctx context.Context, backend, server string, percent int) error {
	err := s.LB.SetWeight(ctx, backend, server, percent)
	s.changed(ctx, err)
	return err
}

func (s *stateFileLB) AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts ServerOptions) error {
	err := s.LB.AddServer(ctx, backend, server, addr, port, opts)
	s.changed(ctx, err)
	return err
}

func (s *stateFileLB) DelServer(ctx context.Context, backend, server string) error {
	err := s.LB.DelServer(ctx, backend, server)
	s.changed(ctx, err)
	return err
}
