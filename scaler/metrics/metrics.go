// Package metrics exports slotscaler's Prometheus metrics, with the names
// of DESIGN.md: it observes the loop (scaler.Observer) and wraps the
// runtime API and the Docker engines to count and time their calls.
// Labels stay low-cardinality: services, hosts, states, reasons; never
// container ids.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slotscaler/slotscaler/scaler"
)

const namespace = "slotscaler"

// Metrics holds every slotscaler metric in its own registry.
type Metrics struct {
	reg                 *prometheus.Registry
	replicas            *prometheus.GaugeVec
	desired             *prometheus.GaugeVec
	signal              *prometheus.GaugeVec
	scaleEvents         *prometheus.CounterVec
	rollouts            *prometheus.CounterVec
	containerOps        *prometheus.CounterVec
	containerOpDuration *prometheus.HistogramVec
	runtimeRequests     *prometheus.CounterVec
	runtimeDuration     prometheus.Histogram
	tickDuration        prometheus.Histogram
	hostContainers      *prometheus.GaugeVec
	hostCapacity        *prometheus.GaugeVec
	scheduleActive      *prometheus.GaugeVec
	restarts            prometheus.Counter
	stateWriteFailures  prometheus.Counter
	wake                wakeMetrics // scale to zero: wake.go
}

var _ scaler.Observer = (*Metrics)(nil)

// New registers every metric, plus the Go and process collectors.
func New() *Metrics {
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Name: name, Help: help}
	}
	h := func(name, help string, buckets []float64) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}
	}
	m := &Metrics{
		reg:                 prometheus.NewRegistry(),
		replicas:            prometheus.NewGaugeVec(prometheus.GaugeOpts(f("service_replicas", "Slots of a service by state: serving, starting, draining, operator (drained, weighted out or held in maint by someone else), busy (being emptied), free.")), []string{"service", "state"}),
		desired:             prometheus.NewGaugeVec(prometheus.GaugeOpts(f("service_desired_replicas", "Replicas the last decision wanted.")), []string{"service"}),
		signal:              prometheus.NewGaugeVec(prometheus.GaugeOpts(f("service_signal", "Scaling inputs: sessions on serving slots, queue, mean CPU percent (-1 when not measured), and the min and max replicas in force.")), []string{"service", "signal"}),
		scaleEvents:         prometheus.NewCounterVec(prometheus.CounterOpts(f("scale_events_total", "Scale decisions acted on (direction up or down) and replacements of lost or unhealthy containers (direction replace), by reason.")), []string{"service", "direction", "reason"}),
		rollouts:            prometheus.NewCounterVec(prometheus.CounterOpts(f("rollouts_total", "Rollouts ended, by result: succeeded, rolled_back, failed.")), []string{"service", "result"}),
		containerOps:        prometheus.NewCounterVec(prometheus.CounterOpts(f("container_ops_total", "Docker operations by host, op (start, remove, list, cpu) and result (ok, error).")), []string{"host", "op", "result"}),
		containerOpDuration: prometheus.NewHistogramVec(h("container_op_duration_seconds", "Duration of Docker operations.", []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}), []string{"op"}),
		runtimeRequests:     prometheus.NewCounterVec(prometheus.CounterOpts(f("runtime_api_requests_total", "HAProxy Runtime API commands by result (ok, error); a batch counts each of its commands.")), []string{"instance", "result"}),
		runtimeDuration:     prometheus.NewHistogram(h("runtime_api_duration_seconds", "Duration of HAProxy Runtime API calls (a batch of commands is one call).", []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5})),
		tickDuration:        prometheus.NewHistogram(h("tick_duration_seconds", "Duration of one control loop pass over every service.", []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 5})),
		hostContainers:      prometheus.NewGaugeVec(prometheus.GaugeOpts(f("host_containers", "slotscaler containers on a Docker host, every service.")), []string{"host"}),
		hostCapacity:        prometheus.NewGaugeVec(prometheus.GaugeOpts(f("host_capacity", "max_containers of a Docker host.")), []string{"host"}),
		scheduleActive:      prometheus.NewGaugeVec(prometheus.GaugeOpts(f("schedule_active", "1 while a schedule window of the service is active.")), []string{"service"}),
		restarts:            prometheus.NewCounter(prometheus.CounterOpts(f("haproxy_restarts_detected_total", "HAProxy restarts or reloads seen (process id or start time changed)."))),
		stateWriteFailures:  prometheus.NewCounter(prometheus.CounterOpts(f("state_write_failures_total", "Writes of state_dir/state.json that failed (the API call that needed one answered 503; /readyz is 503 until one succeeds)."))),
	}
	m.reg.MustRegister(m.replicas, m.desired, m.signal, m.scaleEvents, m.rollouts, m.containerOps, m.containerOpDuration,
		m.runtimeRequests, m.runtimeDuration, m.tickDuration, m.hostContainers, m.hostCapacity, m.scheduleActive, m.restarts, m.stateWriteFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.wake = newWakeMetrics(m.reg)
	return m
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is for tests and embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Event counts scale events, rollout results and HAProxy restarts.
func (m *Metrics) Event(e scaler.Event) {
	switch e.Kind {
	case scaler.EventScaleUp:
		m.scaleEvents.WithLabelValues(e.Service, "up", e.Reason).Inc()
	case scaler.EventScaleDown:
		m.scaleEvents.WithLabelValues(e.Service, "down", e.Reason).Inc()
	case scaler.EventRetire:
		if e.Reason == scaler.RetireUnhealthy || e.Reason == scaler.RetireMissing {
			m.scaleEvents.WithLabelValues(e.Service, "replace", e.Reason).Inc()
		}
	case scaler.EventHAProxyRestart:
		m.restarts.Inc()
	case scaler.EventRollout:
		switch scaler.RolloutState(e.Reason) {
		case scaler.RolloutSucceeded, scaler.RolloutRolledBack, scaler.RolloutFailed:
			m.rollouts.WithLabelValues(e.Service, e.Reason).Inc()
		}
	}
}

// Tick records the pass's duration and every service's and host's state.
func (m *Metrics) Tick(took time.Duration, services []scaler.ServiceStatus, hosts []scaler.HostStatus) {
	m.tickDuration.Observe(took.Seconds())
	for _, s := range services {
		for _, state := range scaler.SlotStates {
			m.replicas.WithLabelValues(s.Name, string(state)).Set(float64(s.Replicas.Of(state)))
		}
		if s.Desired >= 0 {
			m.desired.WithLabelValues(s.Name).Set(float64(s.Desired))
		}
		m.signal.WithLabelValues(s.Name, "sessions").Set(s.Sessions)
		m.signal.WithLabelValues(s.Name, "queue").Set(s.Queue)
		m.signal.WithLabelValues(s.Name, "cpu").Set(s.CPU)
		m.signal.WithLabelValues(s.Name, "min").Set(float64(s.Min))
		m.signal.WithLabelValues(s.Name, "max").Set(float64(s.Max))
		active := 0.0
		if s.Window >= 0 {
			active = 1
		}
		m.scheduleActive.WithLabelValues(s.Name).Set(active)
		m.wake.held.WithLabelValues(s.Name).Add(0) // a series from the first tick: 0 held (wake.go)
	}
	for _, h := range hosts {
		m.hostContainers.WithLabelValues(h.Name).Set(float64(h.Containers))
		m.hostCapacity.WithLabelValues(h.Name).Set(float64(h.Capacity))
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// LB wraps a runtime API client so every call is counted and timed.
func (m *Metrics) LB(lb scaler.LB, instance string) scaler.LB {
	return &instrumentedLB{lb: lb, m: m, instance: instance}
}

type instrumentedLB struct {
	lb       scaler.LB
	m        *Metrics
	instance string
}

// done records a call that started at start; deferred with a pointer to
// the named error, it sees the error the call returns.
func (i *instrumentedLB) done(start time.Time, err *error) {
	i.m.runtimeDuration.Observe(time.Since(start).Seconds())
	i.m.runtimeRequests.WithLabelValues(i.instance, result(*err)).Inc()
}

func (i *instrumentedLB) Info(ctx context.Context) (info scaler.ProcessInfo, err error) {
	defer i.done(time.Now(), &err)
	return i.lb.Info(ctx)
}

func (i *instrumentedLB) Backend(ctx context.Context, name string) (b scaler.Backend, err error) {
	defer i.done(time.Now(), &err)
	return i.lb.Backend(ctx, name)
}

func (i *instrumentedLB) Backends(ctx context.Context, names []string) (bs map[string]scaler.Backend, err error) {
	defer i.done(time.Now(), &err)
	return i.lb.Backends(ctx, names)
}

func (i *instrumentedLB) Loads(ctx context.Context, names []string) (ls map[string]scaler.BackendLoad, err error) {
	defer i.done(time.Now(), &err)
	return i.lb.Loads(ctx, names)
}

// Apply counts each change with its own result and times the batch as
// one call.
func (i *instrumentedLB) Apply(ctx context.Context, changes []scaler.Change) []error {
	start := time.Now()
	errs := i.lb.Apply(ctx, changes)
	i.m.runtimeDuration.Observe(time.Since(start).Seconds())
	for _, err := range errs {
		i.m.runtimeRequests.WithLabelValues(i.instance, result(err)).Inc()
	}
	return errs
}

// StateStore wraps the loop's store (state.json) so every failed write is
// counted.
func (m *Metrics) StateStore(s scaler.StateStore) scaler.StateStore {
	return &countedStore{StateStore: s, failures: m.stateWriteFailures}
}

type countedStore struct {
	scaler.StateStore
	failures prometheus.Counter
}

func (c *countedStore) Save(ctx context.Context, data []byte) error {
	err := c.StateStore.Save(ctx, data)
	if err != nil {
		c.failures.Inc()
	}
	return err
}

// Engine wraps a Docker host so every operation is counted and timed.
func (m *Metrics) Engine(e scaler.Engine, host string) scaler.Engine {
	return &instrumentedEngine{e: e, m: m, host: host}
}

type instrumentedEngine struct {
	e    scaler.Engine
	m    *Metrics
	host string
}

// done records an operation that started at start, as instrumentedLB.done.
func (i *instrumentedEngine) done(op string, start time.Time, err *error) {
	i.m.containerOpDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	i.m.containerOps.WithLabelValues(i.host, op, result(*err)).Inc()
}

func (i *instrumentedEngine) Containers(ctx context.Context) (cs []scaler.Container, err error) {
	defer i.done("list", time.Now(), &err)
	return i.e.Containers(ctx)
}

func (i *instrumentedEngine) Start(ctx context.Context, spec scaler.Spec) (c scaler.Container, err error) {
	defer i.done("start", time.Now(), &err)
	return i.e.Start(ctx, spec)
}

func (i *instrumentedEngine) Remove(ctx context.Context, id string, grace time.Duration) (err error) {
	defer i.done("remove", time.Now(), &err)
	return i.e.Remove(ctx, id, grace)
}

func (i *instrumentedEngine) CPU(ctx context.Context, id string) (s scaler.CPUSample, err error) {
	defer i.done("cpu", time.Now(), &err)
	return i.e.CPU(ctx, id)
}
