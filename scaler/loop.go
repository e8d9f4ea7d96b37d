package scaler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// LB is HAProxy's Runtime API as the loop uses it; runtimeapi.Client and
// runtimeapi.Fake implement it.
type LB interface {
	Info(ctx context.Context) (runtimeapi.Info, error)
	Backend(ctx context.Context, name string) (runtimeapi.Backend, error)
	SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error
	SetState(ctx context.Context, backend, server string, state runtimeapi.AdminState) error
	SetWeight(ctx context.Context, backend, server string, percent int) error
	EnableHealth(ctx context.Context, backend, server string) error
	AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts runtimeapi.ServerOptions) error
	DelServer(ctx context.Context, backend, server string) error
}

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
	Config *config.Config
	LB     LB
	Hosts  []Host
	DryRun bool             // decide and log, change nothing
	Now    func() time.Time // default time.Now
	Log    *slog.Logger     // default slog.Default()
}

// Loop is slotscaler's control loop: every interval it observes each
// service's backend and containers, decides its replicas, and starts,
// binds, drains and removes so that containers follow slot state. Slow
// work (container start and stop, waiting for a first health check) runs
// in operations the Loop owns; a slot with an operation in flight is left
// alone by the ticks, and counted, until the operation ends.
type Loop struct {
	lb       LB
	hosts    []Host
	services []*service
	interval time.Duration
	dryRun   bool
	now      func() time.Time
	log      *slog.Logger

	ops sync.WaitGroup

	mu   sync.Mutex // guards info and the services' op maps
	info runtimeapi.Info
}

// service is one configured service and what the loop remembers about it.
type service struct {
	cfg        config.Service
	policy     Policy
	generation string
	history    History
	ops        map[string]*op       // slot -> operation in flight (guarded by Loop.mu)
	draining   map[string]time.Time // slots slotscaler drained to scale down, and since when
	cpu        map[string]CPUSample // container id -> previous sample
}

type opKind int

const (
	opStart opKind = iota
	opRemove
)

type op struct {
	kind      opKind
	host      string
	container string // id once created
}

// New builds a Loop for a validated config.
func New(o Options) (*Loop, error) {
	if o.Config == nil || o.LB == nil || len(o.Hosts) == 0 {
		return nil, errors.New("scaler: config, runtime API and at least one host are required")
	}
	l := &Loop{lb: o.LB, hosts: o.Hosts, interval: o.Config.Interval.Duration, dryRun: o.DryRun, now: o.Now, log: o.Log}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.interval <= 0 {
		l.interval = config.DefaultInterval
	}
	for _, sc := range o.Config.Services {
		l.services = append(l.services, &service{
			cfg:        sc,
			policy:     PolicyFor(sc, l.interval),
			generation: Generation(sc.Container),
			ops:        map[string]*op{},
			draining:   map[string]time.Time{},
			cpu:        map[string]CPUSample{},
		})
	}
	return l, nil
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
	}
}

// Generation names a container spec: containers of one generation run the
// same image, command, environment, volumes and limits.
func Generation(c config.Container) string {
	b, _ := json.Marshal(c) // maps marshal with sorted keys: stable
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Run ticks until ctx ends, then waits for the operations in flight (which
// end with ctx too; what they leave half-done, the next start reconciles).
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		l.Tick(ctx)
		select {
		case <-ctx.Done():
			l.ops.Wait()
			return nil
		case <-t.C:
		}
	}
}

// Wait blocks until every operation in flight has ended.
func (l *Loop) Wait() { l.ops.Wait() }

// Tick runs one pass over every service.
func (l *Loop) Tick(ctx context.Context) {
	now := l.now()
	info, err := l.lb.Info(ctx)
	if err != nil {
		l.log.Warn("runtime API unavailable: tick skipped", "err", err)
		return
	}
	l.mu.Lock()
	prev := l.info
	l.info = info
	l.mu.Unlock()
	if prev.PID != 0 && (prev.PID != info.PID || prev.StartTime != info.StartTime) {
		l.log.Warn("haproxy restarted or reloaded: re-binding running containers", "event", "haproxy_restart", "old_pid", prev.PID, "pid", info.PID)
	}

	// Operations are noted before containers are listed: a slot whose
	// operation ends during this tick is still judged busy, as the listing
	// may predate its container.
	busy := map[*service]map[string]opKind{}
	l.mu.Lock()
	for _, s := range l.services {
		busy[s] = map[string]opKind{}
		for slot, o := range s.ops {
			busy[s][slot] = o.kind
		}
	}
	l.mu.Unlock()
	inv := l.inventory(ctx)
	inv.busy = busy
	for _, s := range l.services {
		l.tickService(ctx, s, now, inv)
	}
}

// inventory is every managed container, as listed at the start of a tick.
type inventory struct {
	byHost   map[string][]Container
	down     map[string]bool
	complete bool // every host answered; otherwise nothing is concluded from a missing container
	busy     map[*service]map[string]opKind
}

func (l *Loop) inventory(ctx context.Context) inventory {
	inv := inventory{byHost: map[string][]Container{}, down: map[string]bool{}, complete: true}
	for _, h := range l.hosts {
		cs, err := h.Engine.Containers(ctx)
		if err != nil {
			l.log.Warn("docker host unavailable: no container on it is started, stopped or judged missing", "host", h.Name, "err", err)
			inv.complete = false
			inv.down[h.Name] = true
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
// prefix1..prefixMAX for dynamic servers.
func (s *service) slotNames(b runtimeapi.Backend) []string {
	var names []string
	if s.cfg.Slots.Mode == config.ModeDynamic {
		for i := 1; i <= s.cfg.MaxReplicas; i++ {
			names = append(names, s.cfg.Slots.Prefix+strconv.Itoa(i))
		}
		return names
	}
	for _, srv := range b.Servers {
		if n, ok := strings.CutPrefix(srv.Name, s.cfg.Slots.Prefix); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			names = append(names, srv.Name)
		}
	}
	return names
}

// slotState is what a tick concluded about one slot.
type slotState int

const (
	slotFree     slotState = iota // maint (or absent), no container: may be filled
	slotBusy                      // an operation owns it
	slotStarting                  // bound, not yet taking traffic, or briefly DOWN
	slotServing                   // ready, UP, weighted
	slotDraining                  // drained by slotscaler to scale down
	slotOperator                  // drained by someone else: neither touched nor counted
)

// view is one tick's picture of a service.
type view struct {
	obs        Observation
	free       []string
	serving    []SlotLoad
	ownDrained []string
}

func (l *Loop) tickService(ctx context.Context, s *service, now time.Time, inv inventory) {
	log := l.log.With("service", s.cfg.Name)
	b, err := l.lb.Backend(ctx, s.cfg.Backend)
	if err != nil {
		log.Warn("stats read failed: tick skipped, nothing changed", "err", err)
		return
	}
	names := s.slotNames(b)
	if len(names) == 0 {
		log.Warn("backend has no slots: tick skipped", "backend", s.cfg.Backend, "prefix", s.cfg.Slots.Prefix)
		return
	}
	containers := inv.of(s.cfg.Name)
	v := view{obs: Observation{Now: now, Queue: float64(b.Queue), CPU: -1, Limits: LimitsAt(s.cfg, now)}}
	for _, name := range names {
		srv, exists := b.Server(name)
		v.obs.Queue += float64(srv.Queue)
		var mine []Container
		for _, c := range containers {
			if c.Slot == name {
				mine = append(mine, c)
			}
		}
		if _, ok := inv.busy[s][name]; ok {
			if inv.busy[s][name] == opStart {
				v.obs.Starting++
			}
			continue
		}
		switch l.reconcileSlot(ctx, log, s, name, srv, exists, mine, inv.complete, now) {
		case slotFree:
			v.free = append(v.free, name)
		case slotBusy:
			if l.opKind(s, name) == opStart {
				v.obs.Starting++
			}
		case slotStarting:
			v.obs.Starting++
		case slotServing:
			v.obs.Serving++
			v.obs.Sessions += float64(srv.Sessions)
			host := ""
			if c := l.bound(srv, mine); c != nil {
				host = c.Host
			}
			v.serving = append(v.serving, l.slotLoad(name, host, srv.Sessions, inv))
		case slotDraining:
			v.ownDrained = append(v.ownDrained, name)
		}
	}
	l.removeStrays(ctx, log, s, names, containers, inv)
	if s.policy.CPUPercent > 0 {
		v.obs.CPU = l.cpu(ctx, s, b, containers)
	}

	d, h := Decide(s.policy, v.obs, s.history)
	s.history = h
	attrs := []any{"current", d.Current, "desired", d.Desired, "reason", d.Reason, "limited_by", d.LimitedBy,
		"serving", v.obs.Serving, "starting", v.obs.Starting, "sessions", v.obs.Sessions, "queue", v.obs.Queue,
		"cpu", v.obs.CPU, "min", v.obs.Limits.Min, "max", v.obs.Limits.Max, "dry_run", l.dryRun}
	switch {
	case d.Desired > d.Current:
		log.Info("scale up", attrs...)
		l.scaleUp(ctx, log, s, d.Desired-d.Current, v, inv)
	case d.Desired < d.Current && !inv.complete:
		log.Warn("scale down postponed: a docker host did not answer", attrs...)
	case d.Desired < d.Current:
		log.Info("scale down", attrs...)
		l.scaleDown(ctx, log, s, d.Current-d.Desired, v.serving, now)
	default:
		log.Debug("steady", attrs...)
	}
}

// bound returns the running container the server points at.
func (l *Loop) bound(srv runtimeapi.Server, cs []Container) *Container {
	for i, c := range cs {
		h := l.host(c.Host)
		if c.Running && h != nil && c.Port == srv.Port && h.Addr == srv.Addr {
			return &cs[i]
		}
	}
	return nil
}

func (l *Loop) slotLoad(slot, host string, sessions int, inv inventory) SlotLoad {
	sl := SlotLoad{Slot: slot, Host: host, Sessions: sessions, HostPreferred: true}
	if h := l.host(host); h != nil {
		sl.HostPreferred = h.Preferred
		sl.HostTotal = len(inv.byHost[host])
	}
	return sl
}

func (l *Loop) opKind(s *service, slot string) opKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := s.ops[slot]; o != nil {
		return o.kind
	}
	return -1
}

// reconcileSlot makes one slot and its containers agree (HAProxy's admin
// state says what must exist) and says what the slot is now.
func (l *Loop) reconcileSlot(ctx context.Context, log *slog.Logger, s *service, name string, srv runtimeapi.Server, exists bool, mine []Container, complete bool, now time.Time) slotState {
	bound := l.bound(srv, mine)
	switch {
	case !exists || srv.Admin == runtimeapi.AdminMaint:
		delete(s.draining, name)
		if len(mine) == 0 {
			return slotFree
		}
		if !complete {
			return slotBusy // its containers may be on the host that did not answer
		}
		// A running container the slot does not point at: HAProxy restarted
		// (template slots came back with the placeholder, dynamic ones are
		// gone) or a start was cut short.
		// Bind it again rather than churn it. One that the slot still points
		// at was put in maint on purpose: remove it.
		if bound == nil && len(mine) == 1 && mine[0].Running {
			log.Info("re-binding a running container", "slot", name, "container", mine[0].Name, "event", "rebind")
			c := mine[0]
			l.launch(ctx, log, s, name, &op{kind: opStart, host: c.Host, container: c.ID}, "re-bind "+c.Name, func(ctx context.Context) { l.start(ctx, log, s, name, l.host(c.Host), &c) })
			return slotBusy
		}
		l.remove(ctx, log, s, name, mine, "slot in maint")
		return slotBusy
	case srv.Admin == runtimeapi.AdminDrain:
		for _, c := range mine {
			if bound != nil && c.ID != bound.ID {
				l.discard(ctx, log, s, c, "not the slot's container")
			}
		}
		since, ours := s.draining[name]
		if !ours {
			return slotOperator
		}
		if srv.Sessions == 0 && srv.Queue == 0 || now.Sub(since) >= s.cfg.DrainTimeout.Duration || bound == nil {
			l.retire(ctx, log, s, name, mine, "drained")
			return slotBusy
		}
		return slotDraining
	}
	// Ready.
	delete(s.draining, name)
	if bound != nil || complete {
		for _, c := range mine {
			if bound == nil || c.ID != bound.ID {
				l.discard(ctx, log, s, c, "not the slot's container")
			}
		}
	}
	if bound == nil {
		if !complete {
			// Cannot tell: trust HAProxy's view of it.
			if srv.Serving() && srv.Weight > 0 {
				return slotServing
			}
			return slotStarting
		}
		l.retire(ctx, log, s, name, nil, "container missing")
		return slotBusy
	}
	switch {
	case srv.Health == runtimeapi.HealthDown && time.Duration(srv.LastChange)*time.Second >= s.cfg.UnhealthyAfter.Duration:
		l.retire(ctx, log, s, name, []Container{*bound}, "unhealthy")
		return slotBusy
	case srv.Weight == 0:
		// Bound by an earlier run that stopped before the first check passed.
		if checkPassed(srv) {
			if err := l.act(ctx, func(ctx context.Context) error { return l.lb.SetWeight(ctx, s.cfg.Backend, name, 100) }); err != nil {
				log.Warn("restore weight", "slot", name, "err", err)
			}
		}
		return slotStarting
	case srv.Serving():
		return slotServing
	}
	return slotStarting
}

// act runs a runtime API change unless this is a dry run.
func (l *Loop) act(ctx context.Context, f func(context.Context) error) error {
	if l.dryRun {
		return nil
	}
	return f(ctx)
}

// retire takes a slot out of the balancing at once (maint) and removes its
// containers.
func (l *Loop) retire(ctx context.Context, log *slog.Logger, s *service, name string, mine []Container, why string) {
	log.Info("retiring slot", "slot", name, "why", why, "event", "retire", "dry_run", l.dryRun)
	if err := l.act(ctx, func(ctx context.Context) error {
		return l.lb.SetState(ctx, s.cfg.Backend, name, runtimeapi.AdminMaint)
	}); err != nil {
		log.Warn("set maint", "slot", name, "err", err)
		return
	}
	delete(s.draining, name)
	l.remove(ctx, log, s, name, mine, why)
}

// remove stops and removes a maint slot's containers, and deletes the
// server of a dynamic slot, in an operation.
func (l *Loop) remove(ctx context.Context, log *slog.Logger, s *service, name string, mine []Container, why string) {
	l.launch(ctx, log, s, name, &op{kind: opRemove}, "remove containers ("+why+")", func(ctx context.Context) {
		for _, c := range mine {
			h := l.host(c.Host)
			if h == nil {
				continue
			}
			if err := h.Engine.Remove(ctx, c.ID, StopGrace); err != nil {
				log.Error("remove container", "slot", name, "container", c.Name, "err", err)
				return
			}
			log.Info("container removed", "slot", name, "container", c.Name, "host", c.Host, "why", why, "event", "container_removed")
		}
		if s.cfg.Slots.Mode == config.ModeDynamic {
			l.deleteServer(ctx, log, s, name)
		}
	})
}

// deleteServer deletes a dynamic slot; HAProxy refuses while a connection
// is still attached, so it retries for a while.
func (l *Loop) deleteServer(ctx context.Context, log *slog.Logger, s *service, name string) {
	for range 20 {
		err := l.lb.DelServer(ctx, s.cfg.Backend, name)
		switch {
		case err == nil, errors.Is(err, runtimeapi.ErrNoSuchServer):
			return
		case !errors.Is(err, runtimeapi.ErrHasConnections):
			log.Warn("del server", "slot", name, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	log.Warn("del server: connections still attached; the next tick retries", "slot", name)
}

// removeStrays removes containers of the service that carry an unknown
// slot label (the config shrank, or a template changed).
func (l *Loop) removeStrays(ctx context.Context, log *slog.Logger, s *service, names []string, containers []Container, inv inventory) {
	if !inv.complete {
		return
	}
	for _, c := range containers {
		if !slices.Contains(names, c.Slot) {
			l.discard(ctx, log, s, c, "no such slot")
		}
	}
}

// discard removes one container no slot uses, in an operation keyed by the
// container so that its slot stays free for the ticks.
func (l *Loop) discard(ctx context.Context, log *slog.Logger, s *service, c Container, why string) {
	key := "container/" + c.ID
	if l.opKind(s, key) >= 0 {
		return
	}
	h := l.host(c.Host)
	l.launch(ctx, log, s, key, &op{kind: opRemove}, "remove stray container "+c.Name+" ("+why+")", func(ctx context.Context) {
		if err := h.Engine.Remove(ctx, c.ID, StopGrace); err != nil {
			log.Error("remove stray container", "container", c.Name, "err", err)
			return
		}
		log.Info("stray container removed", "container", c.Name, "slot", c.Slot, "host", c.Host, "why", why, "event", "container_removed")
	})
}

// launch runs fn as an operation owning slot until it returns; a dry run
// only says what it would do.
func (l *Loop) launch(ctx context.Context, log *slog.Logger, s *service, slot string, o *op, what string, fn func(context.Context)) {
	if l.dryRun {
		log.Info("dry run: would "+what, "slot", slot)
		return
	}
	l.mu.Lock()
	s.ops[slot] = o
	l.mu.Unlock()
	l.ops.Add(1)
	go func() {
		defer l.ops.Done()
		defer func() {
			l.mu.Lock()
			delete(s.ops, slot)
			l.mu.Unlock()
		}()
		fn(ctx)
	}()
}

func (l *Loop) scaleUp(ctx context.Context, log *slog.Logger, s *service, n int, v view, inv inventory) {
	// Slots still draining come back at once: no container to start.
	for _, name := range v.ownDrained {
		if n == 0 {
			return
		}
		if err := l.act(ctx, func(ctx context.Context) error {
			return l.lb.SetState(ctx, s.cfg.Backend, name, runtimeapi.AdminReady)
		}); err != nil {
			log.Warn("re-enable draining slot", "slot", name, "err", err)
			continue
		}
		delete(s.draining, name)
		log.Info("draining slot taken back", "slot", name, "event", "undrain", "dry_run", l.dryRun)
		n--
	}
	if n > len(v.free) {
		log.Warn("not enough free slots", "event", "no_free_slot", "want", n, "free", len(v.free))
		n = len(v.free)
	}
	hosts, err := Place(l.hostLoads(s, inv), n)
	if err != nil {
		log.Warn("cannot place every new container", "event", "no_capacity", "err", err, "placed", len(hosts))
	}
	for i, host := range hosts {
		slot, h := v.free[i], l.host(host)
		l.launch(ctx, log, s, slot, &op{kind: opStart, host: host}, "start a container on "+host, func(ctx context.Context) { l.start(ctx, log, s, slot, h, nil) })
	}
}

// hostLoads counts every managed container per host, plus starts whose
// container the listing could not show yet.
func (l *Loop) hostLoads(s *service, inv inventory) []HostLoad {
	loads := make([]HostLoad, len(l.hosts))
	listed := map[string]bool{}
	for i, h := range l.hosts {
		cs := inv.byHost[h.Name]
		loads[i] = HostLoad{Name: h.Name, Capacity: h.Capacity, Preferred: h.Preferred, Down: inv.down[h.Name]}
		for _, c := range cs {
			listed[c.ID] = true
			loads[i].Total++
			if c.Service == s.cfg.Name {
				loads[i].OfService++
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, other := range l.services {
		for _, o := range other.ops {
			if o.kind != opStart || listed[o.container] && o.container != "" {
				continue
			}
			for i := range loads {
				if loads[i].Name == o.host {
					loads[i].Total++
					if other == s {
						loads[i].OfService++
					}
				}
			}
		}
	}
	return loads
}

func (l *Loop) scaleDown(ctx context.Context, log *slog.Logger, s *service, n int, serving []SlotLoad, now time.Time) {
	for _, name := range Victims(serving, n) {
		if err := l.act(ctx, func(ctx context.Context) error {
			return l.lb.SetState(ctx, s.cfg.Backend, name, runtimeapi.AdminDrain)
		}); err != nil {
			log.Warn("drain", "slot", name, "err", err)
			continue
		}
		if !l.dryRun {
			s.draining[name] = now
		}
		log.Info("draining slot", "slot", name, "event", "drain", "dry_run", l.dryRun)
	}
}

// start runs a container for slot on h (or takes the one given), binds the
// slot at weight 0, waits for HAProxy's first passed check, and only then
// lets traffic in. Whatever fails is undone: the slot goes back to maint
// and the container away.
func (l *Loop) start(ctx context.Context, log *slog.Logger, s *service, slot string, h *Host, c *Container) {
	begin := time.Now()
	if c == nil {
		spec := s.spec(slot, h, begin)
		started, err := h.Engine.Start(ctx, spec)
		if err != nil {
			log.Error("start container", "slot", slot, "host", h.Name, "event", "start_failed", "err", err)
			return
		}
		c = &started
		l.mu.Lock()
		s.ops[slot].container = c.ID
		l.mu.Unlock()
		log.Info("container started", "slot", slot, "host", h.Name, "container", c.Name, "port", c.Port, "took", time.Since(begin).Round(time.Millisecond).String())
	}
	undo := func(why string, err error) {
		log.Error("slot not brought up: undoing", "slot", slot, "container", c.Name, "why", why, "event", "start_failed", "err", err)
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace+10*time.Second)
		defer cancel()
		if err := l.lb.SetState(cleanup, s.cfg.Backend, slot, runtimeapi.AdminMaint); err != nil && !errors.Is(err, runtimeapi.ErrNoSuchServer) {
			log.Warn("set maint", "slot", slot, "err", err)
		}
		if err := h.Engine.Remove(cleanup, c.ID, StopGrace); err != nil {
			log.Warn("remove container", "slot", slot, "err", err)
		}
		if s.cfg.Slots.Mode == config.ModeDynamic {
			l.deleteServer(cleanup, log, s, slot)
		}
	}
	if err := l.bind(ctx, s, slot, h.Addr, c.Port); err != nil {
		undo("bind", err)
		return
	}
	if err := l.waitUp(ctx, s, slot); err != nil {
		undo("first health check", err)
		return
	}
	if err := l.lb.SetWeight(ctx, s.cfg.Backend, slot, 100); err != nil {
		undo("set weight", err)
		return
	}
	log.Info("slot serving", "slot", slot, "container", c.Name, "host", h.Name, "addr", netip.AddrPortFrom(h.Addr, uint16(c.Port)), "event", "serving", "took", time.Since(begin).Round(time.Millisecond).String())
}

// spec is the container a slot runs.
func (s *service) spec(slot string, h *Host, now time.Time) Spec {
	cc := s.cfg.Container
	return Spec{
		Name:       fmt.Sprintf("slotscaler-%s-%s-%x", s.cfg.Name, slot, now.UnixNano()&0xffffffff),
		Service:    s.cfg.Name,
		Slot:       slot,
		Host:       h.Name,
		Generation: s.generation,
		Image:      cc.Image,
		Port:       cc.Port,
		PublishIP:  h.Addr,
		Env:        cc.Env,
		Volumes:    cc.Volumes,
		Labels:     cc.Labels,
		Command:    cc.Command,
		Memory:     int64(cc.Memory),
		CPUs:       cc.CPUs,
	}
}

// bind points the slot at the container with weight 0 and makes it ready,
// so HAProxy checks it but sends it nothing yet.
func (l *Loop) bind(ctx context.Context, s *service, slot string, addr netip.Addr, port int) error {
	be := s.cfg.Backend
	if s.cfg.Slots.Mode == config.ModeDynamic {
		err := l.lb.AddServer(ctx, be, slot, addr, port, runtimeapi.ServerOptions{
			Check: true, Inter: fmt.Sprintf("%dms", s.cfg.Check.Inter.Milliseconds()), Rise: s.cfg.Check.Rise, Fall: s.cfg.Check.Fall,
			// Dynamic servers inherit nothing: keep idle connections reusable.
			Extra: []string{"pool-purge-delay", "5s"},
		})
		if errors.Is(err, runtimeapi.ErrAlreadyExists) {
			err = l.lb.SetAddr(ctx, be, slot, addr, port)
		}
		if err != nil {
			return err
		}
	} else if err := l.lb.SetAddr(ctx, be, slot, addr, port); err != nil {
		return err
	}
	if err := l.lb.SetWeight(ctx, be, slot, 0); err != nil {
		return err
	}
	if err := l.lb.EnableHealth(ctx, be, slot); err != nil {
		return err
	}
	return l.lb.SetState(ctx, be, slot, runtimeapi.AdminReady)
}

// checkPassed reports whether HAProxy's own check of the server passed and
// no rise/fall transition is under way.
func checkPassed(srv runtimeapi.Server) bool {
	return srv.Health == runtimeapi.HealthUp && !srv.Transition && strings.Contains(srv.CheckStatus, "OK")
}

// waitUp polls the slot until its health check passed, for at most the
// service's unhealthy_after.
func (l *Loop) waitUp(ctx context.Context, s *service, slot string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UnhealthyAfter.Duration)
	defer cancel()
	poll := min(max(s.cfg.Check.Inter.Duration/5, 20*time.Millisecond), 100*time.Millisecond)
	last := "no reading"
	for {
		b, err := l.lb.Backend(ctx, s.cfg.Backend)
		if err == nil {
			srv, ok := b.Server(slot)
			if !ok {
				return fmt.Errorf("slot %s/%s disappeared", s.cfg.Backend, slot)
			}
			if srv.Admin != runtimeapi.AdminReady {
				return fmt.Errorf("slot %s/%s was set to %s meanwhile", s.cfg.Backend, slot, srv.Admin)
			}
			if checkPassed(srv) {
				return nil
			}
			last = fmt.Sprintf("status %q, check %q", srv.Status, srv.CheckStatus)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no passed check within %s (last: %s): %w", s.cfg.UnhealthyAfter.Duration, last, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// cpu is the mean CPU use of the serving containers since the previous
// tick, in percent of each container's CPU limit (of one CPU without one).
func (l *Loop) cpu(ctx context.Context, s *service, b runtimeapi.Backend, containers []Container) float64 {
	var sum float64
	var n int
	seen := map[string]bool{}
	for _, srv := range b.Servers {
		if !srv.Serving() {
			continue
		}
		c := l.bound(srv, containers)
		if c == nil {
			continue
		}
		h := l.host(c.Host)
		sample, err := h.Engine.CPU(ctx, c.ID)
		if err != nil {
			continue
		}
		seen[c.ID] = true
		if p := sample.Percent(s.cpu[c.ID]); p >= 0 {
			if s.cfg.Container.CPUs > 0 {
				p /= s.cfg.Container.CPUs
			}
			sum += p
			n++
		}
		s.cpu[c.ID] = sample
	}
	for id := range s.cpu {
		if !seen[id] {
			delete(s.cpu, id)
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}
