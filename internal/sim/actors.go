package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
)

// actors schedules, until end, what the world does to slotscaler: load
// that moves, operators on the sockets and with lbctl, rollouts, reloads,
// and faults.
func (w *world) actors(end time.Time) {
	for _, h := range w.haproxies {
		h.cutP, h.junkP, h.lostP, h.slowP, h.downP = 0.01, 0.005, 0.01, 0.005, 0.005
	}
	for _, h := range w.hosts {
		h.failP = 0.05
	}
	w.store.failP = 0.01
	w.repeat(end, 2*time.Second, 8*time.Second, w.moveLoad)
	w.repeat(end, 8*time.Second, 30*time.Second, w.operatorOnSocket)
	w.repeat(end, 5*time.Second, 20*time.Second, w.operatorWithLbctl)
	w.repeat(end, 15*time.Second, 40*time.Second, w.rollout)
	w.repeat(end, 20*time.Second, 60*time.Second, w.reload)
	w.repeat(end, 20*time.Second, 60*time.Second, w.restartHAProxy)
	w.repeat(end, 10*time.Second, 40*time.Second, w.hostOutage)
	w.repeat(end, 8*time.Second, 25*time.Second, w.containerFault)
	w.repeat(end, 10*time.Second, 45*time.Second, w.crash)
}

// repeat runs f at random gaps between lo and hi until end.
func (w *world) repeat(end time.Time, lo, hi time.Duration, f func()) {
	var again func()
	again = func() {
		if w.sched.Now().After(end) {
			return
		}
		f()
		w.after(w.sched.between(lo, hi), again)
	}
	w.after(w.sched.between(lo, hi), again)
}

// Load sets the concurrent sessions wanted on backend.
func (w *World) Load(backend string, sessions int) {
	w.load[backend] = sessions
	w.spread()
	w.trace("load on %s: %d sessions", backend, sessions)
}

func (w *world) moveLoad() {
	(&World{w}).Load("web", w.sched.intn(60))
}

// randomSlot picks a slot of backend on instance h that is not in maint.
func (w *world) randomSlot(h *haproxy, backend string) *server {
	b := h.backend(backend)
	var live []*server
	for _, s := range b.servers {
		if s.admin != runtimeapi.AdminMaint {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[w.sched.intn(len(live))]
}

// OnSocket is an operator's command on one instance's runtime socket:
// "drain", "maint" or "weight0".
func (w *World) OnSocket(h int, backend, slot, what string) {
	hp := w.haproxies[h]
	s := hp.backend(backend).server(slot)
	if s == nil || hp.fresh || w.table(hp) != w.table(w.haproxies[0]) {
		// An operator acts on an instance in step with the first, or on
		// the first whatever the others show: one slotscaler is still
		// rebuilding after a restart may be rebuilt over their command
		// (README). The first may have refused a change the others took
		// (the limit of seed 3118).
		return
	}
	// An operator may take their own drain further, to maint.
	ownDrain := what == "maint" && s.admin == runtimeapi.AdminDrain && w.operator[backend+"/"+slot] == "drain"
	if c, _ := w.containerAt(s.addr, s.port); s.admin != runtimeapi.AdminReady && !ownDrain || what == "weight0" && s.weight == 0 || what == "maint" && c == nil {
		// Nothing slotscaler could tell apart from its own drain,
		// retirement or weight-0 bind, or from a free slot: absorbed into
		// them (README).
		return
	}
	if key := backend + "/" + slot; what == "maint" && w.bindUnsaved(key) && (w.loop == nil || !w.seenSince(w.proc, hp, backend, w.bootedAt)) {
		// A slot a killed run's bind got to ready without saving it: until
		// the next run has read it, a maint there is the bind's own, cut
		// short, to that run (README).
		hp.setState(s, runtimeapi.AdminMaint, w.sched.Now())
		w.trace("operator on %s's socket: maint %s, taken for the maint of a bind cut short (its progress not saved)", hp.name, key)
		return
	}
	w.earlier[backend+"/"+slot] = w.operator[backend+"/"+slot]
	w.operator[backend+"/"+slot] = what
	w.touched[backend+"/"+slot] = true
	w.socketAt[backend+"/"+slot] = socketMark{hp, w.sched.Now(), w.loop == nil || !w.seenSince(w.proc, hp, backend, w.bootedAt)}
	switch what {
	case "drain":
		hp.setState(s, runtimeapi.AdminDrain, w.sched.Now())
	case "maint":
		hp.setState(s, runtimeapi.AdminMaint, w.sched.Now())
	case "weight0":
		s.weight = 0
	}
	w.trace("operator on %s's socket: %s %s/%s", hp.name, what, backend, slot)
}

func (w *world) operatorOnSocket() {
	h := w.sched.intn(len(w.haproxies))
	if s := w.randomSlot(w.haproxies[h], "web"); s != nil {
		(&World{w}).OnSocket(h, "web", s.name, []string{"drain", "maint", "weight0"}[w.sched.intn(3)])
	}
}

// api calls the running slotscaler as lbctl would, in a goroutine of its
// own, and hands the result to done (in that goroutine).
func (w *world) api(what string, call func(*scaler.Loop) error, done func(error)) {
	if w.loop == nil {
		return
	}
	loop, proc := w.loop, w.proc
	w.trace("lbctl %s", what)
	end := func(err error) {
		w.trace("lbctl %s: %v", what, err)
		if done != nil {
			done(err)
		}
	}
	// Killed before the call began, lbctl fails all the same: its end
	// still settles what the call noted (an lbctl drain or enable under
	// way, left counted for good once: review).
	w.sched.spawn(proc, "api", func() { end(call(loop)) }, func() { end(errKilled) })
}

// holds reports whether an operator's intent on the slot ("drain",
// "maint", "weight0") is in force on some instance other than except (a
// restart may have lost it).
func (w *world) holds(backend, slot, intent string, except *haproxy) bool {
	for _, h := range w.haproxies {
		if s := h.backend(backend).server(slot); h != except && s != nil &&
			(intent == "drain" && s.admin == runtimeapi.AdminDrain || intent == "maint" && s.admin == runtimeapi.AdminMaint || intent == "weight0" && s.weight == 0) {
			return true
		}
	}
	return false
}

// Drain, Enable, Scale, Pause, Resume and Rollout are lbctl's commands.
func (w *World) Drain(backend, slot string) {
	if w.loop == nil {
		return // slotscaler is down: lbctl fails at once
	}
	key := backend + "/" + slot
	was, had := w.operator[key]
	w.operator[key] = "drain"
	w.touched[key] = true
	w.lbctlDrains[key]++
	w.lbctlLanded[key] = false
	w.api("drain "+key, func(l *scaler.Loop) error { return l.DrainSlot(context.Background(), backend, slot) }, func(err error) {
		w.lbctlDrains[key]--
		// It failed (the operator saw an error), and took nowhere or left a
		// drain slotscaler's saved state lists as its own (a drain of its own
		// stays its own): what was theirs before stays.
		if err != nil && w.operator[key] == "drain" && (!w.holds(backend, slot, "drain", nil) || w.savedIntents("draining")[key]) {
			if had && w.holds(backend, slot, was, nil) {
				w.operator[key] = was
			} else {
				delete(w.operator, key)
			}
		}
	})
}

func (w *World) Enable(backend, slot string) {
	if w.loop == nil {
		return // slotscaler is down: lbctl fails at once
	}
	key := backend + "/" + slot
	was := w.operator[key]
	w.touched[key] = true
	delete(w.operator, key) // before the call: its own "ready" is the operator's
	w.lbctlEnables[key]++
	w.api("enable "+key, func(l *scaler.Loop) error { return l.EnableSlot(context.Background(), backend, slot) }, func(err error) {
		w.lbctlEnables[key]--
		// Failed, what it did not undo is still theirs; unsaved, it is done
		// in memory and any later save of slotscaler's keeps it.
		if err != nil && !errors.Is(err, scaler.ErrNotSaved) && w.holds(backend, slot, was, nil) {
			w.operator[key] = was
		}
	})
}

func (w *World) Scale(service string, n int) {
	if w.loop == nil {
		return // slotscaler is down: lbctl fails at once
	}
	old, pinned := w.pins[service]
	if !pinned {
		old = scaler.LimitsAt(w.service(service), w.sched.Now()).Min
	}
	w.pins[service] = min(old, n) // the lower of the old and new target while it changes
	w.api(fmt.Sprintf("scale %s %d", service, n), func(l *scaler.Loop) error { return l.Pin(service, n) }, func(err error) {
		switch {
		case err == nil:
			w.pins[service] = n
		case errors.Is(err, scaler.ErrNotSaved):
			// In force until a restart brings back what was saved: the
			// lower of both stays the floor.
		case pinned:
			w.pins[service] = old
		default:
			delete(w.pins, service)
		}
	})
}

func (w *World) Pause(service string) {
	if w.loop == nil {
		return // slotscaler is down: lbctl fails at once
	}
	// A pause holds the count it finds: a pin at that count, once known.
	w.api("pause "+service, func(l *scaler.Loop) error {
		err := l.Pause(service)
		if st, serr := l.Service(service); (err == nil || errors.Is(err, scaler.ErrNotSaved)) && serr == nil && st.Control == scaler.ControlPaused {
			w.pins[service] = st.Pinned
		}
		return err
	}, nil)
}

func (w *World) Resume(service string) {
	w.api("resume "+service, func(l *scaler.Loop) error { return l.Resume(service) }, func(err error) {
		if err == nil || errors.Is(err, scaler.ErrNotSaved) { // unsaved, it holds until a restart
			delete(w.pins, service)
		}
	})
}

func (w *World) Rollout(service, image string) {
	if w.loop == nil {
		return // slotscaler is down: lbctl fails at once
	}
	w.rolling[service] = true
	proc := w.proc
	w.rolloutAsked[service] = proc
	w.api("rollout "+service+" "+image, func(l *scaler.Loop) error {
		r, err := l.StartRollout(service, image, time.Minute)
		if err == nil {
			w.rolloutHeld[service] = r.Replicas // the count it holds, pinned or not
		}
		return err
	}, func(error) {
		if w.rolloutAsked[service] == proc {
			delete(w.rolloutAsked, service)
		}
	})
}

func (w *world) operatorWithLbctl() {
	ww := &World{w}
	switch w.sched.intn(6) {
	case 0:
		for _, key := range slices.Sorted(maps.Keys(w.operator)) {
			if w.sched.chance(0.5) {
				backend, slot, _ := strings.Cut(key, "/")
				ww.Enable(backend, slot)
			}
		}
	case 1:
		if s := w.randomSlot(w.haproxies[0], "web"); s != nil {
			ww.Drain("web", s.name)
		}
	case 2, 3:
		ww.Scale("web", w.sched.intn(6))
	case 4:
		ww.Pause("web")
	default:
		ww.Resume("web")
	}
}

func (w *world) rollout() {
	if w.loop == nil {
		return
	}
	if r, err := w.loop.RolloutStatus("web"); err == nil && (r.State == scaler.RolloutRunning || r.State == scaler.RolloutRollingBack) {
		return
	}
	(&World{w}).Rollout("web", []string{"web:2", "web:3", "web:bad", "web:missing"}[w.sched.intn(4)])
}

// pollRollouts clears the world's note of a rollout once it ended.
func (w *world) pollRollouts() {
	if w.loop == nil {
		return
	}
	for svc := range w.rolling {
		if w.rolloutAsked[svc] == w.proc {
			// lbctl rollout waits for the tick in progress: not begun yet
			// is not ended (the note dropped meanwhile made the rollout's
			// first drain break the floor of a pin: seed 509 and 59 more
			// once the call waited).
			continue
		}
		r, err := w.loop.RolloutStatus(svc)
		if errors.Is(err, scaler.ErrUnknown) || err == nil && r.State != scaler.RolloutRunning && r.State != scaler.RolloutRollingBack {
			delete(w.rolling, svc)
		}
	}
}

func (w *world) reload() {
	if w.loop == nil {
		return
	}
	next, err := w.config(1 + w.sched.intn(2))
	if err != nil {
		w.violate("no panic", "sim config: %v", err)
		return
	}
	if err := w.loop.Reload(next); err != nil {
		w.trace("reload refused: %v", err)
		return
	}
	w.prevCfg, w.cfg = w.cfg, next
	w.trace("config reloaded: min_replicas %d", next.Services[0].MinReplicas)
}

func (w *world) restartHAProxy() { (&World{w}).RestartHAProxy(w.sched.intn(len(w.haproxies))) }

func (w *world) hostOutage() {
	i := w.sched.intn(len(w.hosts))
	(&World{w}).HostDown(i, w.sched.between(time.Second, 10*time.Second))
}

func (w *world) containerFault() {
	h := w.hosts[w.sched.intn(len(w.hosts))]
	if len(h.containers) == 0 {
		return
	}
	c := h.containers[w.sched.intn(len(h.containers))]
	if w.sched.chance(0.5) {
		w.die(h, c)
	} else {
		c.healthy = false
		w.trace("docker %s: %s turned sick", h.name, c.ID)
	}
	w.spread()
}

// At runs f at d into the run (scenarios).
func (w *World) At(d time.Duration, f func()) { w.sched.at(w.begin.Add(d), f) }

// RestartHAProxy restarts instance i.
func (w *World) RestartHAProxy(i int) {
	h := w.haproxies[i]
	h.boot(w.sched.Now())
	for key := range w.missed {
		if strings.HasPrefix(key, h.name+"|") {
			delete(w.missed, key) // rebuilt whole now
		}
	}
	// It forgot the operators' runtime changes too: those no other
	// instance holds are gone (the others' are rebuilt onto it).
	for _, key := range slices.Sorted(maps.Keys(w.operator)) {
		backend, slot, _ := strings.Cut(key, "/")
		if w.holds(backend, slot, w.operator[key], h) {
			continue
		}
		if w.lbctlDrains[key] > 0 {
			// An lbctl drain under way still lands, or fails and its end
			// settles the intent: theirs is that drain. A command on this
			// instance's socket made over it is lost with the rest (sim
			// seed 5747: a lost weight 0 was kept, and the re-bind's
			// weight 100% was taken for undoing it).
			w.operator[key] = "drain"
			continue
		}
		// An earlier command of theirs another instance still holds (the
		// lost one was made over it) is theirs still. Only one they made:
		// a weight 0 or maint another instance has may be slotscaler's own
		// (a bind under way: sim seed 1967 took its weight 0 for theirs).
		if e := w.earlier[key]; e != "" && w.holds(backend, slot, e, h) {
			w.operator[key] = e
			continue
		}
		if m, ok := w.socketAt[key]; ok && m.on == h && w.seenSince(w.proc, h, backend, m.at) {
			// slotscaler read it before the restart: its copy to the other
			// instances may still be under way (it becomes theirs there).
			w.copying[key] = w.operator[key]
		}
		delete(w.operator, key)
	}
	w.spread()
	w.trace("%s restarted (pid %d): runtime state lost", h.name, h.pid)
}

// HostDown makes host i stop answering for d.
func (w *World) HostDown(i int, d time.Duration) {
	h := w.hosts[i]
	h.down = true
	w.trace("docker %s stops answering", h.name)
	w.after(d, func() { h.down = false; w.trace("docker %s answers again", h.name) })
}

// CutReplies makes every backend read of instance i come back cut short
// at a row boundary, for d (scenarios).
func (w *World) CutReplies(i int, d time.Duration) {
	h := w.haproxies[i]
	w.faults, h.cutP = true, 1
	w.after(d, func() { w.faults, h.cutP = false, 0 })
}

// KillSlotscaler kills the slotscaler process; it restarts from state_dir
// 0.1–3 s later (scenarios).
func (w *World) KillSlotscaler() { w.crash() }

// KillContainer makes the container a slot of backend points at on the
// first instance die (scenarios).
func (w *World) KillContainer(backend, slot string) {
	if h, c := w.containerOf(backend, slot); c != nil {
		w.die(h, c)
		w.spread()
	}
}

// containerOf is the running container a slot of backend points at on
// the first instance, and its host; nil if none.
func (w *World) containerOf(backend, slot string) (*host, *container) {
	s := w.haproxies[0].backend(backend).server(slot)
	if s == nil {
		return nil, nil
	}
	for _, h := range w.hosts {
		for _, c := range h.containers {
			if c.Running && c.Port == s.port && h.addr == s.addr {
				return h, c
			}
		}
	}
	return nil, nil
}

// DiskFull makes every write of state_dir fail for d (scenarios).
func (w *World) DiskFull(d time.Duration) {
	w.faults, w.store.failP = true, 1
	w.after(d, func() { w.faults, w.store.failP = false, 0 })
}

// KillAfter kills slotscaler right after the first change of an
// operation's that match accepts (scenarios).
func (w *World) KillAfter(match func(server, what string) bool) {
	w.killOn = func(server, what string) bool {
		if w.sched.label() == "tick" || !match(server, what) {
			return false
		}
		w.killOn = nil
		w.trace("scenario: kill right after %s of %s", what, server)
		w.after(50*time.Microsecond, w.crash)
		return true
	}
}

// StopBefore kills slotscaler while the first change of an operation's
// that match accepts is on its way (sent, never applied), and keeps it
// down until StartSlotscaler (scenarios).
func (w *World) StopBefore(match func(server, what string) bool) { w.stopBefore = match }

// SickContainer makes the container a slot of backend points at on the
// first instance fail its checks, still running (scenarios).
func (w *World) SickContainer(backend, slot string) {
	if h, c := w.containerOf(backend, slot); c != nil {
		c.healthy = false
		w.trace("docker %s: %s turned sick", h.name, c.ID)
	}
}

// StopSlotscaler kills slotscaler and keeps it down until StartSlotscaler
// (scenarios).
func (w *World) StopSlotscaler() { w.stop("stopped") }

// StartSlotscaler starts slotscaler from state_dir (scenarios).
func (w *World) StartSlotscaler() { w.boot() }

// ReloadHAProxy reloads instance i keeping its runtime state, as a reload
// with the server state file does: a new process, the same slots
// (scenarios).
func (w *World) ReloadHAProxy(i int) {
	h := w.haproxies[i]
	h.pid++
	h.start = w.sched.Now()
	w.trace("%s reloaded with its server state (pid %d)", h.name, h.pid)
}

// Loop is the slotscaler process running now (scenarios).
func (w *World) Loop() *scaler.Loop { return w.loop }

// SlowStarts makes every container start on every host take d (scenarios).
func (w *World) SlowStarts(d time.Duration) {
	for _, h := range w.hosts {
		h.slowStart = d
	}
}
