package runtimeapi

import (
	"net/netip"
	"strings"
)

// AdminState is what an operator (or slotscaler) asked of a server:
// "set server B/S state ready|drain|maint".
type AdminState int

// Admin states, from least to most restrictive.
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

// HAProxy's srv_admin_state bits (src/server.h).
const (
	admFMaint = 0x01
	admIMaint = 0x02
	admCMaint = 0x04 // "disabled" in the configuration; sticky marker
	admFDrain = 0x08
	admIDrain = 0x10
	admRMaint = 0x20
	admMaint  = admFMaint | admIMaint | admRMaint
	admDrain  = admFDrain | admIDrain
)

func adminFromBits(bits int) AdminState {
	switch {
	case bits&admMaint != 0:
		return AdminMaint
	case bits&admDrain != 0:
		return AdminDrain
	}
	return AdminReady
}

// Health is the operational status HAProxy reports in the stats "status"
// column, reduced to what a control loop needs.
type Health int

// Health values. HealthUp includes "UP 1/3"-style transitions that still
// take traffic; HealthDown includes "DOWN 1/2".
const (
	HealthUnknown Health = iota
	HealthUp
	HealthDown
	HealthNoCheck
	HealthDrain
	HealthMaint
)

func (h Health) String() string {
	return [...]string{"unknown", "up", "down", "no check", "drain", "maint"}[h]
}

// parseStatus maps HAProxy's status strings ("UP", "UP 1/3", "DOWN 1/2",
// "DRAIN", "MAINT (resolution)", "no check") by prefix, as they vary.
func parseStatus(s string) Health {
	switch {
	case strings.HasPrefix(s, "UP"):
		return HealthUp
	case strings.HasPrefix(s, "DOWN"):
		return HealthDown
	case strings.HasPrefix(s, "DRAIN"):
		return HealthDrain
	case strings.HasPrefix(s, "MAINT"):
		return HealthMaint
	case s == "no check":
		return HealthNoCheck
	}
	return HealthUnknown
}

// Server is one server (slot) of a backend as HAProxy sees it.
type Server struct {
	Name        string
	Status      string // raw stats status, e.g. "UP 1/3"
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
	AdminBits   int // raw srv_admin_state, -1 when not read
}

// Serving reports whether HAProxy sends new requests to the server: ready
// and up (or not checked).
func (s Server) Serving() bool {
	return s.Admin == AdminReady && (s.Health == HealthUp || s.Health == HealthNoCheck)
}

// Backend is a backend's own counters and its servers, in HAProxy's order.
type Backend struct {
	Name     string
	Algo     string // balance algorithm, e.g. "roundrobin"
	Sessions int    // scur of the BACKEND row
	Queue    int    // qcur of the BACKEND row (requests waiting for any server)
	Servers  []Server
}

// Server returns the named server.
func (b Backend) Server(name string) (Server, bool) {
	for _, s := range b.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// Info is what "show info" says about the process; a change of PID or
// start time means HAProxy restarted or reloaded and lost runtime changes.
type Info struct {
	Version   string
	PID       int
	StartTime int64 // Start_time_sec, unix seconds
	Uptime    int64 // Uptime_sec
}
