package scaler

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// LB is HAProxy's Runtime API as the loop uses it. The loop declares it
// with its own types so that it depends on no client: scaler/haproxy
// adapts runtimeapi's client (and its fake) to it.
type LB interface {
	Info(ctx context.Context) (ProcessInfo, error)
	Backend(ctx context.Context, name string) (Backend, error)
	// Backends reads the named backends in one pass (one show stat and
	// one show servers state: a tick over many services then costs about
	// one bare read); a backend the reply lacks is left out. A
	// BackendErrors error fails only the backends it names; the others
	// returned are good.
	Backends(ctx context.Context, names []string) (map[string]Backend, error)
	// Loads reads the named backends' own counters only (one "show stat"
	// of BACKEND rows, no server row): the cheap probe Run makes between
	// ticks. A backend the reply lacks is left out.
	Loads(ctx context.Context, names []string) (map[string]BackendLoad, error)
	// Apply makes changes, in order, one error per change (nil: applied);
	// a change refused does not stop the next. On one HAProxy instance
	// they go over its connection as one batch, no other command of
	// slotscaler's in between (as HAProxy's own ingress controller sends
	// its "set server" commands); a lost connection fails the changes it
	// left unanswered. Build them with SetAddr, SetState and the others.
	Apply(ctx context.Context, changes []Change) []error
}

// ChangeOp is what a Change does to a server.
type ChangeOp int

// Changes, each one Runtime API command.
const (
	ChangeAddr   ChangeOp = iota + 1 // set server B/S addr A port P
	ChangeState                      // set server B/S state ready|drain|maint
	ChangeWeight                     // set weight B/S P%
	ChangeHealth                     // enable health B/S
	ChangeAdd                        // add server B/S A:P [options] (it starts in maint)
	ChangeDel                        // del server B/S (in maint, without connections)
)

// Change is one change of a server, for LB.Apply.
type Change struct {
	Op      ChangeOp
	Backend string
	Server  string
	Addr    netip.Addr    // ChangeAddr, ChangeAdd
	Port    int           // ChangeAddr, ChangeAdd
	State   AdminState    // ChangeState
	Weight  int           // ChangeWeight: percent of the configured weight
	Options ServerOptions // ChangeAdd
	// ByOperator marks an operator's command through the API (lbctl
	// drain, enable): one that some instances refused is not made good on
	// them, as slotscaler's own changes are (see Mirror). The operator got
	// an error; the merge treats what did take as it treats a command on
	// a socket (sim seed 1736: an enable that failed, completed anyway,
	// put the slot back in slotscaler's hands while the operator was told
	// it was still theirs).
	ByOperator bool
}

// SetAddr points a server at addr:port.
func SetAddr(backend, server string, addr netip.Addr, port int) Change {
	return Change{Op: ChangeAddr, Backend: backend, Server: server, Addr: addr, Port: port}
}

// SetState sets a server's admin state.
func SetState(backend, server string, state AdminState) Change {
	return Change{Op: ChangeState, Backend: backend, Server: server, State: state}
}

// SetWeight sets a server's weight in percent of its configured one.
func SetWeight(backend, server string, percent int) Change {
	return Change{Op: ChangeWeight, Backend: backend, Server: server, Weight: percent}
}

// EnableHealth turns a server's health checks on.
func EnableHealth(backend, server string) Change {
	return Change{Op: ChangeHealth, Backend: backend, Server: server}
}

// AddServer adds a dynamic server at addr:port; it starts in maint.
func AddServer(backend, server string, addr netip.Addr, port int, opts ServerOptions) Change {
	return Change{Op: ChangeAdd, Backend: backend, Server: server, Addr: addr, Port: port, Options: opts}
}

// DelServer deletes a server.
func DelServer(backend, server string) Change {
	return Change{Op: ChangeDel, Backend: backend, Server: server}
}

// FromOperator is c as an operator's command (see ByOperator).
func (c Change) FromOperator() Change {
	c.ByOperator = true
	return c
}

// String is the change as the logs name it ("state web/slot1 drain").
func (c Change) String() string {
	bs := c.Backend + "/" + c.Server
	switch c.Op {
	case ChangeAddr:
		return "addr " + bs + " " + netip.AddrPortFrom(c.Addr, uint16(c.Port)).String()
	case ChangeState:
		return "state " + bs + " " + c.State.String()
	case ChangeWeight:
		return "weight " + bs + " " + strconv.Itoa(c.Weight) + "%"
	case ChangeHealth:
		return "enable health " + bs
	case ChangeAdd:
		return "add server " + bs
	case ChangeDel:
		return "del server " + bs
	}
	return "unknown change of " + bs
}

// BackendErrors are the backends of a Backends pass that could not be read
// or, over several HAProxy instances, brought in step; the pass's other
// backends are good.
type BackendErrors map[string]error

func (e BackendErrors) Error() string {
	names := slices.Sorted(maps.Keys(e))
	msgs := make([]string, len(names))
	for i, name := range names {
		msgs[i] = e[name].Error()
	}
	return strings.Join(msgs, "; ")
}

// change makes one change on lb.
func change(ctx context.Context, lb LB, c Change) error {
	return lb.Apply(ctx, []Change{c})[0]
}

// HAProxy's refusals the loop acts on; an LB's errors wrap them
// (errors.Is) when HAProxy gave that reason.
var (
	ErrNoSuchServer   = errors.New("no such server")
	ErrAlreadyExists  = errors.New("server already exists")
	ErrHasConnections = errors.New("server still has connections")
)

// AdminState is what an operator (or slotscaler) asked of a server:
// "set server B/S state ready|drain|maint".
type AdminState int

// Admin states, from least to most restrictive (a Mirror keeps the more
// restrictive of two).
const (
	AdminReady AdminState = iota
	AdminDrain
	AdminMaint
)

func (s AdminState) String() string {
	switch s {
	case AdminReady:
		return "ready"
	case AdminDrain:
		return "drain"
	case AdminMaint:
		return "maint"
	}
	return "unknown"
}

// Health is the operational status HAProxy reports in the stats "status"
// column, as far as the loop tells statuses apart.
type Health int

// Health values. HealthUp includes "UP 1/3"-style transitions that still
// take traffic; HealthDown includes "DOWN 1/2".
const (
	HealthOther   Health = iota // unknown, DRAIN or MAINT: the admin state says more
	HealthUp                    // UP, checked or not yet
	HealthDown                  // DOWN: its check failed
	HealthNoCheck               // "no check": serving, never checked
)

// Server is one server (slot) of a backend as HAProxy sees it.
type Server struct {
	Name        string
	Status      string // raw stats status, e.g. "UP 1/3", shown as it is
	Health      Health
	Transition  bool   // Status carries a rise/fall counter such as "UP 1/3"
	CheckStatus string // e.g. "L4OK", "* L7OK", "INI", "L4CON"
	Weight      int
	Addr        netip.Addr // invalid when HAProxy has no address (FQDN not resolved)
	Port        int
	Sessions    int // scur
	Queue       int // qcur
	LastChange  int // seconds since the last status change (lastchg)
	Admin       AdminState
}

// AddrPort is where the server points.
func (s Server) AddrPort() netip.AddrPort { return netip.AddrPortFrom(s.Addr, uint16(s.Port)) }

// Serving reports whether HAProxy sends new requests to the server: ready
// and up (or not checked).
func (s Server) Serving() bool {
	return s.Admin == AdminReady && (s.Health == HealthUp || s.Health == HealthNoCheck)
}

// Backend is a backend's queue and its servers, in HAProxy's order.
type Backend struct {
	Name    string
	Queue   int // qcur of the BACKEND row (requests waiting for any server)
	Servers []Server
}

// Server returns the named server.
func (b Backend) Server(name string) (Server, bool) {
	for i := range b.Servers { // by index: a Server is too big to copy for a look
		if b.Servers[i].Name == name {
			return b.Servers[i], true
		}
	}
	return Server{}, false
}

// BackendLoad is a backend's own counters, as its BACKEND row of HAProxy's
// stats has them. Sessions counts every stream of the backend: on serving
// slots, on drained and maint ones, and queued. So it is not comparable
// with Observation.Sessions (serving slots only); its changes are.
type BackendLoad struct {
	Sessions int // scur
	Queue    int // qcur: requests waiting in the backend's own queue
}

// ProcessInfo identifies the HAProxy process behind an LB ("show info"):
// another PID or start time means it restarted or reloaded and lost
// runtime changes.
type ProcessInfo struct {
	PID       int
	StartTime int64 // unix seconds
	Uptime    int64 // seconds since it started, by its own clock
}

// ServerOptions are the keywords "add server" gets after the address.
// Dynamic servers do not inherit default-server, so checks and connection
// reuse are spelled out here.
type ServerOptions struct {
	Check      bool
	Inter      string // check interval, e.g. "500ms"
	Rise, Fall int
	Extra      []string // further keywords, passed as they are (validated by HAProxy)
}
