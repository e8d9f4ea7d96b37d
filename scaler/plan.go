package scaler

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The plan: pure functions from what a tick observed of a service, what
// slotscaler and its operators intend, and the decision, to what each slot
// is and the actions that make the world follow. Nothing here reads a
// clock, takes a lock or calls a port; the tick (loop.go) observes, Decide
// (decision.go) decides, the functions below plan and the executor
// (apply.go) carries the actions out. The invariants of DESIGN.md that a
// plan decides are marked "Invariant:".

// observed is one tick's immutable observation of a service.
type observed struct {
	Now      time.Time
	Complete bool        // every Docker host answered: a missing container is missing
	Slots    []slotSeen  // in slot order
	Strays   []Container // containers of the service labelled with no slot of it
	Intents  intents

	DrainTimeout   time.Duration // drain_timeout
	UnhealthyAfter time.Duration // unhealthy_after
}

// slotSeen is one slot as HAProxy (merged over its instances) and the
// Docker hosts show it.
type slotSeen struct {
	Name         string
	Server       Server
	Exists       bool        // false: a dynamic slot with no server
	Mine         []Container // containers labelled with the slot
	Bound        *Container  // the running one of Mine the server points at
	OnSilentHost bool        // the server points at a host that did not answer
	Op           opKind      // the operation that owns the slot (opNone: none)
}

// intents are what slotscaler remembers of a service's slots.
type intents struct {
	Draining  map[string]time.Time      // slotscaler's own drains and maints, since when
	Binding   map[string]bool           // slots slotscaler brings up at weight 0
	Held      map[string]bool           // an operator's maint
	LastBound map[string]netip.AddrPort // where a slot last pointed at its container out of maint
}

// slotPlan is what a tick concludes about a service's slots and does to
// them: the desired slot table, and the removal of stray containers.
type slotPlan struct {
	Slots  []plannedSlot // per slot of observed.Slots
	Strays []Action
}

// plannedSlot is one slot's state and the actions for it, in order. A Hold
// guards what follows it: the executor stops there when it cannot save it.
type plannedSlot struct {
	State   SlotState
	Actions []Action
}

// planSlots classifies every slot and lists the actions that make each slot
// and its containers agree (HAProxy's admin state says what must exist),
// then the removal of stray containers.
func planSlots(o observed) slotPlan {
	p := slotPlan{Slots: make([]plannedSlot, 0, len(o.Slots))}
	for _, seen := range o.Slots {
		var ps plannedSlot
		// Out of maint at its container, or where a bind of ours (its
		// intent saved) pointed it: a later maint there without a draining
		// intent is an operator's (sim seed 71: a host that did not answer
		// hid the container of a start a restart had cut short).
		at, noted := o.Intents.LastBound[seen.Name]
		if seen.Exists && seen.Server.Admin != AdminMaint && (seen.Bound != nil || o.Intents.Binding[seen.Name]) && (!noted || at != seen.Server.AddrPort()) {
			ps.Actions = append(ps.Actions, NoteBound{Slot: seen.Name, At: seen.Server.AddrPort()})
		}
		// Invariant: one operation per slot. A slot an operation owns is
		// only counted: as starting while a start owns it (the replica the
		// decision counts), else busy.
		switch seen.Op {
		case opStart:
			ps.State = SlotStarting
		case opRemove:
			ps.State = SlotBusy
		case opNone:
			var acts []Action
			ps.State, acts = planSlot(o, seen)
			ps.Actions = append(ps.Actions, acts...)
		}
		p.Slots = append(p.Slots, ps)
	}
	// Invariant: nothing is removed on incomplete data.
	if o.Complete {
		for _, c := range o.Strays {
			p.Strays = append(p.Strays, Discard{Container: c, Reason: "no such slot"})
		}
	}
	return p
}

// planSlot is one slot no operation owns: what it is, and what to do.
func planSlot(o observed, seen slotSeen) (SlotState, []Action) {
	name, srv, bound, mine, in := seen.Name, seen.Server, seen.Bound, seen.Mine, o.Intents
	var acts []Action
	switch {
	case !seen.Exists || srv.Admin == AdminMaint:
		_, draining := in.Draining[name]
		held := in.Held[name]
		// Invariant: operator intents kept. slotscaler records a draining
		// intent before each maint of its own: a maint without one, on a
		// slot that points at its container, is an operator's. So is one at
		// the address the slot had when last seen out of maint and bound:
		// its container may have died since or be on a host that does not
		// answer, and the hold is what keeps the operator's maint after
		// that. The slot stays theirs, not to be filled again until they
		// enable it. A start of ours that a restart cut short before its
		// "state ready" also points a maint slot at its container: with a
		// binding intent, only an address its bind got to the end with
		// counts (sim seed 589 held such a slot for an operator's).
		at, wasBound := in.LastBound[name]
		if seen.Exists && !draining && !held && (bound != nil && !in.Binding[name] || wasBound && at == seen.Server.AddrPort()) {
			acts = append(acts, Hold{Slot: name})
			held = true
		}
		if len(mine) == 0 && seen.Exists && seen.OnSilentHost {
			// Its container may be on the host that did not answer: not
			// free (sim: an operator's maint of such a slot was taken for
			// a free slot and filled).
			if held {
				return SlotOperator, acts
			}
			return SlotBusy, acts
		}
		if len(mine) == 0 {
			if _, ok := in.LastBound[name]; ok || draining {
				acts = append(acts, Retired{Slot: name})
			}
			if in.Binding[name] {
				acts = append(acts, ClearIntent{Slot: name, Intent: intentBinding})
			}
			if held {
				return SlotOperator, acts
			}
			return SlotFree, acts
		}
		// Invariant: nothing destructive on incomplete data.
		if !o.Complete {
			return SlotBusy, acts // its containers may be on the host that did not answer
		}
		// A running container the slot does not point at: HAProxy
		// restarted (template slots came back with the placeholder,
		// dynamic ones are gone) or a start was cut short. Bind it again
		// rather than churn it. One that the slot still points at was put
		// in maint on purpose: remove it.
		if bound == nil && len(mine) == 1 && mine[0].Running && !held {
			return SlotStarting, append(acts, Rebind{Slot: name, Container: mine[0]})
		}
		// Invariant: operator intents kept. A bind's intent stays until
		// its containers are gone (remove ends with retired): forgotten
		// first, a remove that failed or was cut short by a kill left a
		// maint at the container's address with no intent, taken by the
		// next run for an operator's and held for good (sim seed 1045).
		return SlotBusy, append(acts, Remove{Slot: name, Containers: mine, Reason: "slot in maint"})
	case srv.Admin == AdminDrain:
		if bound != nil {
			acts = append(acts, discardOthers(mine, bound)...)
		}
		since, ours := in.Draining[name]
		if ours && in.Binding[name] {
			// Invariant: operator intents kept. slotscaler drains only
			// slots it counts as serving, whose bind is over: a draining
			// intent beside a bind's is a start's undo, which only ever
			// sets maint. A drain there is an operator's, made over an
			// undo cut short (sim seed 4569: killed while the undo's
			// maint was on its way, the next run took their drain for its
			// own, retired the slot and filled it again).
			acts = append(acts, ClearIntent{Slot: name, Intent: intentDraining})
			ours = false
		}
		if !ours {
			if in.Binding[name] {
				// The bind is over: the drain is the operator's (review).
				acts = append(acts, ClearIntent{Slot: name, Intent: intentBinding})
			}
			return SlotOperator, acts // Invariant: operator intents kept
		}
		// Invariant: nothing is set to maint on data not complete for the
		// slot: its container may be on the host that did not answer.
		if !o.Complete {
			return SlotDraining, acts
		}
		if srv.Sessions == 0 && srv.Queue == 0 || o.Now.Sub(since) >= o.DrainTimeout || bound == nil {
			return SlotBusy, append(acts, Retire{Slot: name, Containers: mine, Reason: RetireDrained})
		}
		return SlotDraining, acts
	}
	// Ready.
	if _, ok := in.Draining[name]; ok {
		acts = append(acts, ClearIntent{Slot: name, Intent: intentDraining})
	}
	if srv.Weight == 0 && !in.Binding[name] {
		// Invariant: operator intents kept. Weighted out by someone else:
		// not capacity, and neither replaced nor cleaned up until they
		// weight it back, whatever its container does.
		return SlotOperator, acts
	}
	if bound != nil || o.Complete {
		acts = append(acts, discardOthers(mine, bound)...)
	}
	if bound == nil {
		if !o.Complete {
			// Cannot tell: trust HAProxy's view of it.
			if srv.Serving() && srv.Weight > 0 {
				return SlotServing, acts
			}
			return SlotStarting, acts
		}
		return SlotBusy, append(acts, Retire{Slot: name, Reason: RetireMissing})
	}
	if in.Binding[name] && srv.Weight > 0 {
		// Invariant: operator intents kept. A bind weights its slot 0
		// before its state ready and lets traffic in last: ready at a
		// weight above 0, the bind got to its end (a start whose last
		// reply was lost, or cut short by a kill right after), whatever
		// the checks say now. Kept while the slot was down, the intent
		// made an operator's later weight 0 pass for the bind's: the slot
		// was retired and filled again (sim seed 4825).
		acts = append(acts, ClearIntent{Slot: name, Intent: intentBinding})
	}
	switch {
	case srv.Health == HealthDown && time.Duration(srv.LastChange)*time.Second >= o.UnhealthyAfter:
		return SlotBusy, append(acts, Retire{Slot: name, Containers: []Container{*bound}, Reason: RetireUnhealthy})
	case srv.Weight == 0:
		// Bound by an earlier run that stopped before the first check passed.
		if checkPassed(srv) {
			acts = append(acts, RestoreWeight{Slot: name})
		}
		return SlotStarting, acts
	case srv.Serving():
		return SlotServing, acts
	}
	return SlotStarting, acts
}

// discardOthers removes the containers of a slot but bound (all of them
// when bound is nil).
func discardOthers(mine []Container, bound *Container) []Action {
	var acts []Action
	for _, c := range mine {
		if bound == nil || c.ID != bound.ID {
			acts = append(acts, Discard{Container: c, Reason: "not the slot's container"})
		}
	}
	return acts
}

// startInFlight is a start of a new container under way, as a scale-down
// may call it off.
type startInFlight struct {
	Slot  string
	Began time.Time
}

// shortage says why a scale-up starts fewer containers than it wants.
type shortage struct {
	Reason  string // no_free_slot or no_host_capacity
	Message string
}

// controlled is the decision with the count an operator or a rollout holds
// in force. Invariant: operator intents kept: a pin or a pause holds the
// count it set, whatever the rules decide (a rollout, the count it holds).
func controlled(d Decision, mode ControlMode, held int) Decision {
	switch mode {
	case ControlRollout:
		d.Desired, d.Reason, d.LimitedBy = held, ReasonRollout, ""
	case ControlPaused:
		d.Desired, d.Reason, d.LimitedBy = held, ReasonPaused, ""
	case ControlPinned:
		d.Desired, d.Reason, d.LimitedBy = held, ReasonPinned, ""
	}
	return d
}

// scaling is what planning a service's scaling takes beyond its slots.
type scaling struct {
	Decision  Decision
	Complete  bool            // every Docker host answered
	BackedOff bool            // starts of the image failed lately: wait
	Draining  []string        // slots slotscaler is draining
	Free      []string        // slots that may be filled
	Serving   []SlotLoad      // serving slots, as victim selection sees them
	Starts    []startInFlight // starts of new containers under way (scale-down only)
	Hosts     []HostLoad      // the hosts' room (scale-up only)
	Image     string          // what new containers run
	Now       time.Time
}

// scaleStep is what a tick does with a decision.
type scaleStep int

const (
	stepSteady    scaleStep = iota
	stepUp                  // add replicas
	stepBackedOff           // a scale-up waits: starts of the image failed lately
	stepDown                // remove replicas
	stepPostponed           // a scale-down waits: a Docker host did not answer
)

// scalePlan is the step a decision takes and its actions.
type scalePlan struct {
	Step    scaleStep
	Actions []Action
	Short   []shortage // a scale-up short of slots, then of room
}

// planScale plans the decision: a scale-up (unless starts of the image
// back off and no drained slot can be taken back) or a scale-down.
func planScale(in scaling) scalePlan {
	d := in.Decision
	switch {
	case d.Desired > d.Current && len(in.Draining) == 0 && in.BackedOff:
		return scalePlan{Step: stepBackedOff}
	case d.Desired > d.Current:
		acts, short := planScaleUp(d.Desired-d.Current, in.Draining, in.Free, in.Hosts, in.Image)
		return scalePlan{Step: stepUp, Actions: acts, Short: short}
	case d.Desired < d.Current && !in.Complete:
		// Invariant: nothing drained on incomplete data.
		return scalePlan{Step: stepPostponed}
	case d.Desired < d.Current:
		return scalePlan{Step: stepDown, Actions: planScaleDown(d.Current, d.Desired, in.Starts, in.Serving, in.Now)}
	}
	return scalePlan{Step: stepSteady}
}

// planScaleUp adds n replicas running image: slots of slotscaler's still
// draining come back first (no container to start), then new containers in
// the free slots on the hosts placement chooses.
func planScaleUp(n int, draining, free []string, hosts []HostLoad, image string) ([]Action, []shortage) {
	var acts []Action
	for _, slot := range draining[:min(n, len(draining))] {
		acts = append(acts, Undrain{Slot: slot})
	}
	n -= len(acts)
	var short []shortage
	if n > len(free) {
		short = append(short, shortage{Reason: "no_free_slot", Message: fmt.Sprintf("want %d more replicas, %d free slots", n, len(free))})
		n = len(free)
	}
	placed, err := Place(hosts, n)
	if err != nil {
		short = append(short, shortage{Reason: "no_host_capacity", Message: fmt.Sprintf("placed %d of %d new containers: %v", len(placed), n, err)})
	}
	for i, host := range placed {
		acts = append(acts, Start{Slot: free[i], Host: host, Image: image})
	}
	return acts, short
}

// planScaleDown takes a service from current down to desired replicas.
// Invariant: the serving floor, min(desired, serving). Starts still under
// way are called off first (newest first), and only serving slots beyond
// desired are drained. Draining current-desired serving slots instead once
// took serving to 1 under a pin of 2 while the starts of an earlier pin of
// 4 ran (sim scenario TestScenarioPinDownWhileStarting).
func planScaleDown(current, desired int, starts []startInFlight, serving []SlotLoad, now time.Time) []Action {
	excess := current - desired
	starts = slices.Clone(starts)
	slices.SortFunc(starts, func(a, b startInFlight) int {
		return cmp.Or(b.Began.Compare(a.Began), strings.Compare(a.Slot, b.Slot))
	})
	var acts []Action
	for _, st := range starts[:min(excess, len(starts))] {
		acts = append(acts, CancelStart{Slot: st.Slot})
	}
	excess -= len(acts)
	if n := min(excess, len(serving)-desired); n > 0 {
		acts = append(acts, planDrains(serving, n, now)...)
	}
	return acts
}

// rolloutSeen is an active rollout as a tick plans its next step.
type rolloutSeen struct {
	Rollout    Rollout // as it stands (a copy)
	Generation string  // of the image converged to (Rollout.Target)
	Failed     bool    // a start of that generation failed since it became the target
	Now        time.Time
	Complete   bool // every Docker host answered
	Min        int  // min_replicas in force
	Busy       bool // a start, a drain of slotscaler's or a removal is under way
	Serving    []SlotLoad
	Free       []string
	Hosts      []HostLoad
}

// rolloutStep is a rollout's next step.
type rolloutStep struct {
	End      RolloutState // RolloutRollingBack: turn back; a final state: the rollout ends; "": it goes on
	Message  string       // the step's or the end's; "": unchanged
	Counted  bool         // Updated and Replicas were counted on this tick's observation
	Updated  int          // replicas serving the target
	Replicas int          // held
	Started  bool         // a scale-up was planned: Short says whether it lacked room
	Short    []shortage
	Actions  []Action
}

// planRollout moves an active rollout one step: it waits while a start or
// a drain is under way, then drains an old replica when there is one too
// many, or starts a new one (in a free slot; when none, an old one is
// drained first), and ends when every replica runs the target image.
func planRollout(in rolloutSeen) rolloutStep {
	r := in.Rollout
	switch {
	case in.Failed && r.State == RolloutRunning:
		return rolloutStep{End: RolloutRollingBack, Message: fmt.Sprintf("a container of %s never became healthy", r.Image)}
	case in.Now.After(r.Deadline) && r.State == RolloutRunning:
		return rolloutStep{End: RolloutRollingBack, Message: "timed out"}
	case in.Failed:
		return rolloutStep{End: RolloutFailed, Message: fmt.Sprintf("rolling back to %s failed too: a container did not become healthy", r.Previous)}
	case in.Busy:
		return rolloutStep{} // one step at a time
	case !in.Complete:
		// Invariant: nothing on incomplete data. A replica on a host that
		// did not answer may be old or new: wait.
		return rolloutStep{}
	}
	var old []SlotLoad
	step := rolloutStep{Counted: true}
	for _, sl := range in.Serving {
		if sl.Generation == in.Generation {
			step.Updated++
		} else {
			old = append(old, sl)
		}
	}
	// Invariant: a rollout never holds fewer replicas than the service's
	// min, which a schedule may raise.
	step.Replicas = max(r.Replicas, in.Min)
	current := len(in.Serving)
	canPlace := func() bool { placed, _ := Place(in.Hosts, 1); return len(placed) == 1 }
	start := func(n int, msg string) rolloutStep {
		step.Message, step.Started = msg, true
		step.Actions, step.Short = planScaleUp(n, nil, in.Free, in.Hosts, r.Target)
		return step
	}
	switch {
	case current > step.Replicas && len(old) > 0:
		step.Message, step.Actions = "draining an old replica", planDrains(old, 1, in.Now)
	case len(old) > 0 && len(in.Free) > 0 && canPlace():
		return start(1, "surge: starting a new replica, health check pending")
	case len(old) > 0 && current >= step.Replicas:
		// Invariant: the serving floor. Drain first goes one below the
		// count held, never further: with fewer serving than held it
		// drained what little served.
		step.Message, step.Actions = "no free slot or host capacity: draining an old replica first", planDrains(old, 1, in.Now)
	case len(old) > 0 && len(in.Free) == 0:
		step.Message = fmt.Sprintf("waiting: %d of %d replicas serve and no slot is free", current, step.Replicas)
	case current < step.Replicas:
		return start(step.Replicas-current, "starting a new replica, health check pending")
	case r.State == RolloutRollingBack:
		step.End, step.Message = RolloutRolledBack, fmt.Sprintf("%s never became healthy; every replica runs %s again", r.Image, r.Previous)
	default:
		step.End, step.Message = RolloutSucceeded, fmt.Sprintf("every replica runs %s", r.Image)
	}
	return step
}

// planDrains drains n victims among serving.
func planDrains(serving []SlotLoad, n int, now time.Time) []Action {
	var acts []Action
	for _, slot := range Victims(serving, n) {
		acts = append(acts, Drain{Slot: slot, Sessions: sessionsOf(slot, serving), At: now})
	}
	return acts
}

func sessionsOf(slot string, loads []SlotLoad) int {
	for _, sl := range loads {
		if sl.Slot == slot {
			return sl.Sessions
		}
	}
	return 0
}
