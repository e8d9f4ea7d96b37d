// Package sim is slotscaler's deterministic simulator. One seed gives one
// reproducible run, on a virtual clock, of the production control loop
// (scaler.Loop, unchanged) against simulated HAProxy instances and Docker
// hosts, with load, operators, rollouts, config reloads and faults
// (HAProxy restarts, replies cut short or garbled or late, lost replies,
// failed starts, engines that stop answering, containers that die or turn
// sick, state writes that fail, and slotscaler killed at any moment and
// restarted from its state). Invariants are checked at every event; see
// invariants.go. Run it with make sim.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	haproxylb "github.com/slotscaler/slotscaler/scaler/haproxy"
)

// Options shape a run; Random draws them from a seed.
type Options struct {
	Seed      uint64
	Instances int           // HAProxy instances
	Hosts     int           // Docker hosts
	Dynamic   bool          // dynamic slots (template otherwise)
	Faults    time.Duration // how long faults and actors run
	Quiet     time.Duration // then, how long the world gets to converge
	Script    func(*World)  // a scenario's own actions, instead of random actors
	Log       io.Writer     // slotscaler's own log (replays); default: none
	// OnEvent, when set, sees each event of slotscaler's as it is made,
	// inside the operation or tick making it (scenarios: an operator's
	// command in the window right after it).
	OnEvent func(*World, scaler.Event)
}

// Random draws a run's shape from its seed.
func Random(seed uint64) Options {
	s := newSched(seed^0x5eed, time.Time{})
	return Options{Seed: seed, Instances: 1 + s.intn(2), Hosts: 1 + s.intn(2), Dynamic: s.chance(0.4),
		Faults: time.Duration(60+s.intn(120)) * time.Second, Quiet: 40 * time.Second}
}

// Failure is a broken invariant, with the events that led to it.
type Failure struct {
	Seed      uint64
	Invariant string
	Detail    string
	Time      time.Duration // into the run
	Trail     []string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("seed %d: invariant %q broken at %s: %s\nlast events:\n  %s\nreplay: make sim SEED=%d",
		f.Seed, f.Invariant, f.Time, f.Detail, strings.Join(f.Trail, "\n  "), f.Seed)
}

// World is one simulated run.
type World struct{ *world }

type world struct {
	opts      Options
	sched     *sched
	begin     time.Time
	cfg       *config.Config
	prevCfg   *config.Config // the config before the last reload, for floors
	haproxies []*haproxy
	hosts     []*host
	store     *store
	rise      int
	fall      int
	faults    bool

	proc    int // the slotscaler process running now
	loop    *scaler.Loop
	ticking bool
	tickSeq int

	load         map[string]int                 // concurrent sessions wanted per backend
	pins         map[string]int                 // lbctl scale in force
	operator     map[string]string              // backend/slot -> what an operator did: drain, maint, weight0
	listFail     map[string]int                 // host -> tick whose listing failed
	cuts         map[string]int                 // backend -> tick whose observation was cut
	observed     map[string]int                 // instance/backend -> tick that read it
	readAt       map[string]readMark            // instance/backend -> the last read that came back whole
	listedAt     map[string]readMark            // host -> the last listing of its containers
	socketAt     map[string]socketMark          // backend/slot -> an operator's last command on a socket
	bindSaved    map[string]int                 // backend/slot -> the process that started with its bind saved as under way
	copying      map[string]string              // backend/slot -> an operator's command its restarted instance lost, that slotscaler may still copy
	earlier      map[string]string              // backend/slot -> the operator's intent their latest socket command was made over ("" for none)
	readyAt      map[string]time.Time           // backend/slot -> when a bind of slotscaler's last set it ready
	lbctlEnables map[string]int                 // backend/slot -> lbctl enables under way
	rebuildSaved map[string]int                 // instance/backend -> the process that started with its rebuild saved as under way
	missed       map[string]readMark            // instance|backend/slot|field -> a miss (haproxy.go) of that process's, since when
	refusals     map[string][]sentTo            // backend/slot|command -> instances that refused it lately, not yet taken elsewhere
	applied      map[string]sentTo              // backend/slot|command -> where and when it last applied
	touched      map[string]bool                // backend/slot -> an operator ever acted on it
	killOn       func(server, what string) bool // scenarios: kill slotscaler right after an operation's change it matches
	stopBefore   func(server, what string) bool // scenarios: stop slotscaler while an operation's change it matches is on its way
	rolloutHeld  map[string]int                 // service -> the count its last rollout held when it began
	lbctlDrains  map[string]int                 // backend/slot -> lbctl drains of it under way
	lbctlLanded  map[string]bool                // backend/slot -> the latest lbctl drain of it has set its drain
	bootedAt     time.Time                      // when the running process started
	stoppedAt    time.Time                      // when the last process was killed or stopped
	rolling      map[string]bool                // services with a rollout asked for
	rolloutAsked map[string]int                 // per service, the process whose lbctl rollout has not returned yet
	removed      map[*container]struct{}        // removals under way (the container may still run)

	trail   []string
	failure *Failure
}

const (
	interval   = time.Second
	checkInter = 500 * time.Millisecond
)

const simYAML = `
haproxy: {runtime_api: [%s]}
docker: {hosts: [%s]}
interval: 1s
services:
  - name: web
    backend: web
    slots: {mode: %s, prefix: slot}
    container: {image: "web:1", port: 8080}
    check: {inter: 500ms, rise: 1, fall: 2}
    min_replicas: %d
    max_replicas: 5
    max_scale_up: 2
    target: {sessions_per_replica: 10}
    stabilization: {scale_down: 5s}
    cooldown: {scale_up: 0s, scale_down: 2s}
    drain_timeout: 4s
    unhealthy_after: 4s
`

func (w *world) config(minReplicas int) (*config.Config, error) {
	var lbs, hosts []string
	for i := range w.opts.Instances {
		lbs = append(lbs, fmt.Sprintf("unix:///sim/haproxy%d.sock", i+1))
	}
	for i := range w.opts.Hosts {
		hosts = append(hosts, fmt.Sprintf("{name: node%d, endpoint: unix:///sim/docker%d.sock, address: 127.0.0.%d, max_containers: 4}", i+1, i+1, i+1))
	}
	mode := config.ModeTemplate
	if w.opts.Dynamic {
		mode = config.ModeDynamic
	}
	return config.Parse(fmt.Appendf(nil, simYAML, strings.Join(lbs, ", "), strings.Join(hosts, ", "), mode, minReplicas))
}

// New builds a world from opts; nothing runs until Run.
func New(opts Options) (*World, error) {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	w := &world{opts: opts, sched: newSched(opts.Seed, start), begin: start, rise: 1, fall: 2,
		load: map[string]int{}, pins: map[string]int{}, operator: map[string]string{}, listFail: map[string]int{},
		cuts: map[string]int{}, observed: map[string]int{}, readAt: map[string]readMark{}, listedAt: map[string]readMark{}, socketAt: map[string]socketMark{}, bindSaved: map[string]int{}, lbctlDrains: map[string]int{}, lbctlLanded: map[string]bool{}, rolloutHeld: map[string]int{}, touched: map[string]bool{}, copying: map[string]string{}, earlier: map[string]string{}, readyAt: map[string]time.Time{}, lbctlEnables: map[string]int{}, rebuildSaved: map[string]int{}, missed: map[string]readMark{}, refusals: map[string][]sentTo{}, applied: map[string]sentTo{}, rolling: map[string]bool{}, rolloutAsked: map[string]int{}, removed: map[*container]struct{}{}}
	cfg, err := w.config(1)
	if err != nil {
		return nil, err
	}
	w.cfg, w.prevCfg = cfg, cfg
	for i := range opts.Instances {
		h := &haproxy{w: w, name: fmt.Sprintf("haproxy%d", i+1), pid: 1000 * (i + 1)}
		for _, sc := range cfg.Services {
			b := &backend{name: sc.Backend, dynamic: sc.Slots.Mode == config.ModeDynamic, prefix: sc.Slots.Prefix}
			if !b.dynamic {
				b.slots = sc.MaxReplicas
			}
			h.backends = append(h.backends, b)
		}
		h.boot(start)
		w.haproxies = append(w.haproxies, h)
	}
	for i, hc := range cfg.Docker.Hosts {
		w.hosts = append(w.hosts, &host{w: w, name: hc.Name, addr: hc.IP(), capacity: hc.MaxContainers, nextPort: 30000 + 1000*i})
	}
	w.store = &store{w: w}
	w.sched.panicked = func(label string, v any) { w.violate("no panic", "%s goroutine: %v", label, v) }
	return &World{w}, nil
}

// Run plays the world: faults and actors for opts.Faults, then quiet for
// opts.Quiet, and checks convergence at the end. The first broken invariant
// ends the run.
func (w *World) Run() *Failure {
	defer w.shutdown()
	w.boot()
	faultsEnd := w.begin.Add(w.opts.Faults)
	end := faultsEnd.Add(w.opts.Quiet)
	w.every(interval, w.tick)
	w.every(checkInter, w.checks)
	w.every(interval, w.pollRollouts)
	if w.opts.Script != nil {
		w.opts.Script(w)
	} else {
		w.faults = true
		w.actors(faultsEnd)
	}
	w.sched.at(faultsEnd, w.calm)
	for w.failure == nil && w.sched.step(end) {
	}
	if w.failure == nil {
		w.checkConverged()
	}
	return w.failure
}

// every runs f every d of virtual time.
func (w *world) every(d time.Duration, f func()) {
	var again func()
	again = func() {
		f()
		w.sched.at(w.sched.Now().Add(d), again)
	}
	w.sched.at(w.sched.Now().Add(d), again)
}

// after runs f once, d from now.
func (w *world) after(d time.Duration, f func()) { w.sched.at(w.sched.Now().Add(d), f) }

// boot starts a slotscaler process from state_dir.
func (w *world) boot() {
	if w.loop != nil {
		return // one slotscaler per state_dir (its lock)
	}
	w.proc++
	w.ticking = false
	proc := w.proc
	var lbs []scaler.LB
	var names []string
	for _, h := range w.haproxies {
		lbs = append(lbs, haproxylb.New(lb{h: h, proc: proc}))
		names = append(names, h.name)
	}
	var theLB = lbs[0]
	var mirror *scaler.Mirror
	if len(lbs) > 1 {
		opts := func(backend string) (scaler.ServerOptions, bool) {
			for _, s := range w.cfg.Services {
				if s.Backend == backend {
					return scaler.DynamicServerOptions(s), s.Slots.Mode == config.ModeDynamic
				}
			}
			return scaler.ServerOptions{}, false
		}
		mlog := discard
		if w.opts.Log != nil {
			mlog = slog.New(slog.NewTextHandler(w.opts.Log, nil))
		}
		mirror = scaler.NewMirror(lbs, names, opts, clock{s: w.sched, proc: proc}, mlog)
		theLB = mirror
	}
	var hosts []scaler.Host
	for i, hc := range w.cfg.Docker.Hosts {
		hosts = append(hosts, scaler.Host{Name: hc.Name, Addr: hc.IP(), Capacity: hc.MaxContainers, Preferred: hc.Preferred(), Engine: engine{h: w.hosts[i], proc: proc}})
	}
	log := discard
	if w.opts.Log != nil {
		log = slog.New(slog.NewTextHandler(w.opts.Log, &slog.HandlerOptions{Level: slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.String("t", w.sched.Now().Sub(w.begin).String())
				}
				return a
			}})).With("process", proc)
	}
	loop, err := scaler.New(scaler.Options{Config: w.cfg, LB: theLB, Mirror: mirror, Hosts: hosts, State: procStore{s: w.store, proc: proc},
		Clock: clock{s: w.sched, proc: proc}, Log: log, Observer: observer{w}})
	if err != nil {
		w.violate("state_dir parses", "restart from state_dir: %v", err)
		return
	}
	w.loop = loop
	w.trace("slotscaler process %d started", proc)
	for _, sc := range w.cfg.Services {
		// A rollout state_dir still has under way goes on, even one that
		// ended in the run before after its last save (seed 1776: a failed
		// rollback, its end not saved on a full disk, resumed).
		if r, err := loop.RolloutStatus(sc.Name); err == nil && (r.State == scaler.RolloutRunning || r.State == scaler.RolloutRollingBack) {
			w.rolling[sc.Name], w.rolloutHeld[sc.Name] = true, r.Replicas
		}
	}
	w.bootedAt = w.sched.Now()
	var saved struct {
		Rebuilding map[string][]string `json:"rebuilding"`
	}
	_ = json.Unmarshal(w.store.data, &saved)
	for backend, names := range saved.Rebuilding {
		for _, name := range names {
			w.rebuildSaved[name+"/"+backend] = proc
		}
	}
	for key := range w.savedIntents("binding") {
		w.bindSaved[key] = proc
		// A bind got to ready, and the run was killed before where it got
		// to was saved (or that save failed, disk full): this run takes an
		// operator's maint of the slot for the bind's own, cut short
		// (README).
		if m, ok := w.socketAt[key]; ok && w.operator[key] == "maint" && m.at.After(w.readyAt[key]) && w.bindUnsaved(key) {
			w.trace("operator's maint of %s taken by process %d for the bind's own, cut short: where the bind got to was not saved before process %d was killed", key, proc, proc-1)
			delete(w.operator, key)
		}
	}
	// What a pin or pause holds is what state.json says: one that an
	// unsaved resume (or scale) ended in memory only is back (sim seed
	// 3977).
	for _, sc := range w.cfg.Services {
		if n, ok := w.savedPin(sc.Name); ok {
			w.pins[sc.Name] = n
		} else {
			delete(w.pins, sc.Name)
		}
	}
	binding := w.savedIntents("binding")
	for key := range w.savedIntents("draining") {
		// A drain or maint of slotscaler's saved as intended (before its
		// command) and still under way when it was killed: an operator's
		// command that landed on the slot after that run's last read and
		// before the kill raced it, as on a live run (no compare-and-set),
		// and this run makes the saved change over it (README).
		m, ok := w.socketAt[key]
		backend, _, _ := strings.Cut(key, "/")
		if intent := w.operator[key]; ok && intent != "" && m.at.Before(w.stoppedAt) && !w.seenSince(proc-1, m.on, backend, m.at) {
			w.trace("operator's %s of %s on %s raced process %d's saved drain or maint of it, under way when it was killed: taken by process %d for its own", intent, key, m.on.name, proc-1, proc)
			delete(w.operator, key)
		}
		// A drain or maint of theirs made while slotscaler was down is
		// that saved change landed, to this run: state_dir says a drain
		// or maint of slotscaler's is under way, not which (README; sim
		// seed 5518: a retire's maint taken on one instance of two, and
		// their drain on the other). A start's undo is told apart by the
		// bind's intent beside it: only ever a maint (seed 4569).
		if intent := w.operator[key]; ok && (intent == "drain" || intent == "maint") && !m.at.Before(w.stoppedAt) && !binding[key] {
			w.trace("operator's %s of %s on %s while slotscaler was down, over process %d's saved drain or maint of it: taken by process %d for that one", intent, key, m.on.name, proc-1, proc)
			delete(w.operator, key)
		}
	}
	if w.opts.Log != nil {
		fmt.Fprintf(w.opts.Log, "process %d restored: %s\n", proc, w.store.data)
	}
}

// observer hands slotscaler's events to Options.OnEvent.
type observer struct{ w *world }

func (o observer) Event(e scaler.Event) {
	if o.w.opts.OnEvent != nil {
		o.w.opts.OnEvent(&World{o.w}, e)
	}
}

func (observer) Tick(time.Duration, []scaler.ServiceStatus, []scaler.HostStatus) {}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// crash kills slotscaler at this event and starts it again a moment later.
func (w *world) crash() {
	if w.stop("killed") {
		w.after(w.sched.between(100*time.Millisecond, 3*time.Second), w.boot)
	}
}

// stop kills the running slotscaler process, if any; false when none ran.
func (w *world) stop(how string) bool {
	if w.loop == nil {
		return false
	}
	w.trace("slotscaler process %d %s", w.proc, how)
	w.sched.kill(w.proc)
	w.stoppedAt = w.sched.Now()
	w.loop = nil
	return true
}

// savedIntents is the backend/slot of every intent of kind ("draining",
// "binding") in slotscaler's saved state.
func (w *world) savedIntents(kind string) map[string]bool {
	var saved struct {
		Services map[string]map[string]json.RawMessage `json:"services"`
	}
	_ = json.Unmarshal(w.store.data, &saved)
	out := map[string]bool{}
	for _, sc := range w.cfg.Services {
		var slots map[string]any
		if json.Unmarshal(saved.Services[sc.Name][kind], &slots) == nil {
			for slot := range slots {
				out[sc.Backend+"/"+slot] = true
			}
		}
	}
	return out
}

// bindUnsaved reports whether a bind of slotscaler's got the slot to ready
// and its saved state has the bind under way but not where it got to.
func (w *world) bindUnsaved(key string) bool {
	_, ready := w.readyAt[key]
	return ready && w.savedIntents("binding")[key] && !w.savedIntents("bound")[key]
}

// savedPin is the count a pin or pause of service holds in slotscaler's
// saved state, if any.
func (w *world) savedPin(service string) (int, bool) {
	var saved struct {
		Services map[string]struct {
			Pinned *int `json:"pinned"`
		} `json:"services"`
	}
	if json.Unmarshal(w.store.data, &saved) != nil || saved.Services[service].Pinned == nil {
		return 0, false
	}
	return *saved.Services[service].Pinned, true
}

// tick runs one tick of the loop, as Run does: never two at once.
func (w *world) tick() {
	if w.loop == nil || w.ticking {
		return
	}
	w.ticking, w.tickSeq = true, w.tickSeq+1
	loop, proc := w.loop, w.proc
	w.goLoop(proc, "tick", func() {
		loop.Tick(context.Background())
		if w.proc == proc {
			w.ticking = false
		}
	})
}

// goLoop runs f for slotscaler process proc in a goroutine the scheduler
// owns.
func (w *world) goLoop(proc int, label string, f func()) { w.sched.spawn(proc, label, f, nil) }

// checks runs a round of health checks on every instance and spreads the
// load over what takes traffic.
func (w *world) checks() {
	now := w.sched.Now()
	for _, h := range w.haproxies {
		h.runChecks(now, w.rise, w.fall)
		// In step with a settled instance for two rounds in a row: slotscaler
		// has finished rebuilding it (a pass that failed on a change the
		// table does not show is redone at the next tick).
		inStep := slices.ContainsFunc(w.haproxies, func(o *haproxy) bool { return o != h && !o.fresh && w.table(o) == w.table(h) })
		switch {
		case !h.fresh:
		case !inStep:
			h.settled = 0
		case h.settled < 4:
			h.settled++
		default:
			h.fresh = false
		}
	}
	w.spread()
}

// spread puts each backend's load on the servers that take traffic, each
// instance carrying its share; with none, it queues.
func (w *world) spread() {
	for _, h := range w.haproxies {
		for _, b := range h.backends {
			share := w.load[b.name] / len(w.haproxies)
			var up []*server
			for _, s := range b.servers {
				s.sessions = 0
				if s.takesTraffic() && w.healthyAt(s.addr, s.port) {
					up = append(up, s)
				}
			}
			b.queue = 0
			if len(up) == 0 {
				b.queue = share
				continue
			}
			for i := range share {
				up[i%len(up)].sessions++
			}
		}
	}
}

// calm ends the faults: engines answer, replies are whole, no more actors.
func (w *world) calm() {
	w.faults = false
	for _, h := range w.hosts {
		h.down = false
	}
	if w.loop == nil {
		w.boot()
	}
	w.trace("faults end; the world should converge")
}

func (w *world) shutdown() {
	w.sched.kill(w.proc)
	for w.sched.step(w.sched.Now()) {
	}
}

// trace keeps an event for the failure report.
func (w *world) trace(format string, args ...any) {
	line := fmt.Sprintf("%9s %s", w.sched.Now().Sub(w.begin).Round(time.Millisecond), fmt.Sprintf(format, args...))
	w.trail = append(w.trail, line)
	if len(w.trail) > 150 && w.opts.Log == nil { // a replay keeps it all
		w.trail = w.trail[len(w.trail)-150:]
	}
}

// violate records the first broken invariant.
func (w *world) violate(invariant, format string, args ...any) {
	if w.failure != nil {
		return
	}
	w.failure = &Failure{Seed: w.opts.Seed, Invariant: invariant, Detail: fmt.Sprintf(format, args...) + "\n" + w.snapshot(),
		Time: w.sched.Now().Sub(w.begin), Trail: slices.Clone(w.trail)}
}

// snapshot describes the world: each instance's slots, each host's
// containers.
func (w *world) snapshot() string {
	var b strings.Builder
	for _, h := range w.haproxies {
		fmt.Fprintf(&b, "  %s:", h.name)
		for _, be := range h.backends {
			for _, s := range be.servers {
				fmt.Fprintf(&b, " %s=%s/w%d/%s:%d/%s", s.name, s.admin, s.weight, s.addr, s.port, s.statusText(w.rise, w.fall))
			}
		}
		b.WriteString("\n")
	}
	for _, h := range w.hosts {
		fmt.Fprintf(&b, "  %s (down %t):", h.name, h.down)
		for _, c := range h.containers {
			fmt.Fprintf(&b, " %s=%s@%d/running=%t/healthy=%t", c.ID, c.Slot, c.Port, c.Running, c.healthy)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  operator intents: %v, pins: %v", w.operator, w.pins)
	return b.String()
}

// observing reports whether a read of backend on h is the tick's
// observation: its first of that instance and backend. Later reads in the
// tick (settle's, after a failed change) come after the decision.
func (w *world) observing(h *haproxy, backend string) bool {
	if w.sched.label() != "tick" || w.observed[h.name+"/"+backend] == w.tickSeq {
		return false
	}
	w.observed[h.name+"/"+backend] = w.tickSeq
	return true
}

// readMark is a read that came back whole: which slotscaler process saw
// the instance's backend, and when.
type readMark struct {
	proc int
	at   time.Time
}

// socketMark is an operator's command on one instance's socket.
type socketMark struct {
	on *haproxy
	at time.Time
	// unread: the running process (if any) had not read that instance's
	// backend since it started.
	unread bool
}

// seenSince reports whether process proc read backend on h whole at or
// after t.
func (w *world) seenSince(proc int, h *haproxy, backend string, t time.Time) bool {
	r, ok := w.readAt[h.name+"/"+backend]
	return ok && r.proc == proc && !r.at.Before(t)
}

// note records a fault in a read of proc's; observation tells whether the
// read was the tick's observation of backend.
func (w *world) note(proc int, backend, what string, observation bool) {
	if observation {
		w.cuts[backend] = w.tickSeq
	}
	w.trace("read of %s by process %d: %s", backend, proc, what)
}

// service is the config of the service on backend.
func (w *world) service(backend string) config.Service {
	for _, s := range w.cfg.Services {
		if s.Backend == backend {
			return s
		}
	}
	return config.Service{}
}

// addrOf is where a container is published.
func (w *world) addrOf(c *container) netip.AddrPort {
	for _, h := range w.hosts {
		if h.name == c.Host {
			return netip.AddrPortFrom(h.addr, uint16(c.Port))
		}
	}
	return netip.AddrPort{}
}
