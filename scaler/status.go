package scaler

import (
	"slices"
	"time"
)

// ServiceStatus is what the loop last saw and decided for a service; the
// API serves it and the metrics read it.
type ServiceStatus struct {
	Name       string       `json:"name"`
	Backend    string       `json:"backend"`
	Mode       string       `json:"mode"`
	Image      string       `json:"image"`
	Generation string       `json:"generation"`
	Replicas   Replicas     `json:"replicas"`
	Desired    int          `json:"desired"`
	Reason     Reason       `json:"reason"`
	LimitedBy  Reason       `json:"limited_by,omitempty"`
	Min        int          `json:"min"`
	Max        int          `json:"max"`
	Window     int          `json:"schedule_window"` // active schedule window, -1 outside or without schedule
	Sessions   float64      `json:"sessions"`
	Queue      float64      `json:"queue"`
	CPU        float64      `json:"cpu_percent"` // -1 when not measured
	Control    ControlMode  `json:"control"`
	Pinned     int          `json:"pinned,omitempty"` // the count a pin or pause holds
	Slots      []SlotStatus `json:"slots"`            // read only: shared by the copies of one tick's status
	Rollout    *Rollout     `json:"rollout,omitempty"`
	Error      string       `json:"error,omitempty"` // why the last tick was skipped
	Updated    time.Time    `json:"updated"`
}

// SlotState is what a tick concluded about one slot. Its value is the one
// name the API (slots[].state, replicas), the metrics
// (service_replicas{state}) and lbctl show.
type SlotState string

// Slot states.
const (
	SlotServing  SlotState = "serving"  // ready, UP, weighted
	SlotStarting SlotState = "starting" // bound or a start under way, not yet taking traffic, or briefly DOWN
	SlotDraining SlotState = "draining" // drained by slotscaler, on the way out
	SlotOperator SlotState = "operator" // drained, weighted out or held in maint by someone else: neither touched nor counted as capacity
	SlotBusy     SlotState = "busy"     // a removal owns it, or its container may be on a host that did not answer
	SlotFree     SlotState = "free"     // maint (or absent), no container: may be filled
)

// SlotStates lists every slot state, in the order status shows them.
var SlotStates = []SlotState{SlotServing, SlotStarting, SlotDraining, SlotOperator, SlotBusy, SlotFree}

// Replicas counts a service's slots by state.
type Replicas struct {
	Serving  int `json:"serving"`
	Starting int `json:"starting"`
	Draining int `json:"draining"`
	Operator int `json:"operator"`
	Busy     int `json:"busy"`
	Free     int `json:"free"`
}

// count points at the counter of state.
func (r *Replicas) count(state SlotState) *int {
	switch state {
	case SlotServing:
		return &r.Serving
	case SlotStarting:
		return &r.Starting
	case SlotDraining:
		return &r.Draining
	case SlotOperator:
		return &r.Operator
	case SlotBusy:
		return &r.Busy
	case SlotFree:
		return &r.Free
	}
	panic("scaler: unknown slot state " + string(state))
}

// Of is the number of slots in state.
func (r Replicas) Of(state SlotState) int { return *r.count(state) }

// ControlMode says who sets a service's replica count.
type ControlMode string

// Control modes.
const (
	ControlAuto    ControlMode = "auto"    // the decision rules
	ControlPaused  ControlMode = "paused"  // frozen at the count it had when paused
	ControlPinned  ControlMode = "pinned"  // held at the count an operator asked for
	ControlRollout ControlMode = "rollout" // held at its count while a rollout runs
)

// SlotStatus is one slot with its container.
type SlotStatus struct {
	Name       string    `json:"name"`
	State      SlotState `json:"state"`
	Admin      string    `json:"admin"`
	Status     string    `json:"status"` // HAProxy's, e.g. "UP", "DOWN 1/2", "MAINT"
	Check      string    `json:"check,omitempty"`
	Addr       string    `json:"addr,omitempty"`
	Weight     int       `json:"weight"`
	Sessions   int       `json:"sessions"`
	Queue      int       `json:"queue"`
	Container  string    `json:"container,omitempty"`
	Host       string    `json:"host,omitempty"`
	Image      string    `json:"image,omitempty"`
	Generation string    `json:"generation,omitempty"`
}

// HostStatus is a Docker host's load.
type HostStatus struct {
	Name       string `json:"name"`
	Containers int    `json:"containers"`
	Capacity   int    `json:"capacity"`
	Up         bool   `json:"up"`
}

// Event is something the loop did or saw, kept for "lbctl events".
type Event struct {
	Time    time.Time `json:"time"`
	Service string    `json:"service,omitempty"`
	Slot    string    `json:"slot,omitempty"`
	Kind    EventKind `json:"kind"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message"`
}

// EventKind says what an event is about.
type EventKind string

// Event kinds.
const (
	EventScaleUp        EventKind = "scale_up"
	EventScaleDown      EventKind = "scale_down"
	EventServing        EventKind = "serving"
	EventStartFailed    EventKind = "start_failed"
	EventDrain          EventKind = "drain"
	EventUndrain        EventKind = "undrain"
	EventRetire         EventKind = "retire"
	EventRemoved        EventKind = "container_removed"
	EventRebind         EventKind = "rebind"
	EventNoCapacity     EventKind = "no_capacity"
	EventHAProxyRestart EventKind = "haproxy_restart"
	EventControl        EventKind = "control"
	EventRollout        EventKind = "rollout"
)

// Reasons of EventRetire: a container that is replaced, or a drain done.
const (
	RetireUnhealthy = "unhealthy"         // DOWN for unhealthy_after
	RetireMissing   = "container_missing" // removed or exited behind slotscaler's back
	RetireDrained   = "drained"           // slotscaler's drain ended: no session and no queue, or drain_timeout
)

// Observer receives what the loop does; the metrics implement it.
type Observer interface {
	Event(Event)
	Tick(took time.Duration, services []ServiceStatus, hosts []HostStatus)
}

type nopObserver struct{}

func (nopObserver) Event(Event)                                       {}
func (nopObserver) Tick(time.Duration, []ServiceStatus, []HostStatus) {}

// maxEvents is how many events the loop keeps.
const maxEvents = 1000

// event logs e, keeps it and tells the observer.
func (l *Loop) event(e Event, attrs ...any) {
	if e.Time.IsZero() {
		e.Time = l.clock.Now()
	}
	args := append([]any{"event", e.Kind}, attrs...)
	if e.Service != "" {
		args = append(args, "service", e.Service)
	}
	if e.Slot != "" {
		args = append(args, "slot", e.Slot)
	}
	if e.Reason != "" {
		args = append(args, "reason", e.Reason)
	}
	switch e.Kind {
	case EventStartFailed, EventNoCapacity, EventHAProxyRestart:
		l.log.Warn(e.Message, args...)
	default:
		l.log.Info(e.Message, args...)
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	if len(l.events) > maxEvents {
		l.events = slices.Delete(l.events, 0, len(l.events)-maxEvents)
	}
	l.mu.Unlock()
	l.observer.Event(e)
}

// Events returns the kept events, oldest first, of one service or all ("").
func (l *Loop) Events(service string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Event{}
	for _, e := range l.events {
		if service == "" || e.Service == service {
			out = append(out, e)
		}
	}
	return out
}

// Services returns every service's status as last published, in config
// order.
func (l *Loop) Services() []ServiceStatus {
	return slices.Clone(*l.snapshot())
}

// Service returns one service's status as last published.
func (l *Loop) Service(name string) (ServiceStatus, error) {
	for _, st := range *l.snapshot() {
		if st.Name == name {
			return st, nil
		}
	}
	return ServiceStatus{}, unknownService(name)
}

// snapshot is the status last published: an immutable value, replaced
// whole and never changed in place, so that readers (the API, lbctl's
// --wait polls) need no lock and never see a tick half done.
func (l *Loop) snapshot() *[]ServiceStatus {
	if p := l.published.Load(); p != nil {
		return p
	}
	return l.publish()
}

// publish makes the services' status as it is now the one Services and
// Service return. The tick publishes at its end, each operator's command
// once it is done.
func (l *Loop) publish() *[]ServiceStatus {
	l.mu.Lock()
	defer l.mu.Unlock() // stored under the lock too: a status built earlier is never stored over a later one
	out := make([]ServiceStatus, 0, len(l.services))
	for _, s := range l.services {
		out = append(out, s.statusLocked())
	}
	l.published.Store(&out)
	return &out
}

// controlLocked says who sets the service's replica count, and the count
// held unless the rules set it.
func (s *service) controlLocked() (ControlMode, int) {
	switch {
	case s.rollout != nil && s.rollout.active():
		return ControlRollout, s.rollout.Replicas
	case s.hold != nil && s.hold.paused:
		return ControlPaused, s.hold.replicas
	case s.hold != nil:
		return ControlPinned, s.hold.replicas
	}
	return ControlAuto, 0
}

func (s *service) statusLocked() ServiceStatus {
	st := s.status // its Slots are shared, not copied: a tick makes new ones
	st.Image, st.Generation = s.image, s.generation()
	st.Control, st.Pinned = s.controlLocked()
	if st.Control == ControlRollout {
		st.Pinned = 0 // the count a pin or pause holds
	}
	if s.rollout != nil {
		r := *s.rollout
		st.Rollout = &r
	}
	return st
}

// Ready reports whether the last tick read HAProxy and every Docker host;
// the reasons say what failed.
func (l *Loop) Ready() (bool, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var why []string
	switch {
	case l.lastTick.IsZero():
		why = append(why, "no tick has completed yet")
	case l.clock.Now().Sub(l.lastTick) > 3*l.interval+5*time.Second:
		why = append(why, "last tick was at "+l.lastTick.Format(time.RFC3339))
	}
	why = append(why, l.faults...)
	if l.saveErr != nil {
		why = append(why, "state not saved: "+l.saveErr.Error())
	}
	return len(why) == 0, why
}
