package sim

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// The invariants, by the names failures carry:
//
//   - "serving floor": a change of slotscaler's never leaves an instance
//     with fewer serving slots than the lower of what served before it
//     and the target in force (a pin, else the min of the current and the
//     previous config; one less during a rollout, which may drain first).
//   - "no removal under traffic": no container is removed while any
//     instance has a slot not in maint pointing at it.
//   - "operator intents kept": a slot an operator drained, set to maint
//     or weighted 0 (on a socket or with lbctl) is not made ready or
//     weighted back by slotscaler until the operator enables it.
//   - "state_dir parses", "intents never go back in time": every save
//     parses and carries a newer version than the one it replaces
//     (store.go).
//   - "no action on incomplete data": the tick does not drain, maint or
//     delete a slot (one that an instance's checks do not find down) whose
//     container's host did not answer its listing, or whose backend read
//     (the tick's observation, not a later re-read) came back cut short.
//   - "no panic".
//   - "no false hold": after the faults stop, no slot that no operator
//     ever touched is kept out as an operator's.
//   - "converged": after the faults stop, within Options.Quiet, every
//     instance shows the same slot table, every container is bound by a
//     slot every instance has out of maint, and every slot out of maint
//     points at a running container.

// servingOn counts the slots of b (on instance h) that take traffic and
// point at a running container, leaving out those an instance's checks
// found down: what slotscaler can know (HAProxy's checks, not the truth,
// say whether the app answers), and replacing a slot found down is its
// job. A check that failed, or an operator's command on the socket, after
// process proc last read that instance, or a container that died after it
// last listed its host, is not known to it yet: that slot still counts.
func (w *world) servingOn(h *haproxy, b *backend, proc int) int {
	n := 0
	for _, s := range b.servers {
		c, _ := w.containerAt(s.addr, s.port)
		if c == nil {
			c = w.diedUnseen(s.addr, s.port, proc)
		}
		// An operator's command on it after proc's last read of h is not
		// known to slotscaler either: it still serves as far as it knows.
		m, bySocket := w.socketAt[b.name+"/"+s.name]
		unseen := bySocket && m.on == h && !w.seenSince(proc, h, b.name, m.at)
		if (unseen || s.admin == runtimeapi.AdminReady && s.weight > 0) && w.upAsSeen(h, b.name, s, proc) && c != nil && !w.downAnywhere(b.name, s.name, proc) {
			n++
		}
	}
	return n
}

func (w *world) downAnywhere(backend, slot string, proc int) bool {
	for _, h := range w.haproxies {
		if s := h.backend(backend).server(slot); s != nil && s.admin != runtimeapi.AdminMaint && !w.upAsSeen(h, backend, s, proc) {
			return true
		}
	}
	return false
}

// upAsSeen reports whether s is up on h, or went down after process
// proc's last read of h.
func (w *world) upAsSeen(h *haproxy, backend string, s *server, proc int) bool {
	if s.up {
		return true
	}
	r, ok := w.readAt[h.name+"/"+backend]
	return ok && r.proc == proc && s.lastChange.After(r.at)
}

// target is the replica count the floor protects for backend.
func (w *world) target(backend string) int {
	now := w.sched.Now()
	t := min(scaler.LimitsAt(w.service(backend), now).Min, scaler.LimitsAt(w.prevService(backend), now).Min)
	if pin, ok := w.pins[backend]; ok {
		t = pin
	}
	if w.rolling[backend] {
		if held, ok := w.rolloutHeld[backend]; ok {
			t = min(t, held)
		}
		t--
	}
	return t
}

func (w *world) prevService(backend string) config.Service {
	for _, s := range w.prevCfg.Services {
		if s.Backend == backend {
			return s
		}
	}
	return w.service(backend)
}

// rebuildWindow is how soon after an instance's restart an operator's
// command on it may still be rebuilt over: slotscaler rebuilds it from the
// others until one pass in step completes.
const rebuildWindow = 10 * time.Second

// changed checks a server command of proc's that an instance applied;
// before is what served on it before, sent the last whole read of that
// instance's backend when the command was sent.
func (w *world) changed(proc int, h *haproxy, b *backend, server, what string, before int, target *container, sent readMark) {
	w.trace("%s %s/%s: %s (process %d, %s)", h.name, b.name, server, what, proc, w.sched.label())
	if w.sched.label() == "api" && what == "state drain" {
		w.lbctlLanded[b.name+"/"+server] = true
	}
	if w.sched.label() == "op" {
		switch what {
		case "set addr", "add server": // a bind begins
			delete(w.readyAt, b.name+"/"+server)
		case "state ready":
			w.readyAt[b.name+"/"+server] = w.sched.Now()
		}
	}
	if w.killOn != nil {
		w.killOn(server, what)
	}
	key := b.name + "/" + server
	if was, ok := w.copying[key]; ok {
		// slotscaler copying an operator's command it read before their
		// instance restarted: theirs everywhere. Anything else ends it.
		delete(w.copying, key)
		if what == "state "+was && w.sched.label() == "tick" {
			w.operator[key] = was
		}
	}
	intent := w.operator[key]
	undoes := intent == "drain" && (what == "state ready" || what == "state maint" || what == "del server") ||
		intent == "maint" && (what == "state ready" || what == "state drain" || what == "del server") ||
		intent == "weight0" && (strings.HasPrefix(what, "weight") && what != "weight 0%" || what == "state maint" || what == "del server")
	// A command of slotscaler's that takes the slot out of traffic at least
	// as far as the operator's did: theirs is subsumed in it.
	same := what == "state "+intent || intent == "drain" && what == "state maint" ||
		intent == "weight0" && (what == "weight 0%" || what == "state drain" || what == "state maint")
	m, bySocket := w.socketAt[key]
	// Whether slotscaler read the operator's command before deciding. On
	// their instance, only a read before this command was sent counts: one
	// while it was on its way cannot tell their command from this one
	// landing (sim seed 4158: an undo's maint, slow to land, and the
	// operator's maint meanwhile, which another operation's read saw).
	seen := bySocket && w.seenSince(proc, m.on, b.name, m.at)
	if bySocket && m.on == h {
		seen = sent.proc == proc && !sent.at.Before(m.at)
	}
	switch {
	case h.fresh:
		// A restarted instance being rebuilt, from a read that may predate
		// the operator's command: the next read follows their command.
	case w.sched.label() == "api" && (what == "state drain" && w.lbctlDrains[key] > 0 || (what == "state ready" || what == "weight 100%") && w.lbctlEnables[key] > 0):
		// An operator's own lbctl drain or enable racing their command on
		// a socket: theirs to sort out. An enable that lands after their
		// drain on a socket is the later command: the slot is theirs no
		// more (seed 7373: kept, its refill passed for undoing it). A
		// change an lbctl command's read made to bring an instance in step
		// is slotscaler's, checked below (seeds 9 and 1748: taken for the
		// operator's, its rebuild over their maint kept the maint theirs).
		if what != "state drain" && undoes {
			delete(w.operator, key)
			intent = ""
		}
	case !undoes && !same:
	case intent == "drain" && w.lbctlDrains[key] > 0 && !w.lbctlLanded[key] && w.sched.label() == "tick":
		// The operator's lbctl drain waits for this tick (tickMu): it lands
		// after the tick's change, not under it (seed 3469).
	case bySocket && !seen:
		// The operator's command landed after slotscaler's last read of
		// their instance (before this command was sent, there): a change
		// decided before it could be seen. On
		// that instance the Runtime API has no compare-and-set, the later
		// command wins and the operator's is overwritten, or absorbed
		// into slotscaler's same one (README); on another instance,
		// theirs still stands where they made it.
		if m.on == h {
			w.trace("operator's %s of %s on %s raced process %d's %s: overwritten", intent, key, h.name, proc, what)
			intent = w.overwritten(key)
		}
	case bySocket && m.on == h && w.missedBefore(proc, h, b.name, server, what, m.at) && w.elsewhere(h, b.name, server, what):
		// Their instance had refused slotscaler's change of the slot,
		// which another instance took, and their command came before the
		// read that makes it good there: overwritten (or subsumed), as any
		// command racing slotscaler's change of the slot (README; seed
		// 3118: their drain, kept as theirs under the maint made good
		// over it, made the slot's refill pass for undoing it).
		w.trace("operator's %s of %s on %s, which refused process %d's change of it, made over by its %s", intent, key, h.name, proc, what)
		intent = w.overwritten(key)
	case same:
	case intent == "weight0" && what == "weight 100%" && w.bindSaved[key] == proc && bySocket && (m.at.Before(w.bootedAt) || m.unread):
		// This process started with the slot's bind saved as under way (the
		// run before was killed between the bind's weight 100% and saving
		// it done): a weight 0 made before it read the slot is the bind's
		// own to lift (README; seed 822 made it after the start, before
		// the first read).
		w.trace("operator's weight 0 of %s taken by process %d for the weight 0 of its saved bind", key, proc)
		delete(w.operator, key)
		intent = ""
	case w.elsewhere(h, b.name, server, what):
		// Brought in step with another instance: no decision of its own.
		// On the very instance the operator used, within rebuildWindow of
		// its restart, slotscaler may still be rebuilding it from the
		// others: their command is rebuilt over (README).
		// Later than that, bringing their instance in step with the
		// others over their command undoes it.
		switch {
		case bySocket && m.on == h && w.rebuildSaved[h.name+"/"+b.name] == proc && (m.at.Before(w.bootedAt) || m.unread):
			// This process started with a rebuild of their instance saved
			// as under way (its end not saved: killed, or the disk full),
			// and their command came before it first read the instance: it
			// is rebuilt over (README; seed 2085).
			w.trace("operator's %s of %s on %s, before process %d read it with its rebuild saved as under way, rebuilt over by its %s", intent, key, h.name, proc, what)
			intent = w.overwritten(key)
		case bySocket && m.on == h && m.at.Sub(h.start) < rebuildWindow:
			w.trace("operator's %s of %s on %s, %s after its restart, rebuilt over by process %d's %s", intent, key, h.name, m.at.Sub(h.start), proc, what)
			intent = w.overwritten(key)
		case bySocket && m.on == h && (what == "state ready" || what == "state drain" || strings.HasPrefix(what, "weight")):
			w.violate("operator intents kept", "%s on %s undid an operator's %s on %s, %s after its restart", what, key, intent, h.name, m.at.Sub(h.start))
		}
	case what == "state ready" || what == "state drain" || strings.HasPrefix(what, "weight"):
		w.violate("operator intents kept", "%s on %s undid an operator's %s", what, key, intent)
	}
	if after := w.servingOn(h, b, proc); intent == "" && after < before && !w.elsewhere(h, b.name, server, what) {
		if floor := min(before, w.target(b.name)); after < floor {
			pin, pinned := w.pins[b.name]
			w.violate("serving floor", "%s on %s/%s left %d serving (was %d, target %d: pinned %t at %d, rolling %t)", what, h.name, key, after, before, w.target(b.name), pinned, pin, w.rolling[b.name])
		}
	}
	// A slot h's checks find down serves nothing there: taking it out
	// (say, finishing the undo of a start whose check never passed) is no
	// judgement on what the tick could not see.
	destructive := what == "state maint" || what == "state drain" || what == "del server"
	if srv := b.server(server); srv != nil && !srv.up {
		destructive = false
	}
	if destructive && w.sched.label() == "tick" && intent == "" && !w.elsewhere(h, b.name, server, what) {
		if w.cuts[b.name] == w.tickSeq {
			w.violate("no action on incomplete data", "%s on %s in a tick whose read of %s was cut short", what, key, b.name)
		}
		if target != nil && w.listFail[target.Host] == w.tickSeq {
			w.violate("no action on incomplete data", "%s on %s, whose container is on %s that did not answer this tick's listing", what, key, target.Host)
		}
	}
}

// overwritten ends the operator's last command on key, which slotscaler
// made over (a limit of the README): an earlier one of theirs that an
// instance still holds is theirs again (seed 263: a weight 0 under a drain
// rebuilt over was forgotten with it). It returns their intent now.
func (w *world) overwritten(key string) string {
	backend, slot, _ := strings.Cut(key, "/")
	if e := w.earlier[key]; e != "" && e != w.operator[key] && w.holds(backend, slot, e, nil) {
		w.operator[key] = e
		return e
	}
	delete(w.operator, key)
	return ""
}

// missedBefore reports whether h had refused a change of process proc's
// setting the field of the slot that what sets, before t, and has not
// taken one since.
func (w *world) missedBefore(proc int, h *haproxy, backend, slot, what string, t time.Time) bool {
	m, ok := w.missed[missedKey(h, backend, slot, fieldOfWhat(what))]
	return ok && m.proc == proc && m.at.Before(t)
}

// elsewhere reports whether another instance has the slot as the change
// leaves it on h: bringing h in step with them, not a new decision.
func (w *world) elsewhere(h *haproxy, backend, slot, what string) bool {
	for _, o := range w.haproxies {
		if o == h || o.fresh {
			continue // a restarted instance's slots are not a state to follow
		}
		s := o.backend(backend).server(slot)
		switch {
		case what == "del server" && s == nil,
			s != nil && what == "state "+s.admin.String(),
			s != nil && what == fmt.Sprintf("weight %d%%", s.weight):
			return true
		}
	}
	return false
}

// removing checks a removal of c, before it happens.
func (w *world) removing(proc int, h *host, c *container) {
	w.trace("docker %s: remove %s of %s/%s (process %d, %s)", h.name, c.ID, c.Service, c.Slot, proc, w.sched.label())
	ap := w.addrOf(c)
	if !c.Running {
		return
	}
	for _, hp := range w.haproxies {
		for _, b := range hp.backends {
			for _, s := range b.servers {
				if s.admin != runtimeapi.AdminMaint && s.at(ap) {
					w.violate("no removal under traffic", "container %s removed while %s has %s/%s %s pointing at it", c.ID, hp.name, b.name, s.name, s.admin)
				}
			}
		}
	}
	if w.listFail[c.Host] == w.tickSeq && w.sched.label() == "tick" {
		w.violate("no action on incomplete data", "container %s removed by a tick whose listing of %s failed", c.ID, c.Host)
	}
}

// checkConverged checks the world after the quiet period.
func (w *world) checkConverged() {
	// "no false hold": a slot slotscaler keeps out as an operator's that no
	// operator ever touched is capacity lost for good.
	if w.loop != nil {
		for _, st := range w.loop.Services() {
			for _, sl := range st.Slots {
				if key := st.Backend + "/" + sl.Name; sl.State == scaler.SlotOperator && !w.touched[key] {
					w.violate("no false hold", "%s is kept out as an operator's (%s), and no operator touched it", key, sl.Admin)
					return
				}
			}
		}
	}
	table := w.table
	first := table(w.haproxies[0])
	for _, h := range w.haproxies[1:] {
		if t := table(h); t != first {
			w.violate("converged", "instances differ:\n  %s: %s\n  %s: %s", w.haproxies[0].name, first, h.name, t)
			return
		}
	}
	// Slots an operator holds, and their containers, are theirs to mend.
	for _, hs := range w.hosts {
		for _, c := range hs.containers {
			if w.operator[c.Service+"/"+c.Slot] != "" {
				continue
			}
			ap := w.addrOf(c)
			for _, h := range w.haproxies {
				bound := false
				for _, b := range h.backends {
					for _, s := range b.servers {
						bound = bound || c.Running && s.admin != runtimeapi.AdminMaint && s.at(ap)
					}
				}
				if !bound {
					w.violate("converged", "container %s (%s/%s, running %t) is bound by no slot on %s: %s", c.ID, c.Service, c.Slot, c.Running, h.name, table(h))
					return
				}
			}
		}
	}
	for _, h := range w.haproxies {
		for _, b := range h.backends {
			for _, s := range b.servers {
				if c, _ := w.containerAt(s.addr, s.port); s.admin != runtimeapi.AdminMaint && c == nil && w.operator[b.name+"/"+s.name] == "" {
					w.violate("converged", "%s: %s/%s is %s at %s:%d, where no container runs", h.name, b.name, s.name, s.admin, s.addr, s.port)
					return
				}
			}
		}
	}
}

// at reports whether the server points at ap.
func (s *server) at(ap netip.AddrPort) bool { return s.addr == ap.Addr() && s.port == int(ap.Port()) }

// table is an instance's slots, to compare instances.
func (w *world) table(h *haproxy) string {
	var rows []string
	for _, b := range h.backends {
		for _, s := range b.servers {
			row := fmt.Sprintf("%s/%s %s", b.name, s.name, s.admin)
			// The weights of an operator's slot are theirs; a slot in maint
			// carries no traffic, and every bind sets its weight.
			if w.operator[b.name+"/"+s.name] == "" && s.admin != runtimeapi.AdminMaint {
				row += fmt.Sprintf(" w0=%t", s.weight == 0)
			}
			if s.admin != runtimeapi.AdminMaint {
				row += fmt.Sprintf(" %s:%d", s.addr, s.port)
			}
			rows = append(rows, row)
		}
	}
	slices.Sort(rows)
	return strings.Join(rows, "; ")
}
