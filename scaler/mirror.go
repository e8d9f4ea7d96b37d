package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Mirror is an LB over several HAProxy instances that serve the same
// backends (haproxy.runtime_api with more than one entry). No instance is
// a primary. Every change goes to all of them and fails when any refused
// it. Every read reads all of them (a tick's, every backend in one pass per
// instance; any failure fails the read, so nothing is decided on part of
// the traffic) and merges each backend:
//
//   - An instance that restarted since it was last read (show info:
//     another PID or start time; with no history, every slot in maint
//     beside an instance with slots out of it) lost its runtime state: it is
//     rebuilt from the instances that did not restart, and its own reset
//     view is left out.
//     Copying a restarted instance's view onto the others once set every
//     slot of a healthy instance to maint (sim scenario
//     TestScenarioFirstInstanceRestarts).
//   - Between the others, the more restrictive admin state wins and is
//     applied to the rest: a drain or a maint made on one instance's socket
//     is the operator's everywhere, and a change of slotscaler's that only
//     some instances took is completed. A slot is in maint only when no
//     instance can send it traffic. One exception, from slotscaler's
//     intents: on a slot with a bind of its own under way, a maint at the
//     bound address is the bind's own step not taken yet, and an
//     operator's drain on another instance wins over it (taking it for
//     restrictive turned the operator's drain into a maint the loop then
//     took for the cut-short bind's, and refilled: sim seed 2554). A weight 0 anywhere makes the merged
//     slot weight 0 (not capacity) but is not copied to the others.
//   - An instance that refused a change of slotscaler's of a slot's
//     address, state or weight that another instance took (Apply; not an
//     operator's, see Change.ByOperator) missed it: until it takes
//     a later change of that field or is brought in step, that field of
//     its view of the slot is left out of the merge and set there from
//     the others. Taken as restrictive, its older state was copied into
//     the instances that had taken the change: an undrain one instance
//     refused drained the other again (TestMirrorMissedChangeIsMadeGood).
//   - Sessions and queues are summed; a slot counts as up only when every
//     instance's check passed.
type Mirror struct {
	// mu makes a read-and-sync and each change atomic with respect to each
	// other: a sync must never act on one instance read before a change
	// and another read after it.
	mu    sync.Mutex
	lbs   []LB
	names []string
	seen  map[string][]ProcessInfo // per backend and instance, the process last read and synced
	// rebuilding: per backend and instance, a rebuild begun and not yet
	// completed (a half-rebuilt instance must not be followed). Written
	// under mu and flagsMu, read under either: saving it (Rebuilding) must
	// not wait for a read's I/O.
	rebuilding map[string][]bool
	flagsMu    sync.Mutex
	// missed: per backend and slot, the fields of it each instance
	// missed a change of (see Mirror). Guarded by mu.
	missed map[string]map[string][]fields
	opts   func(backend string) (ServerOptions, bool)
	clock  Clock
	log    *slog.Logger
	// onRebuilding, when set, is called when a read begins a rebuild
	// (under mu, before its first change) and after one completed it
	// (outside mu): the Loop saves Rebuilding then. It must not take mu.
	onRebuilding func()
	// bindIntents, when set, gives slotscaler's intents of a backend's
	// slots (the Loop's), by slot: with a bind under way, the merge tells
	// the maint such a bind leaves where it did not get to ready from an
	// operator's; of two maints at different addresses, it keeps the one
	// where the slot last pointed at a container of slotscaler's. It must
	// not take mu.
	bindIntents func(backend string) map[string]bindIntent
}

// bindIntent is what the merge asks of slotscaler's intents for a slot.
type bindIntent struct {
	binding bool           // a bind under way that may not have got to state ready everywhere
	bound   netip.AddrPort // where the slot last pointed at a container of slotscaler's; invalid: not noted
}

var _ LB = (*Mirror)(nil)

// NewMirror keeps lbs (named, for logs) in step. opts gives the "add
// server" keywords of a backend's dynamic slots, for re-adding them to an
// instance that lost them.
func NewMirror(lbs []LB, names []string, opts func(backend string) (ServerOptions, bool), clock Clock, log *slog.Logger) *Mirror {
	return &Mirror{lbs: lbs, names: names, seen: map[string][]ProcessInfo{}, rebuilding: map[string][]bool{}, missed: map[string]map[string][]fields{}, opts: opts, clock: clock, log: log}
}

// Rebuilding returns, per backend, the instances whose rebuild was begun
// and not completed. The Loop keeps it in state.json: a rebuild that
// slotscaler's restart cut short is taken up again, instead of the half
// rebuilt instance's maints being copied onto the others as an operator's
// (sim seed 1112). Only that is kept, not the processes last in step: a
// restart of an instance while slotscaler was away that kept its state
// (a reload with the server state file) is not taken for a lost one, and
// an operator's command made on it since stands (review).
func (m *Mirror) Rebuilding() map[string][]string {
	lockOn(m.clock, &m.flagsMu)
	defer m.flagsMu.Unlock()
	out := map[string][]string{}
	for backend, flags := range m.rebuilding {
		for i, on := range flags {
			if on {
				out[backend] = append(out[backend], m.names[i])
			}
		}
	}
	return out
}

// restoreRebuilding takes what Rebuilding returned in the run before.
func (m *Mirror) restoreRebuilding(saved map[string][]string) {
	lockOn(m.clock, &m.mu)
	defer m.mu.Unlock()
	lockOn(m.clock, &m.flagsMu)
	defer m.flagsMu.Unlock()
	for backend, names := range saved {
		flags := make([]bool, len(m.lbs))
		for i, name := range m.names {
			flags[i] = slices.Contains(names, name)
		}
		m.rebuilding[backend] = flags
	}
}

// Info is the first instance's, with the latest start time (and least
// uptime) of all, so that a restart of any instance is seen.
func (m *Mirror) Info(ctx context.Context) (ProcessInfo, error) {
	var out ProcessInfo
	for i, lb := range m.lbs {
		info, err := lb.Info(ctx)
		if err != nil {
			return ProcessInfo{}, fmt.Errorf("%s: %w", m.names[i], err)
		}
		if i == 0 {
			out = info
		}
		out.StartTime, out.Uptime = max(out.StartTime, info.StartTime), min(out.Uptime, info.Uptime)
	}
	return out, nil
}

// Backends reads every instance once for all the named backends (one
// pass each: Info, Backends, Info), then merges and syncs each backend as
// Backend does. A backend that could not be read on every instance, or
// brought in step, is left out and named in a BackendErrors; the others
// are good.
func (m *Mirror) Backends(ctx context.Context, names []string) (map[string]Backend, error) {
	return m.readAll(ctx, names)
}

// Backend reads the backend on every instance, brings each one to the
// merged view, and returns that view.
func (m *Mirror) Backend(ctx context.Context, name string) (Backend, error) {
	out, err := m.readAll(ctx, []string{name})
	if be, ok := errors.AsType[BackendErrors](err); ok {
		err = be[name]
	}
	return out[name], err
}

// Loads sums the named backends' counters over the instances, as a merge
// sums sessions and queues. It only reads: no merge, no sync, and not
// under the Mirror's lock, so a probe never waits for a tick. Any instance
// failing fails it; a backend some instance lacks is left out.
func (m *Mirror) Loads(ctx context.Context, names []string) (map[string]BackendLoad, error) {
	sum := map[string]BackendLoad{}
	seen := map[string]int{}
	for i, lb := range m.lbs {
		ls, err := lb.Loads(ctx, names)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.names[i], err)
		}
		for name, l := range ls {
			s := sum[name]
			sum[name] = BackendLoad{Sessions: s.Sessions + l.Sessions, Queue: s.Queue + l.Queue}
			seen[name]++
		}
	}
	for name, n := range seen {
		if n < len(m.lbs) {
			delete(sum, name)
		}
	}
	return sum, nil
}

// instanceRead is what one pass read of one instance.
type instanceRead struct {
	first ProcessInfo        // show info before the backends, when some had no history
	views map[string]Backend // per backend
	info  ProcessInfo        // show info after the backends: a restart before that read shows here
}

// readAll reads, merges and syncs names (read), then lets the Loop save a
// rebuild that completed, outside mu.
func (m *Mirror) readAll(ctx context.Context, names []string) (map[string]Backend, error) {
	out, completed, err := m.read(ctx, names)
	if completed && m.onRebuilding != nil {
		m.onRebuilding()
	}
	return out, err
}

// read is readAll under the lock; completed reports a rebuild completed.
func (m *Mirror) read(ctx context.Context, names []string) (_ map[string]Backend, completed bool, _ error) {
	lockOn(m.clock, &m.mu)
	defer m.mu.Unlock()
	reads := make([]instanceRead, len(m.lbs))
	for i, lb := range m.lbs {
		r, err := m.readInstance(ctx, i, lb, names)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", m.names[i], err)
		}
		reads[i] = r
	}
	out := make(map[string]Backend, len(names))
	failed := BackendErrors{}
	var merges []*merging
	for _, name := range names {
		views := make([]Backend, len(m.lbs))
		for i, r := range reads {
			v, ok := r.views[name]
			if !ok {
				failed[name] = fmt.Errorf("%s: backend %s is not in HAProxy's stats", m.names[i], name)
				break
			}
			views[i] = v
		}
		if failed[name] == nil {
			merges = append(merges, m.merge(name, views, reads))
		}
	}
	// Each instance is brought in step for every backend with one batch.
	for i, lb := range m.lbs {
		var changes []Change
		for _, g := range merges {
			changes = append(changes, g.changes[i]...)
		}
		if len(changes) == 0 {
			continue
		}
		errs := lb.Apply(ctx, changes)
		for _, g := range merges {
			n := len(g.changes[i])
			g.errs[i], errs = errs[:n], errs[n:]
		}
	}
	for _, g := range merges {
		done, err := m.synced(g, reads)
		completed = completed || done
		if err != nil {
			failed[g.merged.Name] = err
			continue
		}
		out[g.merged.Name] = g.merged
	}
	if len(failed) > 0 {
		return out, completed, failed
	}
	return out, completed, nil
}

// readInstance reads the named backends of instance i: one backend alone
// (a start's polls) with Backend, several in one pass.
func (m *Mirror) readInstance(ctx context.Context, i int, lb LB, names []string) (instanceRead, error) {
	r := instanceRead{views: make(map[string]Backend, len(names))}
	var err error
	// No history: the process before the backend read is compared
	// instead, or a restart during the read would pass unseen and the view
	// from before it be taken for the new process's (sim seed 3547 then
	// merged the slots it re-added, still in maint, as restrictive, and
	// took the other instance's last serving slot out).
	if slices.ContainsFunc(names, func(name string) bool { return m.seen[name] == nil || m.seen[name][i].PID == 0 }) {
		if r.first, err = lb.Info(ctx); err != nil {
			return r, err
		}
	}
	if len(names) == 1 {
		b, err := lb.Backend(ctx, names[0])
		if err != nil {
			return r, err
		}
		r.views[names[0]] = b
	} else if r.views, err = lb.Backends(ctx, names); err != nil {
		return r, err
	}
	r.info, err = lb.Info(ctx)
	return r, err
}

// merging is one backend's merge: the merged view, and per instance the
// changes that bring it in step and their errors once sent.
type merging struct {
	merged  Backend
	changes [][]Change
	errs    [][]error
}

// merge merges one backend's views (read in reads) into one and lists, per
// instance, the changes that bring it to that view (syncChanges).
func (m *Mirror) merge(name string, views []Backend, reads []instanceRead) *merging {
	begun := false
	seen := m.seen[name] // per backend: each backend's read must see a restart
	if seen == nil {
		seen = make([]ProcessInfo, len(m.lbs))
		m.seen[name] = seen
	}
	reset := make([]bool, len(m.lbs))
	for i, r := range reads {
		before := seen[i]
		if before.PID == 0 {
			before = r.first
		}
		reset[i] = before.PID != 0 && (r.info.PID != before.PID || r.info.StartTime != before.StartTime)
	}
	// No history of an instance (slotscaler just started, or it was never
	// brought in step since): as a restart leaves it, beside one with
	// slots out of maint, it restarted unseen (sim: a restart just before
	// the first read wiped the other instance's slots). Asked of each
	// instance without history, not only when the first has none: one
	// whose first sync failed restarted, its rebuild stopped half way, and
	// the next read followed its slots back at their containers in maint
	// onto the other instance (sim seed 4241,
	// TestMirrorRebuildsInstanceWithoutHistory). So is one that started
	// lately beside one up for longer, of a backend of dynamic slots or
	// with slots it lost (lostSlots): a rebuild of it that a kill cut
	// short, its note in state.json lost (disk full), left slots it had
	// re-added in maint at their containers' addresses, which no pristine
	// check catches, and the merge copied them onto the other instance
	// (TestScenarioHalfRebuiltInstanceAfterRestart, both cases). HAProxy
	// brings no dynamic server back across a reload, state file or not,
	// but a reload with the state file keeps every template slot as it
	// was: its operators' commands stand (review).
	opts, dynamic := m.opts(name)
	var lostBefore []map[string]bool // lostSlots before any rebuild, once asked
	for i, v := range views {
		for j, o := range views {
			switch {
			case seen[i].PID != 0 || j == i:
			case pristineBeside(v, o):
				reset[i] = true
			case startedLately(reads[i].info) && !startedLately(reads[j].info):
				if lostBefore == nil {
					lostBefore = lostSlots(views, reset)
				}
				reset[i] = reset[i] || dynamic || len(lostBefore[i]) > 0
			}
		}
	}
	lockOn(m.clock, &m.flagsMu)
	rebuilding := m.rebuilding[name]
	if rebuilding == nil {
		rebuilding = make([]bool, len(m.lbs))
		m.rebuilding[name] = rebuilding
	}
	for i := range reset {
		if rebuilding[i] {
			reset[i] = true
			continue
		}
		if reset[i] {
			rebuilding[i], begun = true, true
			m.log.Warn("haproxy instance restarted: rebuilding it from the others", "instance", m.names[i], "backend", name, "pid", reads[i].info.PID)
		}
	}
	m.flagsMu.Unlock()
	if begun && m.onRebuilding != nil {
		// Saved before the first change of the rebuild: killed in the
		// middle, the next run must know (sim seeds 242, 248). A failed
		// save is logged; the rebuild goes on, as an instance that lost
		// its slots serves nothing until it is rebuilt.
		m.onRebuilding()
	}
	source := -1 // the first instance that did not restart
	for i := range views {
		if !reset[i] {
			source = i
			break
		}
	}
	if source < 0 {
		// All restarted: nothing to rebuild from. The loop re-binds the
		// running containers on all of them alike.
		source, reset = 0, make([]bool, len(m.lbs))
	}
	lost := lostSlots(views, reset)
	missed := m.missedOf(name, reset)
	// leftOut is what of instance i's view of slot the merge leaves out,
	// to be set there from the others: all of it when the instance
	// restarted or lost the slot, the fields of a change it missed.
	leftOut := func(i int, slot string) fields {
		if reset[i] || lost[i][slot] {
			return allFields
		}
		return missed[i][slot]
	}
	merged := views[source]
	merged.Servers = nil
	// Each slot starts from an instance that has all of it, else from one
	// that missed a change of it, the fields it missed taken from others
	// that did not (kept, the merge pushed them onto the others: review);
	// slots only others have (dynamic ones a restart dropped) are taken
	// from them.
	for _, whole := range []bool{true, false} {
		for i, v := range views {
			for _, s := range v.Servers {
				out := leftOut(i, s.Name)
				if _, have := merged.Server(s.Name); have || out == allFields || whole && out != 0 {
					continue
				}
				for j, o := range views {
					if take := out &^ leftOut(j, s.Name); j != i && take != 0 {
						if os, ok := o.Server(s.Name); ok {
							s, out = withFields(s, os, take), out&^take
						}
					}
				}
				s.Sessions, s.Queue = 0, 0
				merged.Servers = append(merged.Servers, s)
			}
		}
	}
	merged.Queue = 0
	// Asked once per backend, so that every instance's view of a slot
	// merges the same way while a start ends meanwhile.
	var intents map[string]bindIntent
	if m.bindIntents != nil {
		intents = m.bindIntents(name)
	}
	for i, v := range views {
		merged.Queue += v.Queue
		for j := range merged.Servers {
			if s, ok := v.Server(merged.Servers[j].Name); ok {
				in := intents[s.Name]
				merged.Servers[j] = mergeServer(merged.Servers[j], s, allFields&^leftOut(i, s.Name), in.binding, in.bound)
			}
		}
	}
	g := &merging{merged: merged, changes: make([][]Change, len(views)), errs: make([][]error, len(views))}
	for i, v := range views {
		if reset[i] && dynamic {
			// Its view may predate the restart (read just before it): its
			// dynamic servers are added again as if it had lost them all
			// (every field of a rebuilt slot is set, whatever its view).
			v = Backend{Name: v.Name}
		}
		g.changes[i] = syncChanges(merged, v, opts, dynamic, func(slot string) fields { return leftOut(i, slot) })
	}
	return g
}

// synced records how the changes of a merge went (each instance's process
// as reads read it); completed reports a rebuild completed. An instance in
// step is compared to what it is now at the next read; one not brought in
// step is rebuilt again (rebuilding it from its own half-built view would
// take the slots still missing for maints).
func (m *Mirror) synced(g *merging, reads []instanceRead) (completed bool, _ error) {
	name := g.merged.Name
	lockOn(m.clock, &m.flagsMu)
	defer m.flagsMu.Unlock()
	seen, rebuilding := m.seen[name], m.rebuilding[name]
	ok := true
	for i, changes := range g.changes {
		inStep := true
		for j, c := range changes {
			err := g.errs[i][j]
			if c.Op == ChangeAdd && errors.Is(err, ErrAlreadyExists) {
				err = nil // a rebuild assumes it lost: it had not
			}
			if err != nil {
				inStep = false
				m.log.Warn("haproxy instance not brought in step; retried at the next read", "instance", m.names[i], "backend", name, "change", c.String(), "err", err)
			} else {
				m.log.Info("haproxy instance brought in step", "instance", m.names[i], "backend", name, "change", c.String())
			}
		}
		if !inStep {
			ok = false
			continue
		}
		completed = completed || rebuilding[i]
		seen[i], rebuilding[i] = reads[i].info, false
		for slot, missed := range m.missed[name] {
			missed[i] = 0
			if !slices.ContainsFunc(missed, func(f fields) bool { return f != 0 }) {
				delete(m.missed[name], slot)
			}
		}
	}
	if !ok {
		return completed, fmt.Errorf("backend %s: instances differ and could not be brought in step (retried at the next read)", name)
	}
	return completed, nil
}

// startedLately reports whether an instance started less than
// restartWindow ago. Invariant: operator intents kept, but for one made
// on such an instance before slotscaler first read it, which is rebuilt
// over (a limit of the README).
func startedLately(info ProcessInfo) bool { return info.Uptime < int64(restartWindow/time.Second) }

// restartWindow is how long after an instance's start slotscaler, reading
// it for the first time, takes it for restarted when another instance has
// been up for longer.
const restartWindow = 10 * time.Second

// pristineBeside reports whether v looks as a restart leaves an instance
// while o serves: every slot of v in maint, none at the address o's same
// slot serves at (a maint an operator made keeps the address; a restarted
// template slot is back at its placeholder, a dynamic one is gone), and o
// has a slot out of maint.
func pristineBeside(v, o Backend) bool {
	if !slices.ContainsFunc(o.Servers, func(s Server) bool { return s.Admin != AdminMaint }) {
		return false
	}
	for _, s := range v.Servers {
		if s.Admin != AdminMaint {
			return false
		}
		if os, ok := o.Server(s.Name); ok && os.Admin != AdminMaint && os.Addr == s.Addr && os.Port == s.Port {
			return false
		}
	}
	return true
}

// fields are a slot's address, admin state and weight, as a set.
type fields uint8

const (
	fieldAddr fields = 1 << iota
	fieldState
	fieldWeight
	allFields = fieldAddr | fieldState | fieldWeight
)

// withFields is s with from's fields f.
func withFields(s, from Server, f fields) Server {
	if f&fieldAddr != 0 {
		s.Addr, s.Port = from.Addr, from.Port
	}
	if f&fieldState != 0 {
		s.Admin = from.Admin
	}
	if f&fieldWeight != 0 {
		s.Weight = from.Weight
	}
	return s
}

// fieldOf is the field a change sets; 0 for an add, a delete or a health
// check (a restart's loss, not a miss: lostSlots).
func fieldOf(op ChangeOp) fields {
	switch op {
	case ChangeAddr:
		return fieldAddr
	case ChangeState:
		return fieldState
	case ChangeWeight:
		return fieldWeight
	}
	return 0
}

// noteMissed records, for each change of a slot's field that some
// instance took (took: per change, per instance), that those that took it
// are in step for that field again and, for a change of slotscaler's (not
// an operator's: Change.ByOperator), that those that refused it missed it.
func (m *Mirror) noteMissed(changes []Change, took [][]bool) {
	for j, c := range changes {
		f := fieldOf(c.Op)
		if f == 0 || !slices.Contains(took[j], true) {
			continue
		}
		slots := m.missed[c.Backend]
		if slots == nil {
			slots = map[string][]fields{}
			m.missed[c.Backend] = slots
		}
		missed := slots[c.Server]
		if missed == nil {
			missed = make([]fields, len(m.lbs))
		}
		for i, ok := range took[j] {
			if ok {
				missed[i] &^= f
			} else if !c.ByOperator {
				missed[i] |= f
			}
		}
		if slices.ContainsFunc(missed, func(f fields) bool { return f != 0 }) {
			slots[c.Server] = missed
		} else {
			delete(slots, c.Server)
		}
	}
}

// missedOf is, per instance and slot of backend, the fields it missed a
// change of that an instance which did not restart since took. A miss
// with no such instance left is forgotten: the change is lost everywhere,
// the views merge as they are, and the loop's intents make it again.
func (m *Mirror) missedOf(backend string, reset []bool) []map[string]fields {
	out := make([]map[string]fields, len(m.lbs))
	for i := range out {
		out[i] = map[string]fields{}
	}
	for slot, missed := range m.missed[backend] {
		for _, f := range []fields{fieldAddr, fieldState, fieldWeight} {
			source := false
			for j, mf := range missed {
				source = source || mf&f == 0 && !reset[j]
			}
			for i := range missed {
				if !source {
					missed[i] &^= f
				}
				out[i][slot] |= missed[i] & f
			}
		}
	}
	return out
}

// lostSlots finds, per instance, the slots it lost rather than changed: in
// maint (or absent) at another address than the one another instance
// serves that slot at. slotscaler's maints and an operator's keep the
// address; only a restart puts a template slot back on its placeholder or
// drops a dynamic one. A lost slot is rebuilt, never followed (sim: a
// restart half rebuilt when slotscaler was killed, then read without
// history, set the healthy instance's slots to maint).
func lostSlots(views []Backend, reset []bool) []map[string]bool {
	lost := make([]map[string]bool, len(views))
	for i, v := range views {
		lost[i] = map[string]bool{}
		for j, o := range views {
			if i == j || reset[j] {
				continue
			}
			for _, os := range o.Servers {
				if os.Admin == AdminMaint {
					continue
				}
				if s, ok := v.Server(os.Name); !ok || s.Admin == AdminMaint && (s.Addr != os.Addr || s.Port != os.Port) {
					lost[i][os.Name] = true
				}
			}
		}
	}
	return lost
}

// mergeServer adds b's load to a; b's admin state, weight and address
// count too where counts has them, the more restrictive winning, except
// that with a bind of slotscaler's under way a drain wins over a maint at
// the same address (the bind's step not taken yet there; see Mirror).
// Either way the worse check is kept: a slot is up only when it is up
// everywhere.
//
// Invariant: operator intents kept. Of two maints at different
// addresses, the one at bound (where the slot last pointed at a container
// of slotscaler's) wins: it is an operator's maint, as the loop tells it
// only by that address, and the other a slot a restart put back on its
// placeholder that no restart check caught (every slot in maint on both
// instances). Followed there, their maint passed for a slot the restart
// lost, and its container was bound again (sim seed 3996,
// TestScenarioOperatorMaintThenOtherInstanceRestartsWhileDown).
func mergeServer(a, b Server, counts fields, binding bool, bound netip.AddrPort) Server {
	a.Sessions += b.Sessions
	a.Queue += b.Queue
	if checkPassed(a) && !checkPassed(b) || a.Health != HealthDown && b.Health == HealthDown {
		a.Status, a.Health, a.CheckStatus, a.Transition, a.LastChange = b.Status, b.Health, b.CheckStatus, b.Transition, b.LastChange
	}
	if counts&fieldState != 0 {
		bindsStep := binding && a.Addr == b.Addr && a.Port == b.Port &&
			(a.Admin == AdminMaint && b.Admin == AdminDrain || a.Admin == AdminDrain && b.Admin == AdminMaint)
		switch {
		case bindsStep:
			a.Admin = AdminDrain
		case b.Admin > a.Admin:
			a.Admin = b.Admin
		}
	}
	if counts&fieldWeight != 0 {
		a.Weight = min(a.Weight, b.Weight)
	}
	boundAt := func(s Server) bool { return bound.IsValid() && s.AddrPort() == bound }
	if counts&fieldAddr != 0 && (!a.Addr.IsValid() || a.Admin == AdminMaint && b.Admin != AdminMaint && b.Addr.IsValid() ||
		a.Admin == AdminMaint && b.Admin == AdminMaint && boundAt(b) && !boundAt(a)) {
		a.Addr, a.Port = b.Addr, b.Port
	}
	return a
}

// syncChanges are the changes that bring an instance's view of one
// backend to the merged one (rebuild: per slot, the fields set whatever its
// view: all of a slot it lost, those of a change it missed), in the order
// they go in its batch: a dynamic server it lacks is added (with its
// health check) before it is set.
func syncChanges(merged, view Backend, opts ServerOptions, dynamic bool, rebuildSlot func(string) fields) []Change {
	be := merged.Name
	var changes []Change
	for _, p := range merged.Servers {
		rebuild := rebuildSlot(p.Name)
		s, found := view.Server(p.Name)
		if !found {
			// Only dynamic servers can be missing: the instance restarted.
			if !dynamic || !p.Addr.IsValid() {
				continue
			}
			changes = append(changes, AddServer(be, p.Name, p.Addr, p.Port, opts), EnableHealth(be, p.Name))
			s = Server{Name: p.Name, Addr: p.Addr, Port: p.Port, Admin: AdminMaint, Weight: 1}
		}
		// A rebuild sets everything: the instance may have moved since its
		// view (an operator's maint meanwhile stayed ready there once).
		if p.Addr.IsValid() && (rebuild&fieldAddr != 0 || p.Addr != s.Addr || p.Port != s.Port) {
			changes = append(changes, SetAddr(be, p.Name, p.Addr, p.Port))
		}
		// Weights are rebuilt, not followed: the merged weight 0 of a
		// weight 100% that some instances have not taken yet would be
		// pushed back onto those that had (sim: "serving floor"). A weight 0
		// on one instance still counts (the merged slot is not capacity),
		// and the loop's next change of it reaches every instance.
		if rebuild&fieldWeight != 0 {
			pct := 100
			if p.Weight == 0 {
				pct = 0
			}
			changes = append(changes, SetWeight(be, p.Name, pct))
		}
		if rebuild&fieldState != 0 || p.Admin != s.Admin {
			changes = append(changes, SetState(be, p.Name, p.Admin))
		}
	}
	if dynamic {
		for _, s := range view.Servers {
			if _, found := merged.Server(s.Name); !found {
				changes = append(changes, SetState(be, s.Name, AdminMaint), DelServer(be, s.Name))
			}
		}
	}
	return changes
}

// Apply makes the changes on every instance, each instance's as one
// batch; a change fails when any instance refused it (the next read
// completes what the others took). Adding a server an instance has
// already (a sync added it, or it kept it across our restart) points it
// at the address instead; a maint or delete of one it lacks is done.
func (m *Mirror) Apply(ctx context.Context, changes []Change) []error {
	lockOn(m.clock, &m.mu)
	defer m.mu.Unlock()
	errs := make([][]error, len(changes))
	took := make([][]bool, len(changes))
	for j := range took {
		took[j] = make([]bool, len(m.lbs))
	}
	for i, lb := range m.lbs {
		for j, err := range lb.Apply(ctx, changes) {
			c := changes[j]
			switch {
			case c.Op == ChangeAdd && errors.Is(err, ErrAlreadyExists):
				err = change(ctx, lb, SetAddr(c.Backend, c.Server, c.Addr, c.Port))
			case (c.Op == ChangeDel || c.Op == ChangeState && c.State == AdminMaint) && errors.Is(err, ErrNoSuchServer):
				// An instance without the server sends it nothing: for it,
				// the maint or delete is done (a caller must not read "no
				// such server" from one instance as done on all: review).
				err = nil
			}
			if err != nil {
				errs[j] = append(errs[j], fmt.Errorf("%s: %w", m.names[i], err))
			}
			took[j][i] = err == nil
		}
	}
	m.noteMissed(changes, took)
	out := make([]error, len(changes))
	for j := range errs {
		out[j] = errors.Join(errs[j]...)
	}
	return out
}
