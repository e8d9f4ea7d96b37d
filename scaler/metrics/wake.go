package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// wakeMetrics are those of the wake listeners (scale to zero).
type wakeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	held     *prometheus.GaugeVec
}

func newWakeMetrics(reg *prometheus.Registry) wakeMetrics {
	w := wakeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "wake_requests_total",
			Help: "Requests that reached a wake listener, by result: served (passed to a new replica), timeout (wake.timeout), overflow (wake.max_pending), closed (max 0 in force)."}, []string{"service", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "wake_duration_seconds",
			Help:    "How long requests were held at the wake listener before a replica served them (or they got 503).",
			Buckets: []float64{.1, .25, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60}}, []string{"service"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "held_requests",
			Help: "Requests held now at the wake listener of a service at zero."}, []string{"service"}),
	}
	reg.MustRegister(w.requests, w.duration, w.held)
	return w
}

// Held adds delta to the requests of service held now.
func (m *Metrics) Held(service string, delta int) {
	m.wake.held.WithLabelValues(service).Add(float64(delta))
}

// WakeDone counts a request a wake listener answered, and how long it was
// held; overflows were not held.
func (m *Metrics) WakeDone(service, result string, held time.Duration) {
	m.wake.requests.WithLabelValues(service, result).Inc()
	if result != "overflow" {
		m.wake.duration.WithLabelValues(service).Observe(held.Seconds())
	}
}
