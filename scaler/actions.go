package scaler

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Action is one step of a plan, carried out by the executor (apply.go).
// String says it for a person (`slotscaler run --dry-run`); Attrs are its
// fields for a structured log line.
type Action interface {
	Kind() string
	String() string
	Attrs() []any
}

// intentKind names an intent a ClearIntent forgets.
type intentKind string

const (
	intentDraining intentKind = "draining"
	intentBinding  intentKind = "binding"
)

// NoteBound records where a slot points at its container (saved with the
// next state write): a restarted slotscaler still tells an operator's maint
// there from a free slot after the container died.
type NoteBound struct {
	Slot string
	At   netip.AddrPort
}

func (NoteBound) Kind() string { return "note_bound" }
func (a NoteBound) String() string {
	return fmt.Sprintf("note that %s points at its container at %s", a.Slot, a.At)
}
func (a NoteBound) Attrs() []any { return []any{"slot", a.Slot, "addr", a.At.String()} }

// Hold records an operator's maint of a slot: not filled until enabled.
type Hold struct{ Slot string }

func (Hold) Kind() string     { return "hold" }
func (a Hold) String() string { return "keep " + a.Slot + " in the operator's maint until enabled" }
func (a Hold) Attrs() []any   { return []any{"slot", a.Slot} }

// Retired ends a maint of slotscaler's whose containers are gone.
type Retired struct{ Slot string }

func (Retired) Kind() string { return "retired" }
func (a Retired) String() string {
	return "forget slotscaler's maint of " + a.Slot + ": its containers are gone"
}
func (a Retired) Attrs() []any { return []any{"slot", a.Slot} }

// ClearIntent forgets an intent of slotscaler's that is over.
type ClearIntent struct {
	Slot   string
	Intent intentKind
}

func (ClearIntent) Kind() string { return "clear_intent" }
func (a ClearIntent) String() string {
	return fmt.Sprintf("forget the %s intent of %s", a.Intent, a.Slot)
}
func (a ClearIntent) Attrs() []any { return []any{"slot", a.Slot, "intent", string(a.Intent)} }

// Rebind binds a running container its slot no longer points at.
type Rebind struct {
	Slot      string
	Container Container
}

func (Rebind) Kind() string { return "rebind" }
func (a Rebind) String() string {
	return fmt.Sprintf("re-bind %s to its running container %s", a.Slot, a.Container.Name)
}
func (a Rebind) Attrs() []any { return []any{"slot", a.Slot, "container", a.Container.Name} }

// Remove removes a maint slot's containers (and deletes a dynamic slot).
type Remove struct {
	Slot       string
	Containers []Container
	Reason     string
}

func (Remove) Kind() string { return "remove" }
func (a Remove) String() string {
	return fmt.Sprintf("remove the containers of %s [%s] (%s)", a.Slot, names(a.Containers), a.Reason)
}
func (a Remove) Attrs() []any {
	return []any{"slot", a.Slot, "containers", names(a.Containers), "reason", a.Reason}
}

// Discard removes one container no slot uses.
type Discard struct {
	Container Container
	Reason    string
}

func (Discard) Kind() string { return "discard" }
func (a Discard) String() string {
	return fmt.Sprintf("remove stray container %s (%s)", a.Container.Name, a.Reason)
}
func (a Discard) Attrs() []any { return []any{"container", a.Container.Name, "reason", a.Reason} }

// Retire sets a slot to maint at once and removes its containers.
type Retire struct {
	Slot       string
	Containers []Container
	Reason     string
}

func (Retire) Kind() string { return "retire" }
func (a Retire) String() string {
	return fmt.Sprintf("set %s to maint and remove [%s] (%s)", a.Slot, names(a.Containers), a.Reason)
}
func (a Retire) Attrs() []any {
	return []any{"slot", a.Slot, "containers", names(a.Containers), "reason", a.Reason}
}

// RestoreWeight lets traffic into a slot whose start an earlier run left at
// weight 0 after its check passed.
type RestoreWeight struct{ Slot string }

func (RestoreWeight) Kind() string     { return "restore_weight" }
func (a RestoreWeight) String() string { return "set the weight of " + a.Slot + " to 100%" }
func (a RestoreWeight) Attrs() []any   { return []any{"slot", a.Slot} }

// Undrain takes back a slot slotscaler was draining.
type Undrain struct{ Slot string }

func (Undrain) Kind() string     { return "undrain" }
func (a Undrain) String() string { return "take back draining slot " + a.Slot }
func (a Undrain) Attrs() []any   { return []any{"slot", a.Slot} }

// Start starts a new container for a free slot on a host.
type Start struct {
	Slot, Host, Image string
}

func (Start) Kind() string { return "start" }
func (a Start) String() string {
	return fmt.Sprintf("start a container on %s for %s (image %s)", a.Host, a.Slot, a.Image)
}
func (a Start) Attrs() []any { return []any{"slot", a.Slot, "host", a.Host, "image", a.Image} }

// CancelStart calls off the start of a new container under way.
type CancelStart struct{ Slot string }

func (CancelStart) Kind() string     { return "cancel_start" }
func (a CancelStart) String() string { return "call off the start of " + a.Slot }
func (a CancelStart) Attrs() []any   { return []any{"slot", a.Slot} }

// Drain drains a serving slot to scale down; At is its intent's time.
type Drain struct {
	Slot     string
	Sessions int
	At       time.Time
}

func (Drain) Kind() string { return "drain" }
func (a Drain) String() string {
	return fmt.Sprintf("drain %s (%d sessions)", a.Slot, a.Sessions)
}
func (a Drain) Attrs() []any { return []any{"slot", a.Slot, "sessions", a.Sessions} }

func names(cs []Container) string {
	var ns []string
	for _, c := range cs {
		ns = append(ns, c.Name)
	}
	return strings.Join(ns, ",")
}
