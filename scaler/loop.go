package scaler

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// Host is a Docker host the loop places containers on.
type Host struct {
	Name      string
	Addr      netip.Addr // where HAProxy reaches the host's published ports
	Capacity  int
	Preferred bool
	Engine    Engine
}

// StopGrace is how long a container gets between SIGTERM and SIGKILL. By
// then HAProxy has sent it nothing for a while: it only finishes up.
const StopGrace = 10 * time.Second

// Options configure a Loop.
type Options struct {
	Config   *config.Config
	LB       LB
	Hosts    []Host
	DryRun   bool             // observe, decide and plan; log the plan, apply nothing
	PlanOut  io.Writer        // with DryRun: each action planned, one line each, for a person (default: none)
	StateDir string           // default: the config's state_dir
	State    StateStore       // default: state.json in StateDir (none without one)
	Observer Observer         // default: none
	Clock    Clock            // default: WallClock
	Now      func() time.Time // the wall clock with another time (tests); ignored with Clock
	Log      *slog.Logger     // default slog.Default()
	// Mirror is the Mirror behind LB, if any (default: LB itself when it is
	// one): the rebuilds it has under way are kept in state.json (see
	// Mirror.Rebuilding).
	Mirror *Mirror
	// GenerationKey keys the generation label (see Generation); run.go
	// keeps it in state_dir. Nil: an HMAC with an empty key.
	GenerationKey []byte
}

// Loop is slotscaler's control loop: every interval it observes each
// service's backend and containers, decides its replicas, plans what each
// slot is and the actions that make containers follow slot state (plan.go),
// and applies the plan: starts, binds, drains and removes (apply.go). Slow
// work (container start and stop, waiting for a first health check) runs
// in operations the Loop owns; a slot with an operation in flight is left
// alone by the ticks, and counted, until the operation ends.
type Loop struct {
	lb       LB
	hosts    []Host
	cfg      *config.Config
	interval time.Duration
	dryRun   bool
	planOut  io.Writer  // a dry run's plan, for a person
	store    StateStore // nil: nothing is kept across restarts
	mirror   *Mirror    // nil: one instance
	observer Observer
	clock    Clock
	log      *slog.Logger
	genKey   []byte

	ops sync.WaitGroup

	waitingUp atomic.Int32 // slots in waitUp: their polls share a rate (ops.go)

	// saveMu orders state writes: a snapshot is taken and written under
	// it, so an older snapshot can never be written over a newer one.
	saveMu sync.Mutex

	// tickMu is held by a tick for its whole pass, by every operator
	// command (waitForTick) and by a start's undo (takeOutStart): a tick
	// decides on a read the command cannot change under it (an lbctl drain
	// racing a tick's retire of the slot was overwritten, and the slot
	// deleted and refilled: sim seed 876).
	tickMu sync.Mutex
	// batch is the tick's changes of HAProxy, sent when its plans are all
	// made (apply.go); held under tickMu by the tick.
	batch []queued

	mu       sync.Mutex // guards what follows and the services' shared fields
	services []*service
	pending  *config.Config // reloaded, applied at the next tick
	info     ProcessInfo
	events   []Event
	lastTick time.Time
	faults   []string // what the last tick could not read
	version  int      // of the intents last saved (state.json "version")
	saveErr  error    // the last state write's failure; nil once one succeeds

	wake  wakeHub   // scale to zero (issue 13): see wake.go
	early earlyKick // Run's probe between ticks: see early.go

	published atomic.Pointer[[]ServiceStatus] // the status last published (status.go)
}

// service is one configured service and what the loop remembers about it.
// Its cfg never changes: a reload makes a new service value sharing the
// maps below, so that operations under way keep reading the config they
// started with, without a lock.
type service struct {
	cfg     config.Service
	log     *slog.Logger // the loop's, naming the service
	genKey  []byte       // of the generation label
	policy  Policy
	history History
	cpu     map[string]CPUSample // container id -> previous sample

	// Guarded by Loop.mu:
	ops           map[string]*op            // slot (or "container/ID") -> operation in flight
	draining      map[string]time.Time      // slots slotscaler drained to scale down, and since when
	binding       map[string]time.Time      // slots slotscaler is bringing up at weight 0
	held          map[string]bool           // slots an operator set to maint: not filled until enabled
	lastBound     map[string]netip.AddrPort // slot -> where it pointed at its container when last seen out of maint (saved)
	image         string                    // what new containers run: the config's, or a rollout's
	hold          *hold
	rollout       *Rollout
	startFailures map[string]int        // per generation: starts that never served
	retry         map[string]startRetry // per generation: when starting again is allowed
	observed      bool                  // a tick has read HAProxy and every host for it
	seen          *tickSeen             // what the last tick saw and decided; nil when it could not read the service
	noCapacity    string                // the last lack of room reported (tick goroutine only)
	status        ServiceStatus

	gen struct{ image, label string } // generation() of image under cfg (guarded by Loop.mu)
}

// startRetry backs off the starts of a generation that failed to start:
// a missing image or a host without room is tried again after 2, 4, 8 ...
// intervals (at most maxStartBackoff), not at every tick.
type startRetry struct {
	failures int
	at       time.Time
}

const maxStartBackoff = 5 * time.Minute

type opKind int

const (
	opNone opKind = iota
	opStart
	opRemove
)

type op struct {
	kind      opKind
	host      string
	container string // id once created
	fresh     bool   // a start of a new container (not a re-bind): may be cancelled
	began     time.Time
	cancel    context.CancelCauseFunc // ends the operation's context
	cancelled bool                    // a start called off: counted as on its way out
}

// New builds a Loop for a validated config and restores the state a
// previous run left in state_dir.
func New(o Options) (*Loop, error) {
	if o.Config == nil || o.LB == nil || len(o.Hosts) == 0 {
		return nil, errors.New("scaler: config, runtime API and at least one host are required")
	}
	l := &Loop{lb: o.LB, hosts: o.Hosts, interval: o.Config.Interval.Duration, dryRun: o.DryRun, planOut: o.PlanOut,
		store: o.State, observer: o.Observer, clock: o.Clock, log: o.Log, genKey: o.GenerationKey, mirror: o.Mirror}
	l.early.kick = make(chan struct{}, 1)
	if l.mirror == nil {
		l.mirror, _ = o.LB.(*Mirror)
	}
	if l.store == nil {
		if dir := cmp.Or(o.StateDir, o.Config.StateDir); dir != "" {
			l.store = FileStore(dir)
		}
	}
	if l.observer == nil {
		l.observer = nopObserver{}
	}
	switch {
	case l.clock != nil:
	case o.Now != nil:
		l.clock = fixedNow{now: o.Now}
	default:
		l.clock = WallClock{}
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.interval <= 0 {
		l.interval = config.DefaultInterval
	}
	for _, sc := range o.Config.Services {
		l.services = append(l.services, newService(sc, l.interval, l.genKey, l.log))
	}
	l.cfg = o.Config
	if err := l.restore(); err != nil {
		return nil, err
	}
	if l.mirror != nil {
		l.mirror.onRebuilding = func() { _ = l.persist() } // a failure is logged and makes /readyz 503
		l.mirror.bindIntents = l.bindIntents
	}
	return l, nil
}

func newService(sc config.Service, interval time.Duration, genKey []byte, log *slog.Logger) *service {
	return &service{
		cfg:           sc,
		log:           log.With("service", sc.Name),
		genKey:        genKey,
		policy:        PolicyFor(sc, interval),
		cpu:           map[string]CPUSample{},
		ops:           map[string]*op{},
		draining:      map[string]time.Time{},
		binding:       map[string]time.Time{},
		held:          map[string]bool{},
		lastBound:     map[string]netip.AddrPort{},
		image:         sc.Container.Image,
		startFailures: map[string]int{},
		retry:         map[string]startRetry{},
		status:        ServiceStatus{Name: sc.Name, Backend: sc.Backend, Mode: sc.Slots.Mode, Desired: -1, Window: -1, CPU: -1},
	}
}

// PolicyFor turns a service's config into decision rules. A queue counts
// as sustained when two further ticks still see it.
func PolicyFor(s config.Service, interval time.Duration) Policy {
	return Policy{
		SessionsPerReplica: s.Target.SessionsPerReplica,
		QueuePerReplica:    s.Target.QueuePerReplica,
		CPUPercent:         s.Target.CPUPercent,
		Tolerance:          s.Target.Tolerance,
		MaxScaleUp:         s.MaxScaleUp,
		QueueSustain:       2 * interval,
		ScaleDownWindow:    s.Stabilization.ScaleDown.Duration,
		ScaleUpCooldown:    s.Cooldown.ScaleUp.Duration,
		ScaleDownCooldown:  s.Cooldown.ScaleDown.Duration,
		IdleAfter:          idleAfter(s), // wake (issue 13)
	}
}

// Generation names a container spec: containers of one generation run the
// same image, command, environment, volumes and limits. It is an HMAC
// keyed with key, so the label tells nothing about env values to whoever
// can list containers but does not hold the key.
func Generation(key []byte, c config.Container) string {
	b, _ := json.Marshal(c) // maps marshal with sorted keys: stable
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil)[:6])
}

// generationOf is the generation of the service's container with image.
func (s *service) generationOf(image string) string {
	c := s.cfg.Container
	c.Image = image
	return Generation(s.genKey, c)
}

// generation is the generation new containers get; call with Loop.mu held.
// It is kept per image: every tick's status asks for it.
func (s *service) generation() string {
	if s.gen.image != s.image || s.gen.label == "" {
		s.gen.image, s.gen.label = s.image, s.generationOf(s.image)
	}
	return s.gen.label
}

// Run ticks until ctx ends, then waits for the operations in flight (which
// end with ctx too; what they leave half-done, the next start reconciles).
// While the runtime API does not answer, ticks back off exponentially up to
// maxBackoff. Between ticks a probe of its own reads the backends' counters
// and ticks early on a load rise (early.go); it ends before Run returns.
func (l *Loop) Run(ctx context.Context) error {
	probing, stop := context.WithCancel(ctx)
	var probe sync.WaitGroup
	probe.Add(1)
	l.clock.Go(func() {
		defer probe.Done()
		l.probe(probing)
	})
	failures := 0
	for {
		var base map[string]BackendLoad // none after a tick that read nothing: no early tick
		if l.Tick(ctx) {
			failures = 0
			base = l.readBase(ctx)
		} else {
			failures++
		}
		l.early.ticked(l.clock.Now(), base)
		// A held request (wake, issue 13) or the probe cuts the wait short.
		if l.sleepOrWake(ctx, backoff(l.interval, failures)) != nil {
			stop()
			probe.Wait()
			l.ops.Wait()
			return nil
		}
	}
}

// maxBackoff bounds the wait between ticks while HAProxy does not answer.
const maxBackoff = 5 * time.Second

func backoff(interval time.Duration, failures int) time.Duration {
	d := interval
	for range min(failures, 10) {
		d *= 2
	}
	return min(d, max(maxBackoff, interval))
}

// Wait blocks until every operation in flight has ended.
func (l *Loop) Wait() { l.ops.Wait() }

// Tick runs one pass: it observes (HAProxy, every Docker host, every
// service's backend), then per service decides (decision.go), plans
// (plan.go) and applies the plan (apply.go). False when the runtime API
// did not answer and nothing was done.
func (l *Loop) Tick(ctx context.Context) bool {
	lockOn(l.clock, &l.tickMu)
	defer l.tickMu.Unlock()
	begin := time.Now()
	if l.applyPending() {
		l.publish() // the services listed change now, even if this tick reads nothing
	}
	now := l.clock.Now()
	info, err := l.lb.Info(ctx)
	if err != nil {
		l.log.Warn("runtime API unavailable: tick skipped", "err", err)
		l.mu.Lock()
		l.faults = []string{"runtime API: " + err.Error()}
		l.mu.Unlock()
		return false
	}
	l.mu.Lock()
	prev := l.info
	l.info = info
	l.mu.Unlock()
	if prev.PID != 0 && (prev.PID != info.PID || prev.StartTime != info.StartTime) {
		l.event(Event{Kind: EventHAProxyRestart, Message: fmt.Sprintf("haproxy restarted or reloaded (pid %d -> %d): re-binding running containers", prev.PID, info.PID)})
	}

	// Operations are noted before containers are listed: a slot whose
	// operation ends during this tick is still judged busy, as the listing
	// may predate its container.
	busy := map[*service]map[string]opKind{}
	l.mu.Lock()
	services := slices.Clone(l.services)
	for _, s := range services {
		busy[s] = map[string]opKind{}
		for slot, o := range s.ops {
			busy[s][slot] = o.kind
			if o.cancelled {
				busy[s][slot] = opRemove
			}
		}
	}
	l.mu.Unlock()
	inv := l.inventory(ctx)
	inv.busy = busy
	var faults []string
	for _, h := range l.hosts {
		if inv.down[h.Name] != nil {
			faults = append(faults, "docker host "+h.Name+": "+inv.down[h.Name].Error())
		}
	}
	backends := l.readBackends(ctx, services)
	reads := make([]serviceRead, len(services))
	for i, s := range services {
		reads[i] = l.read(ctx, s, inv, backends)
	}
	statuses := make([]ServiceStatus, 0, len(services))
	for i, s := range services {
		st := l.tickService(ctx, s, now, inv, reads[i])
		if st.Error != "" {
			faults = append(faults, "service "+s.cfg.Name+": "+st.Error)
		}
		statuses = append(statuses, st)
	}
	l.flush(ctx)
	// Wake (issue 13): after the flush, whose drains and undrains set and
	// clear the draining intents wakePublish tells those slots by (before
	// it, held requests went to the slots the tick began to drain).
	for i, s := range services {
		if reads[i].err == nil {
			l.wakePublish(s, statuses[i])
		}
	}
	hosts := make([]HostStatus, 0, len(l.hosts))
	for _, h := range l.hosts {
		hosts = append(hosts, HostStatus{Name: h.Name, Containers: len(inv.byHost[h.Name]), Capacity: h.Capacity, Up: inv.down[h.Name] == nil})
	}
	l.mu.Lock()
	l.lastTick, l.faults = now, faults
	l.mu.Unlock()
	l.publish()
	l.observer.Tick(time.Since(begin), statuses, hosts)
	return true
}

// inventory is every managed container, as listed at the start of a tick.
type inventory struct {
	byHost   map[string][]Container
	down     map[string]error
	complete bool // every host answered; otherwise nothing is concluded from a missing container
	busy     map[*service]map[string]opKind
}

func (l *Loop) inventory(ctx context.Context) inventory {
	inv := inventory{byHost: map[string][]Container{}, down: map[string]error{}, complete: true}
	for _, h := range l.hosts {
		cs, err := h.Engine.Containers(ctx)
		if err != nil {
			l.log.Warn("docker host unavailable: no container on it is started, stopped or judged missing", "host", h.Name, "err", err)
			inv.complete = false
			inv.down[h.Name] = err
			continue
		}
		inv.byHost[h.Name] = cs
	}
	return inv
}

func (inv inventory) of(service string) []Container {
	var out []Container
	for _, cs := range inv.byHost {
		for _, c := range cs {
			if c.Service == service {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (l *Loop) host(name string) *Host {
	for i := range l.hosts {
		if l.hosts[i].Name == name {
			return &l.hosts[i]
		}
	}
	return nil
}

// slotNames are the slots a service may use: the template's servers, or
// prefix1..prefixMAX for dynamic servers plus any the backend still has
// beyond that (max_replicas shrank): those are drained like any other,
// never taken for strays.
func (s *service) slotNames(b Backend) []string {
	names := make([]string, 0, max(len(b.Servers), s.cfg.MaxReplicas))
	if s.cfg.Slots.Mode == config.ModeDynamic {
		for i := 1; i <= s.cfg.MaxReplicas; i++ {
			names = append(names, s.cfg.Slots.Prefix+strconv.Itoa(i))
		}
	}
	for i := range b.Servers {
		name := b.Servers[i].Name
		if n, ok := strings.CutPrefix(name, s.cfg.Slots.Prefix); ok && n != "" && strings.Trim(n, "0123456789") == "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// serviceRead is what a tick read of one service's backend and containers.
type serviceRead struct {
	backend    Backend
	names      []string // its slots
	containers []Container
	cpu        float64 // -1: not measured
	err        error   // the backend could not be read: the service is skipped
}

// backendsRead is every service's backend as one pass read it.
type backendsRead struct {
	byName map[string]Backend
	err    error            // the pass failed: no service is read (nothing on part of the data)
	failed map[string]error // backends the pass could not read (BackendErrors): their services are skipped
}

// readBackends reads the services' backends in one pass.
func (l *Loop) readBackends(ctx context.Context, services []*service) backendsRead {
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.cfg.Backend
	}
	bs, err := l.lb.Backends(ctx, names)
	if failed, ok := errors.AsType[BackendErrors](err); ok {
		return backendsRead{byName: bs, failed: failed}
	}
	return backendsRead{byName: bs, err: err}
}

// read observes one service: its backend (merged over the HAProxy
// instances), its containers, and their CPU when a target uses it.
func (l *Loop) read(ctx context.Context, s *service, inv inventory, all backendsRead) serviceRead {
	b, ok := all.byName[s.cfg.Backend]
	err := cmp.Or(all.err, all.failed[s.cfg.Backend])
	if err == nil && !ok {
		err = fmt.Errorf("backend %s is not in HAProxy's stats", s.cfg.Backend)
	}
	r := serviceRead{backend: b, names: s.slotNames(b), cpu: -1, err: err}
	if err == nil && len(r.names) == 0 {
		r.err = fmt.Errorf("backend %s has no %q slots", s.cfg.Backend, s.cfg.Slots.Prefix)
	}
	if r.err != nil {
		return r
	}
	r.containers = inv.of(s.cfg.Name)
	if s.policy.CPUPercent > 0 {
		r.cpu = l.cpu(ctx, s, b, r.containers)
	}
	return r
}

// observed is the service's read with slotscaler's intents and operations,
// as the plan takes it.
func (l *Loop) observed(s *service, now time.Time, inv inventory, r serviceRead) observed {
	o := observed{Now: now, Complete: inv.complete, DrainTimeout: s.cfg.DrainTimeout.Duration, UnhealthyAfter: s.cfg.UnhealthyAfter.Duration,
		Slots: make([]slotSeen, 0, len(r.names))}
	for _, name := range r.names {
		srv, exists := r.backend.Server(name)
		seen := slotSeen{Name: name, Server: srv, Exists: exists, Op: inv.busy[s][name]}
		for _, c := range r.containers {
			if c.Slot == name {
				seen.Mine = append(seen.Mine, c)
			}
		}
		seen.Bound = l.bound(srv, seen.Mine)
		seen.OnSilentHost = l.onSilentHost(srv, inv)
		o.Slots = append(o.Slots, seen)
	}
	for _, c := range r.containers {
		if !slices.Contains(r.names, c.Slot) {
			o.Strays = append(o.Strays, c)
		}
	}
	l.mu.Lock()
	o.Intents = intents{Draining: maps.Clone(s.draining), Binding: map[string]bool{}, Held: maps.Clone(s.held), LastBound: maps.Clone(s.lastBound)}
	for slot := range s.binding {
		o.Intents.Binding[slot] = true
	}
	l.mu.Unlock()
	return o
}

// onSilentHost reports whether srv points at a host that did not answer
// this tick's listing.
func (l *Loop) onSilentHost(srv Server, inv inventory) bool {
	for _, h := range l.hosts {
		if inv.down[h.Name] != nil && h.Addr == srv.Addr {
			return true
		}
	}
	return false
}

// view is one tick's picture of a service.
type view struct {
	obs        Observation
	free       []string
	serving    []SlotLoad
	ownDrained []string
	busy       int // slots with a removal in flight
}

// tickService plans and applies the slots of one service, decides its
// replicas, plans and applies the scaling, and returns (and keeps) its
// status.
func (l *Loop) tickService(ctx context.Context, s *service, now time.Time, inv inventory, r serviceRead) ServiceStatus {
	log := s.log
	if r.err != nil {
		log.Warn("stats read failed: tick skipped, nothing changed", "err", r.err)
		l.mu.Lock()
		s.status.Error, s.status.Updated, s.seen = r.err.Error(), now, nil
		st := s.statusLocked()
		l.mu.Unlock()
		return st
	}
	o := l.observed(s, now, inv, r)
	p := planSlots(o)
	for i := range p.Slots {
		if !l.apply(ctx, log, s, p.Slots[i].Actions) {
			// An operator's maint whose hold could not be saved: the slot
			// and its container are left as they are, for the next tick to
			// hold it (sim seed 1602).
			p.Slots[i].State = SlotOperator
		}
	}
	l.apply(ctx, log, s, p.Strays)

	v := view{obs: Observation{Now: now, Queue: float64(r.backend.Queue), CPU: r.cpu, Limits: LimitsAt(s.cfg, now)}, free: make([]string, 0, len(o.Slots))}
	st := ServiceStatus{Name: s.cfg.Name, Backend: s.cfg.Backend, Mode: s.cfg.Slots.Mode, Min: v.obs.Limits.Min, Max: v.obs.Limits.Max, Window: v.obs.Limits.Window, Updated: now,
		Slots: make([]SlotStatus, 0, len(o.Slots))}
	for i, seen := range o.Slots {
		state, srv := p.Slots[i].State, seen.Server
		v.obs.Queue += float64(srv.Queue)
		switch state {
		case SlotFree:
			v.free = append(v.free, seen.Name)
		case SlotBusy:
			v.busy++
		case SlotStarting:
			v.obs.Starting++
		case SlotServing:
			v.obs.Serving++
			v.obs.Sessions += float64(srv.Sessions)
			v.serving = append(v.serving, l.slotLoad(seen.Name, seen.Bound, srv.Sessions, inv))
		case SlotDraining:
			v.ownDrained = append(v.ownDrained, seen.Name)
		}
		*st.Replicas.count(state)++
		st.Slots = append(st.Slots, slotStatus(seen.Name, state, srv, seen.Exists, seen.Bound, seen.Mine))
	}
	st.Sessions, st.Queue, st.CPU = v.obs.Sessions, v.obs.Queue, v.obs.CPU

	v.obs.Held = l.wake.active(s.cfg.Name) // wake (issue 13)
	d, h := Decide(s.policy, v.obs, s.history)
	s.history = h
	l.mu.Lock()
	mode, held := s.controlLocked()
	image := s.image
	l.mu.Unlock()
	d = controlled(d, mode, held)
	seen := &tickSeen{Obs: v.obs, History: s.history, Decision: d}
	st.Desired, st.Reason, st.LimitedBy = d.Desired, d.Reason, d.LimitedBy
	attrs := []any{"current", d.Current, "desired", d.Desired, "reason", d.Reason, "limited_by", d.LimitedBy,
		"serving", v.obs.Serving, "starting", v.obs.Starting, "sessions", v.obs.Sessions, "queue", v.obs.Queue,
		"cpu", v.obs.CPU, "min", v.obs.Limits.Min, "max", v.obs.Limits.Max, "dry_run", l.dryRun}
	if mode == ControlRollout {
		l.rolloutStep(ctx, log, s, v, inv)
	} else {
		l.scale(ctx, log, s, d, v, inv, image, attrs)
	}
	l.mu.Lock()
	s.status, s.seen = st, seen
	s.observed = s.observed || inv.complete
	out := s.statusLocked()
	l.mu.Unlock()
	return out
}

// scale plans the decision's scaling and applies it.
func (l *Loop) scale(ctx context.Context, log *slog.Logger, s *service, d Decision, v view, inv inventory, image string, attrs []any) {
	in := scaling{Decision: d, Complete: inv.complete, Draining: v.ownDrained, Free: v.free, Serving: v.serving, Image: image, Now: v.obs.Now}
	// Read only when the count changes: a tick with nothing to do stays cheap.
	if d.Desired > d.Current {
		in.BackedOff = l.backedOff(s, s.generationOf(image), v.obs.Now)
		in.Hosts = l.hostLoads(s, inv)
	}
	if d.Desired < d.Current {
		in.Starts = l.startsInFlight(s)
	}
	p := planScale(in)
	switch p.Step {
	case stepBackedOff:
		log.Debug("scale up postponed: starts of this image failed, backing off", attrs...)
		return
	case stepUp:
		if s.noCapacity == "" { // while room lacks, said once (no_capacity)
			l.event(Event{Service: s.cfg.Name, Kind: EventScaleUp, Reason: string(d.Reason), Message: "scale up"}, attrs...)
		}
		l.shortOfRoom(s, p.Short)
	case stepPostponed:
		log.Warn("scale down postponed: a docker host did not answer", attrs...)
		return
	case stepDown:
		l.event(Event{Service: s.cfg.Name, Kind: EventScaleDown, Reason: string(d.Reason), Message: "scale down"}, attrs...)
	default:
		log.Debug("steady", attrs...)
		return
	}
	l.apply(ctx, log, s, p.Actions)
}

func slotStatus(name string, state SlotState, srv Server, exists bool, bound *Container, mine []Container) SlotStatus {
	ss := SlotStatus{Name: name, State: state, Admin: "absent"}
	if exists {
		ss.Admin, ss.Status, ss.Check, ss.Weight = srv.Admin.String(), srv.Status, srv.CheckStatus, srv.Weight
		ss.Sessions, ss.Queue = srv.Sessions, srv.Queue
		if srv.Addr.IsValid() {
			ss.Addr = srv.AddrPort().String()
		}
	}
	c := bound
	if c == nil && len(mine) > 0 {
		c = &mine[0]
	}
	if c != nil {
		ss.Container, ss.Host, ss.Image, ss.Generation = c.Name, c.Host, c.Image, c.Generation
	}
	return ss
}

// bound returns the running container the server points at.
func (l *Loop) bound(srv Server, cs []Container) *Container {
	for i, c := range cs {
		h := l.host(c.Host)
		if c.Running && h != nil && c.Port == srv.Port && h.Addr == srv.Addr {
			return &cs[i]
		}
	}
	return nil
}

// slotLoad is a serving slot as victim selection sees it; bound is its
// container (nil when its host did not answer).
func (l *Loop) slotLoad(slot string, bound *Container, sessions int, inv inventory) SlotLoad {
	sl := SlotLoad{Slot: slot, Sessions: sessions, HostPreferred: true}
	if bound == nil {
		return sl
	}
	sl.Host, sl.Generation = bound.Host, bound.Generation
	if h := l.host(bound.Host); h != nil {
		sl.HostPreferred = h.Preferred
		sl.HostTotal = len(inv.byHost[bound.Host])
	}
	return sl
}

func (l *Loop) opKind(s *service, slot string) opKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := s.ops[slot]; o != nil {
		return o.kind
	}
	return opNone
}
