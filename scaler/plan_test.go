package scaler

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var planNow = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// planWorld builds observations for the plan's table tests: host h1 at
// 10.0.0.1, every slot's container on it.
type planWorld struct{}

func (planWorld) server(admin AdminState, health Health, weight, port int) Server {
	return Server{Admin: admin, Health: health, Weight: weight, Addr: netip.MustParseAddr("10.0.0.1"), Port: port, CheckStatus: "L4OK"}
}

func container(id, slot string, port int) Container {
	return Container{ID: id, Name: "c-" + id, Slot: slot, Host: "h1", Port: port, Running: true}
}

func noIntents() intents {
	return intents{Draining: map[string]time.Time{}, Binding: map[string]bool{}, Held: map[string]bool{}, LastBound: map[string]netip.AddrPort{}}
}

func TestPlanSlots(t *testing.T) {
	var w planWorld
	c1 := container("1", "slot1", 30001)
	stray := container("9", "slot9", 30009)
	nb := NoteBound{Slot: "slot1", At: netip.MustParseAddrPort("10.0.0.1:30001")}
	bound := func(seen slotSeen) slotSeen { seen.Bound = &seen.Mine[0]; return seen }
	for _, tc := range []struct {
		name     string
		complete bool
		seen     slotSeen
		intents  func(*intents)
		strays   []Container
		want     SlotState
		acts     []Action
	}{
		{
			name: "serving slot: only noted", complete: true,
			seen: bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 100, 30001), Mine: []Container{c1}}),
			want: SlotServing,
			acts: []Action{nb},
		},
		{
			name: "serving slot already noted: nothing to do", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 100, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.LastBound["slot1"] = netip.MustParseAddrPort("10.0.0.1:30001") },
			want:    SlotServing,
		},
		{
			name: "one operation per slot: a removal owns it, nothing planned", complete: true,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 30001), Mine: []Container{c1}, Op: opRemove},
			want: SlotBusy,
		},
		{
			name: "one operation per slot: a start owns it, counted starting", complete: true,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 30001), Op: opStart},
			want: SlotStarting,
		},
		{
			name: "incomplete data: maint slot with a container is not removed", complete: false,
			seen:    slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9), Mine: []Container{c1}},
			intents: func(in *intents) { in.Draining["slot1"] = planNow },
			want:    SlotBusy,
		},
		{
			name: "incomplete data: a ready slot whose container is not listed is not retired", complete: false,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 100, 30001)},
			want: SlotServing,
		},
		{
			name: "incomplete data: a drained slot is not set to maint", complete: false,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminDrain, HealthUp, 100, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Draining["slot1"] = planNow.Add(-time.Hour) },
			want:    SlotDraining,
			acts:    []Action{nb},
		},
		{
			name: "a bind of ours out of maint, its container on a silent host: where it points is noted", complete: false,
			seen:    slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 0, 30001), OnSilentHost: true},
			intents: func(in *intents) { in.Binding["slot1"] = true },
			want:    SlotStarting,
			acts:    []Action{nb},
		},
		{
			name: "incomplete data: an empty maint slot on the silent host is not free", complete: false,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 30001), OnSilentHost: true},
			want: SlotBusy,
		},
		{
			name: "incomplete data: strays stay", complete: false,
			seen:   slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9)},
			strays: []Container{stray},
			want:   SlotFree,
		},
		{
			name: "strays are removed on complete data", complete: true,
			seen:   slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9)},
			strays: []Container{stray},
			want:   SlotFree,
			acts:   []Action{Discard{Container: stray, Reason: "no such slot"}},
		},
		{
			name: "operator intents kept: a drain without our intent", complete: true,
			seen: bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminDrain, HealthUp, 100, 30001), Mine: []Container{c1}}),
			want: SlotOperator,
			acts: []Action{nb},
		},
		{
			name: "operator intents kept: a drain over a start's undo cut short (our draining intent beside a bind's)", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminDrain, HealthDown, 0, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Draining["slot1"] = planNow; in.Binding["slot1"] = true },
			want:    SlotOperator,
			acts:    []Action{nb, ClearIntent{Slot: "slot1", Intent: intentDraining}, ClearIntent{Slot: "slot1", Intent: intentBinding}},
		},
		{
			name: "operator intents kept: a bind of ours ready at weight 100%, down since, is over", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthDown, 100, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Binding["slot1"] = true },
			want:    SlotStarting,
			acts:    []Action{nb, ClearIntent{Slot: "slot1", Intent: intentBinding}},
		},
		{
			name: "operator intents kept: a weight 0 without a bind of ours", complete: true,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 0, 30001)},
			want: SlotOperator,
		},
		{
			name: "operator intents kept: a maint of a bound slot is held, its container removed", complete: true,
			seen: bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 30001), Mine: []Container{c1}}),
			want: SlotBusy,
			acts: []Action{Hold{Slot: "slot1"}, Remove{Slot: "slot1", Containers: []Container{c1}, Reason: "slot in maint"}},
		},
		{
			name: "a start of ours cut short before its state ready is not taken for an operator's maint", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 0, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Binding["slot1"] = true },
			want:    SlotBusy,
			acts:    []Action{Remove{Slot: "slot1", Containers: []Container{c1}, Reason: "slot in maint"}}, // the intent goes with the containers
		},
		{
			name: "operator intents kept: a maint where the slot was last bound, container gone, is held", complete: true,
			seen:    slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 30001)},
			intents: func(in *intents) { in.LastBound["slot1"] = netip.MustParseAddrPort("10.0.0.1:30001") },
			want:    SlotOperator,
			acts:    []Action{Hold{Slot: "slot1"}, Retired{Slot: "slot1"}},
		},
		{
			name: "operator intents kept: a held slot is not filled", complete: true,
			seen:    slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9)},
			intents: func(in *intents) { in.Held["slot1"] = true },
			want:    SlotOperator,
		},
		{
			name: "our maint, containers gone: free, intents forgotten", complete: true,
			seen:    slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9)},
			intents: func(in *intents) { in.Draining["slot1"] = planNow; in.Binding["slot1"] = true },
			want:    SlotFree,
			acts:    []Action{Retired{Slot: "slot1"}, ClearIntent{Slot: "slot1", Intent: intentBinding}},
		},
		{
			name: "a running container the slot lost (haproxy restarted) is bound again", complete: true,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminMaint, HealthUp, 100, 9), Mine: []Container{c1}},
			want: SlotStarting,
			acts: []Action{Rebind{Slot: "slot1", Container: c1}},
		},
		{
			name: "our drain done: retired", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminDrain, HealthUp, 100, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Draining["slot1"] = planNow },
			want:    SlotBusy,
			acts:    []Action{nb, Retire{Slot: "slot1", Containers: []Container{c1}, Reason: RetireDrained}},
		},
		{
			name: "our drain with sessions left, before drain_timeout: waits", complete: true,
			seen: func() slotSeen {
				s := bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminDrain, HealthUp, 100, 30001), Mine: []Container{c1}})
				s.Server.Sessions = 3
				return s
			}(),
			intents: func(in *intents) { in.Draining["slot1"] = planNow.Add(-time.Second) },
			want:    SlotDraining,
			acts:    []Action{nb},
		},
		{
			name: "a ready slot whose container is missing is retired", complete: true,
			seen: slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 100, 30001)},
			want: SlotBusy,
			acts: []Action{Retire{Slot: "slot1", Reason: RetireMissing}},
		},
		{
			name: "down for unhealthy_after: retired", complete: true,
			seen: func() slotSeen {
				s := bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthDown, 100, 30001), Mine: []Container{c1}})
				s.Server.LastChange = 10
				return s
			}(),
			want: SlotBusy,
			acts: []Action{nb, Retire{Slot: "slot1", Containers: []Container{c1}, Reason: RetireUnhealthy}},
		},
		{
			name: "a bind of ours at weight 0 whose check passed gets its weight", complete: true,
			seen:    bound(slotSeen{Name: "slot1", Exists: true, Server: w.server(AdminReady, HealthUp, 0, 30001), Mine: []Container{c1}}),
			intents: func(in *intents) { in.Binding["slot1"] = true; in.Draining["slot1"] = planNow },
			want:    SlotStarting,
			acts:    []Action{nb, ClearIntent{Slot: "slot1", Intent: intentDraining}, RestoreWeight{Slot: "slot1"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := noIntents()
			if tc.intents != nil {
				tc.intents(&in)
			}
			p := planSlots(observed{Now: planNow, Complete: tc.complete, Slots: []slotSeen{tc.seen}, Strays: tc.strays, Intents: in,
				DrainTimeout: 4 * time.Second, UnhealthyAfter: 4 * time.Second})
			if got := p.Slots[0].State; got != tc.want {
				t.Errorf("state %s, want %s", got, tc.want)
			}
			if got := append(p.Slots[0].Actions, p.Strays...); !reflect.DeepEqual(got, tc.acts) {
				t.Errorf("actions\n %v\nwant\n %v", got, tc.acts)
			}
		})
	}
}

func TestPlanScale(t *testing.T) {
	serving := []SlotLoad{{Slot: "slot1", Sessions: 5, HostPreferred: true}, {Slot: "slot2", Sessions: 1, HostPreferred: true}}
	starts := []startInFlight{{Slot: "slot3", Began: planNow.Add(-2 * time.Second)}, {Slot: "slot4", Began: planNow.Add(-time.Second)}}
	hosts := []HostLoad{{Name: "h1", Capacity: 4, Total: 2, Preferred: true}}
	for _, tc := range []struct {
		name string
		in   scaling
		step scaleStep
		acts []Action
	}{
		{
			name: "serving floor: starts in flight are called off before any drain",
			in:   scaling{Decision: Decision{Current: 4, Desired: 2}, Complete: true, Serving: serving, Starts: starts},
			step: stepDown,
			acts: []Action{CancelStart{Slot: "slot4"}, CancelStart{Slot: "slot3"}},
		},
		{
			name: "serving floor: only serving slots beyond desired are drained",
			in:   scaling{Decision: Decision{Current: 3, Desired: 1}, Complete: true, Serving: serving, Starts: starts[:1]},
			step: stepDown,
			acts: []Action{CancelStart{Slot: "slot3"}, Drain{Slot: "slot2", Sessions: 1, At: planNow}},
		},
		{
			name: "serving floor: fewer serving than desired, nothing drained",
			in:   scaling{Decision: Decision{Current: 4, Desired: 3}, Complete: true, Serving: serving[:1], Starts: starts[:1]},
			step: stepDown,
			acts: []Action{CancelStart{Slot: "slot3"}},
		},
		{
			name: "incomplete data: no scale-down",
			in:   scaling{Decision: Decision{Current: 2, Desired: 1}, Complete: false, Serving: serving},
			step: stepPostponed,
		},
		{
			name: "scale-up takes back our drains first, then starts in free slots",
			in:   scaling{Decision: Decision{Current: 1, Desired: 3}, Complete: true, Draining: []string{"slot2"}, Free: []string{"slot3", "slot4"}, Hosts: hosts, Image: "web:2"},
			step: stepUp,
			acts: []Action{Undrain{Slot: "slot2"}, Start{Slot: "slot3", Host: "h1", Image: "web:2"}},
		},
		{
			name: "scale-up backs off after failed starts when nothing can be taken back",
			in:   scaling{Decision: Decision{Current: 1, Desired: 3}, Complete: true, BackedOff: true, Free: []string{"slot3"}, Hosts: hosts},
			step: stepBackedOff,
		},
		{
			name: "steady",
			in:   scaling{Decision: Decision{Current: 2, Desired: 2}, Complete: true, Serving: serving},
			step: stepSteady,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = planNow
			p := planScale(tc.in)
			if p.Step != tc.step {
				t.Errorf("step %d, want %d", p.Step, tc.step)
			}
			if !reflect.DeepEqual(p.Actions, tc.acts) {
				t.Errorf("actions\n %v\nwant\n %v", p.Actions, tc.acts)
			}
		})
	}
}

func TestPlanScaleUpShortOfRoom(t *testing.T) {
	acts, short := planScaleUp(3, nil, []string{"slot3", "slot4"}, []HostLoad{{Name: "h1", Capacity: 4, Total: 3}}, "web:1")
	if want := []Action{Start{Slot: "slot3", Host: "h1", Image: "web:1"}}; !reflect.DeepEqual(acts, want) {
		t.Errorf("actions %v, want %v", acts, want)
	}
	if len(short) != 2 || short[0].Reason != "no_free_slot" || short[1].Reason != "no_host_capacity" {
		t.Errorf("shortage %+v, want no_free_slot then no_host_capacity", short)
	}
}

func TestPlanRollout(t *testing.T) {
	old := func(slot string) SlotLoad { return SlotLoad{Slot: slot, Generation: "old", HostPreferred: true} }
	updated := func(slot string) SlotLoad { return SlotLoad{Slot: slot, Generation: "new", HostPreferred: true} }
	room := []HostLoad{{Name: "h1", Capacity: 4, Total: 2, Preferred: true}}
	full := []HostLoad{{Name: "h1", Capacity: 2, Total: 2, Preferred: true}}
	running := Rollout{Image: "web:2", Previous: "web:1", Target: "web:2", State: RolloutRunning, Replicas: 2, Deadline: planNow.Add(time.Minute)}
	for _, tc := range []struct {
		name string
		in   rolloutSeen
		want rolloutStep
	}{
		{
			name: "nothing on incomplete data",
			in:   rolloutSeen{Rollout: running, Complete: false, Serving: []SlotLoad{old("slot1"), old("slot2")}, Free: []string{"slot3"}, Hosts: room},
			want: rolloutStep{},
		},
		{
			name: "one step at a time: waits while a start or drain is under way",
			in:   rolloutSeen{Rollout: running, Complete: true, Busy: true, Serving: []SlotLoad{old("slot1"), old("slot2")}, Free: []string{"slot3"}, Hosts: room},
			want: rolloutStep{},
		},
		{
			name: "never below min: the count held is raised to min, surge first",
			in:   rolloutSeen{Rollout: running, Complete: true, Min: 3, Serving: []SlotLoad{old("slot1"), old("slot2"), old("slot3")}, Free: []string{"slot4"}, Hosts: room},
			want: rolloutStep{Counted: true, Replicas: 3, Started: true, Message: "surge: starting a new replica, health check pending",
				Actions: []Action{Start{Slot: "slot4", Host: "h1", Image: "web:2"}}},
		},
		{
			name: "serving floor: no room, drain first only at the count held",
			in:   rolloutSeen{Rollout: running, Complete: true, Serving: []SlotLoad{old("slot1"), old("slot2")}, Free: []string{"slot3"}, Hosts: full},
			want: rolloutStep{Counted: true, Replicas: 2, Message: "no free slot or host capacity: draining an old replica first",
				Actions: []Action{Drain{Slot: "slot2", At: planNow}}},
		},
		{
			name: "serving floor: fewer serving than held and no slot free, waits",
			in:   rolloutSeen{Rollout: running, Complete: true, Serving: []SlotLoad{old("slot1")}, Hosts: room},
			want: rolloutStep{Counted: true, Replicas: 2, Message: "waiting: 1 of 2 replicas serve and no slot is free"},
		},
		{
			name: "one too many after a surge: an old replica drains",
			in:   rolloutSeen{Rollout: running, Complete: true, Serving: []SlotLoad{old("slot1"), old("slot2"), updated("slot3")}, Hosts: room},
			want: rolloutStep{Counted: true, Updated: 1, Replicas: 2, Message: "draining an old replica", Actions: []Action{Drain{Slot: "slot2", At: planNow}}},
		},
		{
			name: "every replica updated: succeeded",
			in:   rolloutSeen{Rollout: running, Complete: true, Serving: []SlotLoad{updated("slot1"), updated("slot2")}, Hosts: room},
			want: rolloutStep{Counted: true, Updated: 2, Replicas: 2, End: RolloutSucceeded, Message: "every replica runs web:2"},
		},
		{
			name: "a start of the new image failed: roll back",
			in:   rolloutSeen{Rollout: running, Failed: true, Complete: true, Serving: []SlotLoad{old("slot1"), old("slot2")}, Hosts: room},
			want: rolloutStep{End: RolloutRollingBack, Message: "a container of web:2 never became healthy"},
		},
		{
			name: "past its deadline: roll back",
			in:   rolloutSeen{Rollout: running, Now: planNow.Add(time.Hour), Complete: true, Serving: []SlotLoad{old("slot1"), old("slot2")}, Hosts: room},
			want: rolloutStep{End: RolloutRollingBack, Message: "timed out"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Generation = "new"
			if tc.in.Now.IsZero() {
				tc.in.Now = planNow
			}
			if got := planRollout(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("step\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestPlanControlled(t *testing.T) {
	d := Decision{Current: 3, Desired: 5, Reason: ReasonSessions, LimitedBy: ReasonStep}
	for _, tc := range []struct {
		mode ControlMode
		held int
		want Decision
	}{
		{ControlAuto, 0, d},
		{ControlPinned, 2, Decision{Current: 3, Desired: 2, Reason: ReasonPinned}},
		{ControlPaused, 3, Decision{Current: 3, Desired: 3, Reason: ReasonPaused}},
		{ControlRollout, 4, Decision{Current: 3, Desired: 4, Reason: ReasonRollout}},
	} {
		if got := controlled(d, tc.mode, tc.held); got != tc.want {
			t.Errorf("%s %d: %+v, want %+v", tc.mode, tc.held, got, tc.want)
		}
	}
}
