package runtimeapi

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Fake is an in-memory HAProxy for unit tests. It keeps HAProxy's admin
// state bits, refuses what HAProxy refuses with HAProxy's own replies, loses
// dynamic servers and runtime changes on Restart, and decides health with
// Checker (a real TCP dial in the contract test, a map in unit tests).
type Fake struct {
	mu       sync.Mutex
	pid      int
	start    time.Time
	now      func() time.Time
	backends []*fakeBackend
	checker  func(addr netip.Addr, port int) bool
}

type fakeBackend struct {
	name    string
	algo    string
	queue   int
	servers []*fakeServer
}

type fakeServer struct {
	name          string
	addr          netip.Addr
	port          int
	bits          int
	check         bool
	healthEnabled bool
	weight        int // percent of the configured weight 1
	sessions      int
	queue         int
	changed       time.Time
	config        *fakeServer // what haproxy.cfg says, restored on Restart; nil for dynamic
}

// NewFake returns an empty fake HAProxy whose servers are all healthy.
func NewFake() *Fake {
	return &Fake{pid: 1000, start: time.Unix(1_700_000_000, 0), now: time.Now, checker: func(netip.Addr, int) bool { return true }}
}

// SetChecker sets how the fake decides whether a checked server is up.
func (f *Fake) SetChecker(check func(addr netip.Addr, port int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checker = check
}

// SetClock sets the fake's clock (for lastchg and Info).
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// DeclareBackend adds a backend as haproxy.cfg would.
func (f *Fake) DeclareBackend(name, algo string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backends = append(f.backends, &fakeBackend{name: name, algo: algo})
}

// DeclareTemplate adds "server-template prefix 1-n placeholder check disabled".
func (f *Fake) DeclareTemplate(backend, prefix string, n int, placeholder netip.AddrPort) {
	for i := 1; i <= n; i++ {
		f.DeclareServer(backend, fmt.Sprintf("%s%d", prefix, i), placeholder, true, true)
	}
}

// DeclareServer adds a static server line to a declared backend.
func (f *Fake) DeclareServer(backend, name string, addr netip.AddrPort, check, disabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.backend(backend)
	if b == nil {
		panic("fake: DeclareServer on undeclared backend " + backend)
	}
	s := &fakeServer{name: name, addr: addr.Addr(), port: int(addr.Port()), check: check, healthEnabled: check, weight: 100, changed: f.now()}
	if disabled {
		s.bits = admFMaint | admCMaint
	}
	cfg := *s
	s.config = &cfg
	b.servers = append(b.servers, s)
}

// SetLoad sets a server's current sessions and queue.
func (f *Fake) SetLoad(backend, server string, sessions, queue int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.server("set load", backend, server)
	if err != nil {
		return err
	}
	s.sessions, s.queue = sessions, queue
	return nil
}

// SetBackendQueue sets the backend-level queue (requests waiting for any server).
func (f *Fake) SetBackendQueue(backend string, queue int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.backend(backend)
	if b == nil {
		return refuse("set backend queue", "No such backend.")
	}
	b.queue = queue
	return nil
}

// Restart simulates an HAProxy restart: a new PID and start time, dynamic
// servers gone, template and static servers back to their configuration.
func (f *Fake) Restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pid++
	f.start = f.now()
	for _, b := range f.backends {
		b.queue = 0
		kept := b.servers[:0]
		for _, s := range b.servers {
			if s.config == nil {
				continue
			}
			cfg := *s.config
			cfg.config = s.config
			cfg.changed = f.start
			kept = append(kept, &cfg)
		}
		b.servers = kept
	}
}

func refuse(cmd, reply string) error {
	return classify(cmd, "[3]: "+reply)
}

func (f *Fake) backend(name string) *fakeBackend {
	for _, b := range f.backends {
		if b.name == name {
			return b
		}
	}
	return nil
}

func (f *Fake) server(cmd, backend, server string) (*fakeServer, error) {
	b := f.backend(backend)
	if b == nil {
		return nil, refuse(cmd, "No such backend.")
	}
	for _, s := range b.servers {
		if s.name == server {
			return s, nil
		}
	}
	return nil, refuse(cmd, "No such server.")
}

// Info returns the fake process's identity.
func (f *Fake) Info(context.Context) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Info{Version: "2.6-fake", PID: f.pid, StartTime: f.start.Unix(), Uptime: int64(f.now().Sub(f.start).Seconds())}, nil
}

// Backends returns the backends (all when name is "") with admin states.
func (f *Fake) Backends(_ context.Context, name string) ([]Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != "" && f.backend(name) == nil {
		return nil, refuse("show stat "+name, "No such proxy.")
	}
	var out []Backend
	for _, b := range f.backends {
		if name != "" && b.name != name {
			continue
		}
		ob := Backend{Name: b.name, Algo: b.algo, Queue: b.queue}
		for _, s := range b.servers {
			srv := f.observe(s)
			ob.Sessions += srv.Sessions
			ob.Servers = append(ob.Servers, srv)
		}
		out = append(out, ob)
	}
	return out, nil
}

// Loads returns every backend's own counters from the fake's state, as
// HAProxy's BACKEND row counts them: sessions are every server's sessions
// (drained and maint ones included) and queued requests, the server
// queues' and the backend's own.
func (f *Fake) Loads(context.Context) ([]Load, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Load, 0, len(f.backends))
	for _, b := range f.backends {
		l := Load{Backend: b.name, Queue: b.queue}
		for _, s := range b.servers {
			l.Sessions += s.sessions + s.queue
		}
		l.Sessions += b.queue
		out = append(out, l)
	}
	return out, nil
}

// Backend returns one backend with admin states.
func (f *Fake) Backend(ctx context.Context, name string) (Backend, error) {
	bs, err := f.Backends(ctx, name)
	if err != nil {
		return Backend{}, err
	}
	return bs[0], nil
}

func (f *Fake) observe(s *fakeServer) Server {
	srv := Server{
		Name: s.name, Weight: s.weight / 100, Addr: s.addr, Port: s.port,
		Sessions: s.sessions, Queue: s.queue, AdminBits: s.bits, Admin: adminFromBits(s.bits),
		LastChange: int(f.now().Sub(s.changed).Seconds()),
	}
	checked := s.check && s.healthEnabled
	up := !checked || f.checker(s.addr, s.port)
	switch {
	case srv.Admin == AdminMaint:
		srv.Status = "MAINT"
	case srv.Admin == AdminDrain && up:
		srv.Status = "DRAIN"
	case !checked:
		srv.Status = "no check"
	case up:
		srv.Status, srv.CheckStatus = "UP", "L4OK"
	default:
		srv.Status, srv.CheckStatus = "DOWN", "L4CON"
	}
	srv.Health = parseStatus(srv.Status)
	return srv
}

// SetAddr points a server at addr:port.
func (f *Fake) SetAddr(_ context.Context, backend, server string, addr netip.Addr, port int) error {
	if err := checkTarget(addr, port); err != nil {
		return fmt.Errorf("set addr %s/%s: %w", backend, server, err)
	}
	return f.withServer("set server addr", backend, server, func(s *fakeServer) error {
		s.addr, s.port, s.changed = addr.Unmap(), port, f.now()
		return nil
	})
}

// SetState sets a server's admin state with HAProxy's flag semantics.
func (f *Fake) SetState(_ context.Context, backend, server string, state AdminState) error {
	return f.withServer("set server state", backend, server, func(s *fakeServer) error {
		switch state {
		case AdminReady:
			s.bits &^= admFMaint | admFDrain
		case AdminDrain:
			s.bits = s.bits&^admFMaint | admFDrain
		case AdminMaint:
			s.bits |= admFMaint
		default:
			return fmt.Errorf("set state %s/%s: invalid state %d", backend, server, state)
		}
		s.changed = f.now()
		return nil
	})
}

// SetWeight sets a server's weight as a percentage of its configured weight (1).
func (f *Fake) SetWeight(_ context.Context, backend, server string, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("set weight %s/%s: %d%% out of range 0-100", backend, server, percent)
	}
	return f.withServer("set weight", backend, server, func(s *fakeServer) error {
		s.weight = percent
		return nil
	})
}

// EnableHealth enables checks on a server configured with "check".
func (f *Fake) EnableHealth(_ context.Context, backend, server string) error {
	return f.withServer("enable health", backend, server, func(s *fakeServer) error {
		if !s.check {
			return refuse("enable health", "Health check was not configured on this server, cannot enable.")
		}
		s.healthEnabled = true
		return nil
	})
}

// AddServer adds a dynamic server in maint, as HAProxy does.
func (f *Fake) AddServer(_ context.Context, backend, server string, addr netip.Addr, port int, opts ServerOptions) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	if err := checkTarget(addr, port); err != nil {
		return fmt.Errorf("add server %s/%s: %w", backend, server, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	const cmd = "add server"
	b := f.backend(backend)
	switch {
	case b == nil:
		return refuse(cmd, "No such backend.")
	case b.algo == "source" || b.algo == "static-rr":
		return refuse(cmd, "Backend must use a dynamic load balancing to support dynamic servers.")
	case slices.ContainsFunc(b.servers, func(s *fakeServer) bool { return s.name == server }):
		return refuse(cmd, "Already exists a server with the same name in backend.")
	}
	b.servers = append(b.servers, &fakeServer{name: server, addr: addr.Unmap(), port: port, bits: admFMaint, check: opts.Check, weight: 100, changed: f.now()})
	return nil
}

// DelServer deletes a server in maint without sessions.
func (f *Fake) DelServer(_ context.Context, backend, server string) error {
	const cmd = "del server"
	return f.withServer(cmd, backend, server, func(s *fakeServer) error {
		if adminFromBits(s.bits) != AdminMaint {
			return refuse(cmd, "Only servers in maintenance mode can be deleted.")
		}
		if s.sessions > 0 {
			return refuse(cmd, "Server still has connections attached to it, cannot remove it.")
		}
		b := f.backend(backend)
		b.servers = slices.DeleteFunc(b.servers, func(x *fakeServer) bool { return x == s })
		return nil
	})
}

// withServer runs fn on a server under the lock, after the same name
// checks the real client makes.
func (f *Fake) withServer(cmd, backend, server string, fn func(*fakeServer) error) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.server(cmd, backend, server)
	if err != nil {
		return err
	}
	return fn(s)
}

// Batch applies cmds in order, each as its own method would (BatchEach);
// the fake has no connection to lose, and its Results carry no Reply text.
func (f *Fake) Batch(ctx context.Context, cmds []Command) ([]Result, error) {
	return BatchEach(ctx, f, cmds), nil
}
