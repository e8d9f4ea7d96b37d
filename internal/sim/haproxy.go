package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	haproxylb "github.com/slotscaler/slotscaler/scaler/haproxy"
)

// haproxy is one simulated HAProxy 2.6 instance: slots with admin state,
// weight and address, health checks with rise and fall on the virtual clock
// (a slot leaving maint is "UP 1/2" with check INI and takes traffic before
// any check), restarts that lose every runtime change, and replies that
// come late, cut short at a row boundary, or as junk. Reads go through
// runtimeapi's own parsers, as the real client's do.
type haproxy struct {
	w        *world
	name     string
	pid      int
	start    time.Time
	boots    int  // processes started from haproxy.cfg (a reload keeps the runtime state)
	fresh    bool // restarted, and not yet in step with another instance
	settled  int  // check rounds in step since it restarted
	backends []*backend
	// faults, drawn per reply while faults are on
	cutP, junkP, lostP, slowP, downP float64
}

type backend struct {
	name    string
	dynamic bool
	prefix  string
	slots   int // template: how many "server-template" declares
	servers []*server
	queue   int
}

type server struct {
	name       string
	addr       netip.Addr
	port       int
	admin      runtimeapi.AdminState
	weight     int // percent
	check      bool
	up         bool
	count      int    // rise or fall progress
	status     string // check status: INI, L7OK, L4CON
	lastChange time.Time
	sessions   int
	dynamic    bool
}

var placeholder = netip.MustParseAddr("127.0.0.1")

// boot (re)starts the instance from its haproxy.cfg: template slots
// disabled at the placeholder, no dynamic server.
func (h *haproxy) boot(now time.Time) {
	h.pid++
	h.boots++
	h.start, h.fresh, h.settled = now, h.pid%1000 != 1 && len(h.w.haproxies) > 1, 0
	for _, b := range h.backends {
		b.servers, b.queue = nil, 0
		for i := 1; i <= b.slots; i++ {
			b.servers = append(b.servers, &server{name: fmt.Sprintf("%s%d", b.prefix, i), addr: placeholder, port: 9,
				admin: runtimeapi.AdminMaint, weight: 100, check: true, up: true, status: "INI", lastChange: now})
		}
	}
}

func (h *haproxy) backend(name string) *backend {
	for _, b := range h.backends {
		if b.name == name {
			return b
		}
	}
	return nil
}

func (b *backend) server(name string) *server {
	for _, s := range b.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// takesTraffic: HAProxy sends new requests to it.
func (s *server) takesTraffic() bool {
	return s.admin == runtimeapi.AdminReady && s.weight > 0 && s.up
}

// runChecks runs one health check of every checked server not in maint.
func (h *haproxy) runChecks(now time.Time, rise, fall int) {
	for _, b := range h.backends {
		for _, s := range b.servers {
			if !s.check || s.admin == runtimeapi.AdminMaint {
				continue
			}
			pass := h.w.healthyAt(s.addr, s.port)
			switch {
			case pass && s.up:
				s.count, s.status = 0, "L7OK"
			case pass:
				s.count++
				s.status = "L7OK"
				if s.count >= rise {
					s.up, s.count, s.lastChange = true, 0, now
				}
			case s.up:
				s.count++
				s.status = "L4CON"
				if s.count >= fall {
					s.up, s.count, s.lastChange = false, 0, now
				}
			default:
				s.count, s.status = 0, "L4CON"
			}
		}
	}
}

// statusText is the stats "status" column.
func (s *server) statusText(rise, fall int) string {
	switch {
	case s.admin == runtimeapi.AdminMaint:
		return "MAINT"
	case s.admin == runtimeapi.AdminDrain && s.up:
		return "DRAIN"
	case s.up && s.status == "INI":
		return fmt.Sprintf("UP %d/%d", fall-1, fall)
	case s.up && s.count > 0:
		return fmt.Sprintf("UP %d/%d", fall-s.count, fall)
	case s.up:
		return "UP"
	case s.count > 0:
		return fmt.Sprintf("DOWN %d/%d", s.count, rise)
	}
	return "DOWN"
}

func adminBits(s *server) int {
	switch s.admin {
	case runtimeapi.AdminMaint:
		return 0x01
	case runtimeapi.AdminDrain:
		return 0x08
	}
	return 0
}

// replies renders "show stat" and "show servers state" of backend as
// HAProxy does, each closed by its empty line.
func (h *haproxy) replies(b *backend, now time.Time, rise, fall int) (stats, state string) {
	var st, ss strings.Builder
	st.WriteString("# pxname,svname,qcur,scur,status,weight,lastchg,check_status,addr,algo,\n")
	ss.WriteString("1\n# be_name srv_name srv_addr srv_admin_state srv_uweight srv_port\n")
	for _, s := range b.servers {
		fmt.Fprintf(&st, "%s,%s,0,%d,%s,%d,%d,%s,%s,,\n", b.name, s.name, s.sessions, s.statusText(rise, fall), s.weight,
			int(now.Sub(s.lastChange)/time.Second), s.status, netip.AddrPortFrom(s.addr, uint16(s.port)))
		fmt.Fprintf(&ss, "%s %s %s %d %d %d\n", b.name, s.name, s.addr, adminBits(s), s.weight, s.port)
	}
	l := b.load()
	fmt.Fprintf(&st, "%s,BACKEND,%d,%d,UP,1,0,,,roundrobin,\n\n", b.name, l.Queue, l.Sessions)
	ss.WriteString("\n")
	return st.String(), ss.String()
}

// lb is one slotscaler process's view of an instance: a Runtime API
// client, which the loop reaches through scaler/haproxy as the real one.
type lb struct {
	h    *haproxy
	proc int
}

var _ haproxylb.Client = lb{}

// call parks the caller for a reply's latency; false: killed meanwhile.
func (l lb) call() bool {
	w := l.h.w
	d := w.sched.between(100*time.Microsecond, 3*time.Millisecond)
	if w.faults && w.sched.chance(l.h.slowP) {
		d = w.sched.between(200*time.Millisecond, 3*time.Second)
	}
	return w.sched.park(l.proc, d)
}

func (l lb) refused() error {
	if l.h.w.faults && l.h.w.sched.chance(l.h.downP) {
		return fmt.Errorf("haproxy %s: dial: connection refused (%w)", l.h.name, errConnection)
	}
	return nil
}

func (l lb) Info(context.Context) (runtimeapi.Info, error) {
	if !l.call() {
		return runtimeapi.Info{}, errKilled
	}
	if err := l.refused(); err != nil {
		return runtimeapi.Info{}, err
	}
	return runtimeapi.Info{Version: "2.6.12-sim", PID: l.h.pid, StartTime: l.h.start.Unix(), Uptime: int64(l.h.w.sched.Now().Sub(l.h.start) / time.Second)}, nil
}

func (l lb) Backend(_ context.Context, name string) (runtimeapi.Backend, error) {
	if !l.call() {
		return runtimeapi.Backend{}, errKilled
	}
	if err := l.refused(); err != nil {
		return runtimeapi.Backend{}, err
	}
	w := l.h.w
	b := l.h.backend(name)
	if b == nil {
		return runtimeapi.Backend{}, fmt.Errorf("show stat %s: %w", name, runtimeapi.ErrNoSuchBackend)
	}
	observation := w.observing(l.h, name)
	stats, state := l.h.replies(b, w.sched.Now(), w.rise, w.fall)
	if w.faults && w.sched.chance(l.h.cutP) {
		// The connection closed after a complete row.
		cut := &stats
		if w.sched.chance(0.5) {
			cut = &state
		}
		lines := strings.SplitAfter(*cut, "\n")
		*cut = strings.Join(lines[:1+w.sched.intn(len(lines)-2)], "")
		w.note(l.proc, name, "reply cut short", observation)
	}
	if w.faults && w.sched.chance(l.h.junkP) {
		stats = "\x00\x17garbage,,\n" + stats[len(stats)/2:]
		w.note(l.proc, name, "junk reply", observation)
	}
	sb, err := runtimeapi.ParseStats(bufio.NewReader(strings.NewReader(stats)))
	if err != nil {
		return runtimeapi.Backend{}, fmt.Errorf("show stat %s: %w", name, err)
	}
	ss, err := runtimeapi.ParseServersState(strings.NewReader(state))
	if err != nil {
		return runtimeapi.Backend{}, fmt.Errorf("show servers state %s: %w", name, err)
	}
	for _, got := range runtimeapi.JoinState(sb, ss) {
		if got.Name == name {
			w.readAt[l.h.name+"/"+name] = readMark{l.proc, w.sched.Now()}
			return got, nil
		}
	}
	return runtimeapi.Backend{}, fmt.Errorf("show stat %s: backend missing: %w", name, runtimeapi.ErrNoSuchBackend)
}

// Backends reads every backend ("") or one, each as Backend does (the
// simulated instances have one backend, so one read).
func (l lb) Backends(ctx context.Context, name string) ([]runtimeapi.Backend, error) {
	var out []runtimeapi.Backend
	for _, b := range l.h.backends {
		if name != "" && b.name != name {
			continue
		}
		got, err := l.Backend(ctx, b.name)
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// Loads is every backend's BACKEND row, as "show stat -1 2 -1" gives it:
// scur counts the queued requests too. Only Loop.Run's probe reads it, and
// the simulator calls Tick, never Run.
func (l lb) Loads(context.Context) ([]runtimeapi.Load, error) {
	if !l.call() {
		return nil, errKilled
	}
	if err := l.refused(); err != nil {
		return nil, err
	}
	out := make([]runtimeapi.Load, 0, len(l.h.backends))
	for _, b := range l.h.backends {
		out = append(out, b.load())
	}
	return out, nil
}

// load is b's BACKEND row: scur counts every server's sessions (drained
// and maint ones too) and the queued requests, as HAProxy's does.
func (b *backend) load() runtimeapi.Load {
	l := runtimeapi.Load{Backend: b.name, Sessions: b.queue, Queue: b.queue}
	for _, s := range b.servers {
		l.Sessions += s.sessions
	}
	return l
}

// change runs a server command: it applies on the instance (unless
// refused), and its reply may still be lost on the way back.
func (l lb) change(backendName, serverName, what string, apply func(b *backend, s *server) error) error {
	w := l.h.w
	// What slotscaler had read when it sent the command: a read while the
	// command is on its way cannot tell it from a command landing before it.
	sent := w.readAt[l.h.name+"/"+backendName]
	if w.stopBefore != nil && w.sched.label() != "tick" && w.stopBefore(serverName, what) {
		w.stopBefore = nil
		w.trace("scenario: stop while %s of %s is on its way", what, serverName)
		w.after(50*time.Microsecond, func() { w.stop("killed") }) // before the reply's latency ends
	}
	boots := l.h.boots
	if !l.call() {
		return errKilled
	}
	if err := l.refused(); err != nil {
		w.refusedOn(l.proc, l.h, backendName, serverName, what)
		return err
	}
	if l.h.boots != boots {
		// Sent to a process that a restart ended meanwhile: its connection
		// went with it, and the command never reaches the new process. It
		// once did (sim seed 3203: the rest of a bind's batch, its reply
		// slow, landed on the restarted instance, and its state ready put
		// the slot at the placeholder address in the balancing).
		return fmt.Errorf("haproxy %s: %s %s/%s: read: connection reset by peer (%w)", l.h.name, what, backendName, serverName, errConnection)
	}
	b := l.h.backend(backendName)
	if b == nil {
		return fmt.Errorf("%s: %w", what, runtimeapi.ErrNoSuchBackend)
	}
	s := b.server(serverName)
	before := w.servingOn(l.h, b, l.proc)
	var target *container
	if s != nil {
		target, _ = w.containerAt(s.addr, s.port)
	}
	if err := apply(b, s); err != nil {
		return fmt.Errorf("haproxy %s: %s %s/%s: %w", l.h.name, what, backendName, serverName, err)
	}
	w.changed(l.proc, l.h, b, serverName, what, before, target, sent)
	w.appliedOn(l.proc, l.h, backendName, serverName, what)
	if w.faults && w.sched.chance(l.h.lostP) {
		return fmt.Errorf("haproxy %s: %s %s/%s: read: connection reset by peer (%w)", l.h.name, what, backendName, serverName, errConnection)
	}
	return nil
}

// Batch runs the commands one at a time, each with its own simulated time
// and faults, as over HAProxy's connection: once the connection fails
// (refused, reset, slotscaler killed) the rest go unanswered and
// unapplied, as runtimeapi's Batch reports them (ErrNotAnswered).
func (l lb) Batch(ctx context.Context, cmds []runtimeapi.Command) ([]runtimeapi.Result, error) {
	results := make([]runtimeapi.Result, len(cmds))
	for i := range cmds {
		results[i] = runtimeapi.BatchEach(ctx, l, cmds[i:i+1])[0]
		if err := results[i].Err; errors.Is(err, errConnection) || errors.Is(err, errKilled) {
			for j := i + 1; j < len(cmds); j++ {
				results[j] = runtimeapi.Result{Command: cmds[j], Err: fmt.Errorf("%w: %w", runtimeapi.ErrNotAnswered, err)}
				if !errors.Is(err, errKilled) {
					l.h.w.refusedOn(l.proc, l.h, cmds[j].Backend, cmds[j].Server, whatOf(cmds[j]))
				}
			}
			return results, err
		}
	}
	return results, nil
}

// A miss, as slotscaler's Mirror records one: a command of process
// proc's setting a slot's address, state or weight that instance h
// refused while another instance took the same command from it (in one
// Apply, a second at most apart). A sync's command, sent to one instance
// only, or one every instance refused, is none. Not for an operator's
// lbctl command: slotscaler does not make good a miss of those. The miss
// lasts until a command setting that field applies on h, or h restarts.

// missWindow bounds how far apart the refusal and the same command taken
// elsewhere count as one Apply.
const missWindow = time.Second

// refusedOn notes that h refused (or never got) a command of proc's.
func (w *world) refusedOn(proc int, h *haproxy, backend, slot, what string) {
	if fieldOfWhat(what) == "" || w.sched.label() == "api" {
		return
	}
	key := backend + "/" + slot + "|" + what
	if a, ok := w.applied[key]; ok && a.proc == proc && a.on != h && w.sched.Now().Sub(a.at) <= missWindow {
		w.missed[missedKey(h, backend, slot, fieldOfWhat(what))] = readMark{proc, w.sched.Now()}
		return
	}
	w.refusals[key] = append(w.refusals[key], sentTo{h, proc, w.sched.Now()})
}

// appliedOn notes that h took a command of proc's: h is in step for its
// field, and the instances that refused the same command lately missed it.
func (w *world) appliedOn(proc int, h *haproxy, backend, slot, what string) {
	field := fieldOfWhat(what)
	if field == "" {
		return
	}
	delete(w.missed, missedKey(h, backend, slot, field))
	if w.sched.label() == "api" {
		return
	}
	key := backend + "/" + slot + "|" + what
	now := w.sched.Now()
	for _, r := range w.refusals[key] {
		if r.proc == proc && r.on != h && now.Sub(r.at) <= missWindow {
			w.missed[missedKey(r.on, backend, slot, field)] = readMark{proc, r.at}
		}
	}
	delete(w.refusals, key)
	w.applied[key] = sentTo{h, proc, now}
}

// sentTo is a command of process proc's on instance on, at a time.
type sentTo struct {
	on   *haproxy
	proc int
	at   time.Time
}

func missedKey(h *haproxy, backend, slot, field string) string {
	return h.name + "|" + backend + "/" + slot + "|" + field
}

// fieldOfWhat is the slot field a command (as changed names it) sets:
// "addr", "state" or "weight"; "" for the others.
func fieldOfWhat(what string) string {
	switch {
	case what == "set addr":
		return "addr"
	case strings.HasPrefix(what, "state "):
		return "state"
	case strings.HasPrefix(what, "weight "):
		return "weight"
	}
	return ""
}

// whatOf names a batched command as changed does.
func whatOf(c runtimeapi.Command) string {
	switch c.Op {
	case runtimeapi.OpSetAddr:
		return "set addr"
	case runtimeapi.OpSetState:
		return "state " + c.State.String()
	case runtimeapi.OpSetWeight:
		return fmt.Sprintf("weight %d%%", c.Weight)
	}
	return ""
}

// errConnection marks a simulated connection failure.
var errConnection = errors.New("connection failed")

func (l lb) SetAddr(_ context.Context, be, sv string, addr netip.Addr, port int) error {
	return l.change(be, sv, "set addr", func(_ *backend, s *server) error {
		if s == nil {
			return runtimeapi.ErrNoSuchServer
		}
		s.addr, s.port = addr, port
		return nil
	})
}

func (l lb) SetState(_ context.Context, be, sv string, state runtimeapi.AdminState) error {
	return l.change(be, sv, "state "+state.String(), func(_ *backend, s *server) error {
		if s == nil {
			return runtimeapi.ErrNoSuchServer
		}
		l.h.setState(s, state, l.h.w.sched.Now())
		return nil
	})
}

func (h *haproxy) setState(s *server, state runtimeapi.AdminState, now time.Time) {
	if s.admin == runtimeapi.AdminMaint && state != runtimeapi.AdminMaint {
		// Out of maint: up at once, check INI, traffic before any check.
		s.up, s.count, s.status, s.lastChange = true, 0, "INI", now
	}
	if state == runtimeapi.AdminMaint {
		s.sessions = 0
	}
	s.admin = state
}

func (l lb) SetWeight(_ context.Context, be, sv string, percent int) error {
	return l.change(be, sv, fmt.Sprintf("weight %d%%", percent), func(_ *backend, s *server) error {
		if s == nil {
			return runtimeapi.ErrNoSuchServer
		}
		s.weight = percent
		return nil
	})
}

func (l lb) EnableHealth(_ context.Context, be, sv string) error {
	return l.change(be, sv, "enable health", func(_ *backend, s *server) error {
		if s == nil {
			return runtimeapi.ErrNoSuchServer
		}
		s.check = true
		return nil
	})
}

func (l lb) AddServer(_ context.Context, be, sv string, addr netip.Addr, port int, _ runtimeapi.ServerOptions) error {
	return l.change(be, sv, "add server", func(b *backend, s *server) error {
		if s != nil {
			return runtimeapi.ErrAlreadyExists
		}
		b.servers = append(b.servers, &server{name: sv, addr: addr, port: port, admin: runtimeapi.AdminMaint, weight: 100, up: true, status: "INI", dynamic: true, lastChange: l.h.w.sched.Now()})
		return nil
	})
}

func (l lb) DelServer(_ context.Context, be, sv string) error {
	return l.change(be, sv, "del server", func(b *backend, s *server) error {
		switch {
		case s == nil:
			return runtimeapi.ErrNoSuchServer
		case s.admin != runtimeapi.AdminMaint:
			return runtimeapi.ErrNotInMaint
		case s.sessions > 0:
			return runtimeapi.ErrHasConnections
		}
		b.servers = slicesDelete(b.servers, s)
		return nil
	})
}

func slicesDelete(servers []*server, s *server) []*server {
	out := servers[:0]
	for _, x := range servers {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
