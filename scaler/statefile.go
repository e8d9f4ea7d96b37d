package scaler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ServerStateFile is an LB that keeps HAProxy's server state file current
// with what dump returns ("show servers state"), written atomically.
// HAProxy never writes that file itself; kept current, it lets an
// operator's reload restore every slot bound and serving before slotscaler
// re-applies anything.
//
// A change a reload must not undo is written before the call returns:
// every admin state change, and a weight raised above 0. The loop reads
// what HAProxy restored from the file as deliberate: a maint at the
// address a slot is bound to, or a weight 0 on a ready slot without a
// start in flight, as an operator's, kept until they undo it; an operator's
// drain would be lost; and a container is removed right after its slot's
// maint, so a file still saying ready there would send requests to a
// container that is gone.
//
// The other changes only mark the file out of date: an address and a
// weight 0 (a bind's first steps, on a slot still in maint: restored, it
// stays in maint and serves nothing; its state change writes them), and
// adding or deleting a dynamic server (HAProxy ignores those in the file).
// They are written with the next change that is written at once, or at the
// end of the tick (AtTickEnd), or when the loop stops (Flush). A bind
// costs two writes (ready, then the weight once its check passed), not
// four.
type ServerStateFile struct {
	LB
	dump  func(context.Context) ([]byte, error)
	path  string
	log   *slog.Logger
	dirty atomic.Bool // a change was made since the last write began
	mu    sync.Mutex  // one dump and write at a time, in order
}

// WithServerStateFile returns lb keeping the server state file at path.
func WithServerStateFile(lb LB, dump func(context.Context) ([]byte, error), path string, log *slog.Logger) *ServerStateFile {
	return &ServerStateFile{LB: lb, dump: dump, path: path, log: log}
}

// flushTimeout bounds a write at a tick's end.
const flushTimeout = 5 * time.Second

// Flush writes the file if a change was made since it was last written.
// A failure is logged and leaves the file out of date: the next Flush
// tries again.
func (s *ServerStateFile) Flush(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Cleared before the dump: a change made while it runs marks the file
	// again, and the next Flush writes it.
	if !s.dirty.Swap(false) {
		return
	}
	data, err := s.dump(ctx)
	if err == nil {
		err = writeAtomic(s.path, data, ServerStateFileMode)
	}
	if err != nil {
		s.dirty.Store(true)
		s.log.Error("server state file not updated; an operator's reload now would lose recent slot changes", "path", s.path, "err", err)
	}
}

// AtTickEnd returns o (none when nil) that also writes the file at the end
// of every tick.
func (s *ServerStateFile) AtTickEnd(o Observer) Observer {
	if o == nil {
		o = nopObserver{}
	}
	return tickEnd{Observer: o, file: s}
}

type tickEnd struct {
	Observer
	file *ServerStateFile
}

func (t tickEnd) Tick(took time.Duration, services []ServiceStatus, hosts []HostStatus) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	t.file.Flush(ctx)
	cancel()
	t.Observer.Tick(took, services, hosts)
}

// Apply makes the changes; one that took marks the file out of date, and
// the file is written at once when one that took is written at once (see
// ServerStateFile): one write per batch.
func (s *ServerStateFile) Apply(ctx context.Context, changes []Change) []error {
	errs := s.LB.Apply(ctx, changes)
	now := false
	for i, c := range changes {
		if errs[i] == nil {
			s.dirty.Store(true)
			now = now || c.Op == ChangeState || c.Op == ChangeWeight && c.Weight > 0
		}
	}
	if now {
		s.Flush(context.WithoutCancel(ctx))
	}
	return errs
}
