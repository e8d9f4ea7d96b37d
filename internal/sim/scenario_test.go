package sim

import (
	"errors"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
)

// Scenarios: the overlaps issue 10 found, each scripted so that the
// invariant it broke is checked on that very interleaving. Random seeds
// find most of them too; these keep them found.

func runScenario(t *testing.T, o Options) *World {
	t.Helper()
	o.Seed = 1
	if o.Instances == 0 {
		o.Instances = 1
	}
	if o.Hosts == 0 {
		o.Hosts = 1
	}
	if o.Faults == 0 {
		o.Faults = 30 * time.Second
	}
	if o.Quiet == 0 {
		o.Quiet = 20 * time.Second
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if f := w.Run(); f != nil {
		t.Fatal(f)
	}
	return w
}

// The first of two instances restarts while the second serves: the second
// keeps its slots ("serving floor").
func TestScenarioFirstInstanceRestarts(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		runScenario(t, Options{Instances: 2, Dynamic: dynamic, Script: func(w *World) {
			w.At(time.Second, func() { w.Load("web", 30) })
			w.At(10*time.Second, func() { w.RestartHAProxy(0) })
			w.At(15*time.Second, func() { w.RestartHAProxy(0) })
		}})
	}
}

// lbctl scale 4, then scale 2 while the starts run: serving never below
// the lower pin ("serving floor").
func TestScenarioPinDownWhileStarting(t *testing.T) {
	runScenario(t, Options{Script: func(w *World) {
		w.At(2*time.Second, func() { w.Scale("web", 2) })
		w.At(7*time.Second, func() { w.SlowStarts(3 * time.Second) })
		w.At(8*time.Second, func() { w.Scale("web", 4) })
		w.At(9*time.Second+600*time.Millisecond, func() { w.Scale("web", 2) })
	}})
}

// A rollout asked for before the first complete observation is refused
// (409), and one asked for later holds at least min replicas.
func TestScenarioRolloutBeforeFirstTick(t *testing.T) {
	var early error
	var held int
	runScenario(t, Options{Script: func(w *World) {
		rollout := func(done func(scaler.Rollout, error)) func() {
			return func() {
				var r scaler.Rollout
				w.rolling["web"] = true
				w.api("rollout web web:2", func(l *scaler.Loop) (err error) {
					r, err = l.StartRollout("web", "web:2", time.Minute)
					return err
				}, func(err error) { done(r, err) })
			}
		}
		w.At(0, rollout(func(_ scaler.Rollout, err error) { early = err }))
		w.At(5*time.Second, rollout(func(r scaler.Rollout, err error) {
			if err != nil {
				t.Errorf("rollout after the first ticks: %v", err)
			}
			held = r.Replicas
		}))
	}})
	if !errors.Is(early, scaler.ErrConflict) {
		t.Errorf("rollout before the first tick: %v, want a conflict", early)
	}
	if held < 1 {
		t.Errorf("rollout holds %d replicas, want at least min (1)", held)
	}
}

// Replies cut after a complete row: nothing acts on the rows that are
// missing ("no removal under traffic", "no action on incomplete data").
func TestScenarioRepliesCutShort(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		runScenario(t, Options{Dynamic: dynamic, Script: func(w *World) {
			w.At(time.Second, func() { w.Load("web", 35) })
			w.At(10*time.Second, func() { w.CutReplies(0, 10*time.Second) })
		}})
	}
}

// A host that does not answer while slots drain: no drain ends and no
// free slot is taken on its account ("no action on incomplete data").
func TestScenarioHostSilentWhileDraining(t *testing.T) {
	runScenario(t, Options{Hosts: 2, Script: func(w *World) {
		w.At(time.Second, func() { w.Load("web", 45) })
		w.At(12*time.Second, func() { w.Load("web", 0); w.HostDown(0, 10*time.Second) })
	}})
}

// An operator drains, then sets to maint, slots that are still starting:
// both are kept ("operator intents kept").
func TestScenarioOperatorDrainsStartingSlot(t *testing.T) {
	runScenario(t, Options{Hosts: 2, Script: func(w *World) {
		w.At(2*time.Second, func() { w.Scale("web", 3) })
		// The first slot seen bound at weight 0 (its check pending), looked
		// for every 20 ms for 5 s.
		starting := func(what string) func() {
			tries := 0
			var try func()
			try = func() {
				for _, s := range w.haproxies[0].backend("web").servers {
					if s.weight == 0 && s.admin.String() == "ready" {
						w.OnSocket(0, "web", s.name, what)
						if w.operator["web/"+s.name] != what {
							t.Errorf("the operator's %s of %s was not made", what, s.name)
						}
						return
					}
				}
				if tries++; tries == 250 {
					t.Errorf("no starting slot to %s", what)
					return
				}
				w.after(20*time.Millisecond, try)
			}
			return try
		}
		w.At(2*time.Second, starting("drain"))
		w.At(12*time.Second, func() { w.Scale("web", 5) })
		w.At(12*time.Second, starting("maint"))
	}})
}

// A reload that shrinks a dynamic service's max_replicas drains the slots
// beyond it like any scale-down, never removes them as strays; one that
// changes the slot prefix is refused.
func TestScenarioReloadShrinksMax(t *testing.T) {
	var prefixErr error
	runScenario(t, Options{Dynamic: true, Script: func(w *World) {
		w.At(time.Second, func() { w.Scale("web", 5) })
		w.At(10*time.Second, func() {
			next, err := w.config(1)
			if err != nil {
				t.Fatal(err)
			}
			next.Services[0].MaxReplicas = 2
			if err := w.Loop().Reload(next); err != nil {
				t.Errorf("reload: %v", err)
			}
			w.prevCfg, w.cfg = w.cfg, next
			w.Resume("web")
		})
		w.At(15*time.Second, func() {
			next, _ := w.config(1)
			next.Services[0].Slots.Prefix = "other"
			prefixErr = w.Loop().Reload(next)
		})
	}})
	if !errors.Is(prefixErr, scaler.ErrConflict) {
		t.Errorf("reload changing the slot prefix: %v, want a conflict", prefixErr)
	}
}

// An operator sets a serving slot to maint and its container dies, while
// slotscaler is down or the container's host does not answer: the slot
// stays theirs ("operator intents kept"), not taken for a free one.
func TestScenarioOperatorMaintThenContainerDies(t *testing.T) {
	for _, silentHost := range []bool{false, true} {
		runScenario(t, Options{Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 5) })
			w.At(10*time.Second, func() {
				if silentHost {
					w.HostDown(0, 5*time.Second)
				} else {
					w.KillSlotscaler()
				}
			})
			w.At(10*time.Second+10*time.Millisecond, func() { w.OnSocket(0, "web", "slot1", "maint") })
			w.At(10*time.Second+20*time.Millisecond, func() { w.KillContainer("web", "slot1") })
			w.At(12*time.Second, func() {
				if w.operator["web/slot1"] != "maint" {
					t.Errorf("the operator's maint of web/slot1 was not made: %v", w.operator)
				}
			})
		}})
	}
}

// An operator sets a slot to maint while state_dir cannot be written, and
// slotscaler is killed before it can: the slot stays theirs after the
// restart ("operator intents kept"), its container kept meanwhile.
func TestScenarioOperatorMaintWhileDiskFull(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		runScenario(t, Options{Dynamic: dynamic, Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 5) })
			w.At(10*time.Second, func() { w.DiskFull(3 * time.Second) })
			w.At(10*time.Second+10*time.Millisecond, func() { w.OnSocket(0, "web", "slot1", "maint") })
			w.At(12*time.Second, func() { w.KillSlotscaler() })
		}})
	}
}

// A re-bind after HAProxy restarted (the slot pointed back at the address
// its container had), killed between its "set addr" or "add server" and
// its "state ready": the slot in maint at its old address under a bind of
// ours is not taken for an operator's maint ("no false hold"; found by
// review).
func TestScenarioRebindKilledBeforeReady(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		runScenario(t, Options{Dynamic: dynamic, Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 3) })
			w.At(10*time.Second, func() {
				w.KillAfter(func(_, what string) bool { return what == "set addr" || what == "add server" })
				w.RestartHAProxy(0)
			})
		}})
	}
}

// An operator's maint of a slot whose host does not answer is held; they
// enable it while the host is still silent: the slot is slotscaler's
// again, not held anew at the next tick (found by review).
func TestScenarioEnableWhileHostSilent(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		var after scaler.SlotState
		runScenario(t, Options{Dynamic: dynamic, Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 3) })
			w.At(10*time.Second, func() { w.HostDown(0, 8*time.Second) })
			w.At(10*time.Second+200*time.Millisecond, func() { w.OnSocket(0, "web", "slot1", "maint") })
			w.At(13*time.Second, func() { w.Enable("web", "slot1") })
			w.At(28*time.Second, func() {
				for _, sl := range w.Loop().Services()[0].Slots {
					if sl.Name == "slot1" {
						after = sl.State
					}
				}
			})
		}})
		if after == scaler.SlotOperator {
			t.Errorf("dynamic=%t: lbctl enable web/slot1 lost: the slot is held again", dynamic)
		}
	}
}

// slotscaler is down; one instance reloads keeping its slots (new process,
// same runtime state), and later an operator drains a slot on its socket:
// when slotscaler is back, that instance is not rebuilt over the drain
// (found by review: a saved "process last in step" made it one to rebuild).
func TestScenarioReloadWhileDownThenSocketDrain(t *testing.T) {
	var admin string
	runScenario(t, Options{Instances: 2, Script: func(w *World) {
		w.At(time.Second, func() { w.Scale("web", 3) })
		w.At(8*time.Second, func() { w.StopSlotscaler() })
		w.At(8*time.Second+100*time.Millisecond, func() { w.ReloadHAProxy(0) })
		w.At(20*time.Second, func() { w.OnSocket(0, "web", "slot1", "drain") })
		w.At(22*time.Second, func() { w.StartSlotscaler() })
		w.At(26*time.Second, func() {
			admin = w.haproxies[0].backend("web").server("slot1").admin.String() + "/" + w.haproxies[1].backend("web").server("slot1").admin.String()
		})
	}})
	if admin != "drain/drain" {
		t.Errorf("operator's socket drain of web/slot1 on haproxy1: %s (haproxy1/haproxy2) once slotscaler was back, want drain/drain", admin)
	}
}

// A bind has set its slot ready on the first of two instances when
// slotscaler is killed; an operator drains the slot there before it is
// back. The drain is theirs on both instances: the maint the bind left on
// the second is the bind's step not taken yet, not an operator's (a merge
// where the more restrictive state won turned the drain into a maint, the
// next run took it for the cut-short bind's and refilled the slot: sim
// seed 2554).
func TestScenarioDrainAfterBindCutShortOnOneInstance(t *testing.T) {
	admin := map[time.Duration]string{}
	slot := drainAfterBindCutShort(t, nil, admin, 25*time.Second)
	if admin[25*time.Second] != "drain/drain" {
		t.Errorf("operator's drain of web/%s on haproxy1 after a bind cut short there: %s (haproxy1/haproxy2), want drain/drain", slot, admin[25*time.Second])
	}
}

// Then the operator takes their drain to maint on that instance's socket:
// their maint wins (the bind's intent lingered until they enabled the
// slot, and the merge turned the maint back into the drain: review).
func TestScenarioMaintAfterDrainOfCutShortBind(t *testing.T) {
	admin := map[time.Duration]string{}
	slot := drainAfterBindCutShort(t, func(w *World, slot string) { w.OnSocket(0, "web", slot, "maint") }, admin, 40*time.Second)
	if admin[40*time.Second] != "maint/maint" {
		t.Errorf("operator's maint of web/%s on haproxy1 after their drain: %s (haproxy1/haproxy2), want maint/maint", slot, admin[40*time.Second])
	}
}

// drainAfterBindCutShort kills slotscaler right after a bind's "state
// ready" on the first of two instances, has an operator drain that slot on
// the first instance's socket at once, then runs then (if any) at 25 s, and
// records the slot's admin state on both instances at each of at. It
// returns the slot.
func drainAfterBindCutShort(t *testing.T, then func(w *World, slot string), admin map[time.Duration]string, at ...time.Duration) string {
	t.Helper()
	var slot string
	runScenario(t, Options{Instances: 2, Script: func(w *World) {
		w.At(5*time.Second, func() {
			w.KillAfter(func(server, what string) bool {
				if what != "state ready" {
					return false
				}
				slot = server
				w.after(time.Millisecond, func() { w.OnSocket(0, "web", server, "drain") })
				return true
			})
			w.Scale("web", 3)
		})
		if then != nil {
			w.At(25*time.Second, func() { then(w, slot) })
		}
		for _, d := range at {
			w.At(d, func() {
				admin[d] = w.haproxies[0].backend("web").server(slot).admin.String() + "/" + w.haproxies[1].backend("web").server(slot).admin.String()
			})
		}
	}})
	return slot
}

// An operator's lbctl drain of a slot slotscaler is draining to scale
// down, while state_dir cannot be written: they get the error and the slot
// stays slotscaler's, whose drain completes. In memory alone it had become
// theirs: drained for good, and once its container died, a slot bound to
// nothing ("converged", sim seed 1781).
func TestScenarioDrainUnsavedOfOwnDrain(t *testing.T) {
	var slot string
	var admin runtimeapi.AdminState
	runScenario(t, Options{Script: func(w *World) {
		w.At(25*time.Second, func() { admin = w.haproxies[0].backend("web").server(slot).admin })
		w.At(0, func() { w.Load("web", 60) })
		w.At(time.Second, func() { w.Scale("web", 3) })
		w.At(10*time.Second, func() { w.Load("web", 20); w.Scale("web", 1) })
		for d := 10 * time.Second; d < 15*time.Second; d += 50 * time.Millisecond {
			w.At(d, func() {
				if slot != "" {
					return
				}
				for _, s := range w.haproxies[0].backend("web").servers {
					if s.admin == runtimeapi.AdminDrain {
						slot = s.name
						w.DiskFull(2 * time.Second)
						w.Drain("web", slot)
						w.after(time.Second, func() { w.KillContainer("web", slot) })
						return
					}
				}
			})
		}
	}})
	if slot == "" {
		t.Fatal("no slot was draining to scale down: the scenario did not happen")
	}
	if admin == runtimeapi.AdminDrain {
		t.Errorf("web/%s still drained after slotscaler's drain and the operator's failed one", slot)
	}
}

// An operator sets a starting slot to maint right after its first check
// failed for good, before the start is undone: the maint is theirs, and the
// slot stays out until they enable it ("operator intents kept"; sim seed
// 252 with the tick's batch: the undo took the maint for its own, removed
// the container and filled the slot again).
func TestScenarioOperatorMaintAsStartFails(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		maints := 0
		runScenario(t, Options{Dynamic: dynamic, OnEvent: func(w *World, e scaler.Event) {
			if e.Kind == scaler.EventStartFailed && e.Reason == "first health check" && maints == 0 {
				maints++
				w.OnSocket(0, "web", e.Slot, "maint")
			}
		}, Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 2) })
			w.At(5*time.Second, func() { w.Rollout("web", "web:bad") })
			w.At(15*time.Second, func() { w.Scale("web", 3) }) // the lowest free slot is the maint one, unless held
		}})
		if maints == 0 {
			t.Errorf("dynamic %v: no start failed its first check", dynamic)
		}
	}
}

// A start's first check fails, and slotscaler is killed while the undo's
// maint is on its way: the draining intent it saved for that maint beside
// the bind's is all the next run knows. An operator drains the slot while
// slotscaler is down: the drain is theirs, as an undo only ever sets maint
// ("operator intents kept"; sim seed 4569 took it for its own, retired the
// slot and filled it again).
func TestScenarioOperatorDrainAfterUndoCutShort(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		var slot string
		runScenario(t, Options{Dynamic: dynamic, OnEvent: func(w *World, e scaler.Event) {
			if e.Kind != scaler.EventStartFailed || e.Reason != "first health check" || slot != "" {
				return
			}
			slot = e.Slot
			w.StopBefore(func(server, what string) bool {
				if server != slot || what != "state maint" {
					return false
				}
				w.after(100*time.Millisecond, func() { w.OnSocket(0, "web", slot, "drain") })
				w.after(time.Second, w.StartSlotscaler)
				return true
			})
		}, Script: func(w *World) {
			w.At(time.Second, func() { w.Scale("web", 2) })
			w.At(5*time.Second, func() { w.Rollout("web", "web:bad") })
			w.At(20*time.Second, func() { w.Scale("web", 5) }) // every free slot filled: the drained one too, unless theirs
		}})
		if slot == "" {
			t.Errorf("dynamic %v: no start failed its first check", dynamic)
		}
	}
}

// A bind got to weight 100% and slotscaler was killed before saving it
// done; its container then fails its checks. The next run reads the slot
// at weight 100%, and an operator weights it 0 on the socket: that weight 0
// is theirs, the bind's own was behind it, so the slot is neither retired
// nor filled again ("operator intents kept"; sim seed 4825 kept the bind's
// intent while the slot was down, and took the weight 0 for the bind's).
func TestScenarioOperatorWeight0AfterBindCutShort(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		var slot string
		made := false
		runScenario(t, Options{Dynamic: dynamic, Script: func(w *World) {
			w.At(5*time.Second, func() {
				// Killed, and back once the slot is down (not serving: the
				// bind's intent is not ended by that).
				w.KillAfter(func(server, what string) bool {
					if what != "weight 100%" || slot != "" {
						return false
					}
					slot = server
					w.after(50*time.Microsecond, w.StopSlotscaler)
					w.after(time.Millisecond, func() { w.SickContainer("web", server) })
					w.after(3*time.Second, w.StartSlotscaler)
					return false
				})
				w.Scale("web", 3)
			})
			w.At(15*time.Second, func() { w.Scale("web", 5) }) // every free slot filled: the weighted one too, unless theirs
			// Once the next run has read the slot: the operator's weight 0.
			for d := 5 * time.Second; d < 15*time.Second; d += 20 * time.Millisecond {
				w.At(d, func() {
					if made || slot == "" || w.loop == nil || !w.seenSince(w.proc, w.haproxies[0], "web", w.bootedAt.Add(time.Millisecond)) {
						return
					}
					made = true
					w.after(100*time.Millisecond, func() { w.OnSocket(0, "web", slot, "weight0") })
				})
			}
		}})
		if !made {
			t.Errorf("dynamic %v: no bind was cut short after its weight 100%%, or the next run never read its slot", dynamic)
		}
	}
}

// `lbctl scale` lands while a tick's scale-down is on its way (its drains
// queued for the tick's end): the pin waits for the tick, as an lbctl drain
// does, so the serving floor of a pin that returned is never broken by a
// drain decided before it (sim seed 2388, once the tick's changes were
// batched).
func TestScenarioPinDuringScaleDown(t *testing.T) {
	// The window is a few simulated milliseconds wide: tried over a few
	// interleavings (seeds of this script).
	pins := 0
	for seed := uint64(1); seed <= 20; seed++ {
		pinned := false
		w, err := New(Options{Seed: seed, Instances: 1, Hosts: 1, Faults: 30 * time.Second, Quiet: 20 * time.Second,
			OnEvent: func(w *World, e scaler.Event) {
				if e.Kind == scaler.EventScaleDown && !pinned {
					pinned = true
					w.Scale("web", 4)
				}
			}, Script: func(w *World) {
				w.At(time.Second, func() { w.Scale("web", 4) })
				w.At(10*time.Second, func() { w.Resume("web") }) // load 0: the tick scales down to min
			}})
		if err != nil {
			t.Fatal(err)
		}
		if f := w.Run(); f != nil {
			t.Fatal(f)
		}
		if pinned {
			pins++
		}
	}
	if pins == 0 {
		t.Error("no scale-down to pin during")
	}
}

// A bind got to state ready on both instances, its address saved, and
// slotscaler was killed before the weight 100%. The next run, before its
// first tick, drains the slot for an operator (lbctl), who then sets it to
// maint on the second instance's socket: their maint wins on both. The
// restored bind intent had made the merge take that maint for the bind's
// step not taken yet and bring the second instance back to the drain
// ("operator intents kept"; sim seed 5490).
func TestScenarioOperatorMaintAfterDrainOfReadiedBind(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		var slot string
		maint := false
		runScenario(t, Options{Instances: 2, Dynamic: dynamic, OnEvent: func(w *World, e scaler.Event) {
			if e.Kind == scaler.EventControl && e.Reason == "operator_drain" && e.Slot == slot && !maint {
				maint = true
				w.OnSocket(1, "web", slot, "maint")
			}
		}, Script: func(w *World) {
			readied := map[string]int{}
			w.At(12*time.Second, func() {
				w.KillAfter(func(server, what string) bool {
					if what != "state ready" || slot != "" {
						return false
					}
					if readied[server]++; readied[server] < 2 {
						w.SickContainer("web", server) // no weight 100% before the stop
						return false
					}
					slot = server
					w.after(200*time.Millisecond, w.StopSlotscaler) // the bind's address saved first
					return false
				})
				w.Scale("web", 3)
			})
			// Up at 20.3 s, ticking from 21 s: drained before.
			w.At(20*time.Second+300*time.Millisecond, w.StartSlotscaler)
			w.At(20*time.Second+400*time.Millisecond, func() { w.Drain("web", slot) })
		}})
		if !maint {
			t.Errorf("dynamic %v: no bind cut short after its state ready, or no drain of it", dynamic)
		}
	}
}

// slotscaler is down; an operator sets the one bound slot to maint on the
// second instance's socket, and then the first instance restarts: both
// instances have every slot in maint, the first at the placeholder, so the
// next run sees no restart. The maint at the slot's last bound address is
// the operator's: it is kept on both, not followed to the placeholder and
// taken for a slot the restart lost, whose container is bound again
// ("operator intents kept"; sim seed 3996).
func TestScenarioOperatorMaintThenOtherInstanceRestartsWhileDown(t *testing.T) {
	for _, dynamic := range []bool{false, true} {
		runScenario(t, Options{Instances: 2, Dynamic: dynamic, Script: func(w *World) {
			w.At(8*time.Second, w.StopSlotscaler)
			w.At(8*time.Second+100*time.Millisecond, func() {
				w.OnSocket(1, "web", "slot1", "maint")
				if w.operator["web/slot1"] != "maint" {
					t.Errorf("dynamic %v: the operator's maint of web/slot1 was not made: %v", dynamic, w.operator)
				}
			})
			w.At(9*time.Second, func() { w.RestartHAProxy(0) })
			w.At(10*time.Second, w.StartSlotscaler)
		}})
	}
}

// A rebuild of a restarted instance cut short right after it re-added a
// slot (in maint, at its container's address), the rebuild's note in
// state_dir lost (disk full), and slotscaler started again: the half-built
// instance's maint must not be copied onto the instance that serves the
// slot, nor held as an operator's (sim seed 622 once did both). With one
// serving slot, the one re-added, no slot is lost to tell the restart by
// (review: "serving floor" broke, slot1 set to maint on the serving
// instance).
func TestScenarioHalfRebuiltInstanceAfterRestart(t *testing.T) {
	for _, load := range []int{30, 0} {
		runScenario(t, Options{Instances: 2, Dynamic: true, Script: func(w *World) {
			w.At(time.Second, func() { w.Load("web", load) })
			w.At(20*time.Second, w.StopSlotscaler)
			w.At(20*time.Second+100*time.Millisecond, func() {
				w.RestartHAProxy(1)
				// What the cut-short rebuild had done: "add server" of
				// slot1, which starts in maint, at where haproxy1 serves it.
				served := w.haproxies[0].backend("web").server("slot1")
				if served == nil || served.admin != runtimeapi.AdminReady {
					t.Fatalf("slot1 does not serve on haproxy1: %+v", served)
				}
				b := w.haproxies[1].backend("web")
				b.servers = append(b.servers, &server{name: "slot1", addr: served.addr, port: served.port, admin: runtimeapi.AdminMaint, weight: 100, up: true, status: "INI", dynamic: true, lastChange: w.sched.Now()})
				w.trace("scenario: haproxy2 half rebuilt (slot1 added, in maint)")
			})
			w.At(21*time.Second, w.StartSlotscaler)
		}})
	}
}

// A rebuild of a restarted instance completes, but state_dir cannot say
// so (disk full from its first change on); slotscaler stops, an operator
// drains a slot on that instance more than 10 s after its restart, and
// slotscaler starts again: the rebuild state_dir still lists as under way
// is redone, over the operator's drain made before the new run first read
// the instance (a README limit; the checker's rebuildSaved exemption).
func TestScenarioRebuildEndNotSaved(t *testing.T) {
	runScenario(t, Options{Instances: 2, Faults: time.Minute, Script: func(w *World) { // no restart of slotscaler but the script's
		w.At(time.Second, func() { w.Load("web", 30) })
		w.At(20*time.Second, func() {
			w.RestartHAProxy(1)
			w.killOn = func(_, what string) bool {
				if w.sched.label() != "tick" || what != "set addr" {
					return false
				}
				w.killOn = nil
				w.DiskFull(40 * time.Second)
				w.trace("scenario: disk full from the rebuild's first change")
				return true
			}
		})
		w.At(25*time.Second, w.StopSlotscaler)
		w.At(35*time.Second, func() {
			w.OnSocket(1, "web", "slot1", "drain")
			if w.operator["web/slot1"] != "drain" {
				t.Errorf("the operator's drain on haproxy2 was not made: %v", w.operator)
			}
		})
		w.At(36*time.Second, w.StartSlotscaler)
	}})
}
