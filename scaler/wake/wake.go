package wake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// Waker holds a request until a slot of service serves; scaler.Loop
// implements it.
type Waker interface {
	Wake(ctx context.Context, service string) (addr netip.AddrPort, release func(), err error)
}

var _ Waker = (*scaler.Loop)(nil)

// Observer records what happened to held requests; the metrics implement it.
type Observer interface {
	// Held adds delta (1 or -1) to the requests of service held now.
	Held(service string, delta int)
	// WakeDone counts one request by result (served, timeout, overflow,
	// closed) and how long it was held.
	WakeDone(service, result string, held time.Duration)
}

// Results of a held request, as metric labels.
const (
	ResultServed   = "served"
	ResultTimeout  = "timeout"
	ResultOverflow = "overflow"
	ResultClosed   = "closed"
)

// Backend modes.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)

// Options configure a Listener.
type Options struct {
	Service    string
	Mode       string        // ModeHTTP (default) or ModeTCP: the backend's mode
	Timeout    time.Duration // how long one request is held at most
	MaxPending int           // requests held at most
	Waker      Waker
	Observer   Observer     // default: none
	Log        *slog.Logger // default slog.Default()
}

// Listener is one service's wake listener.
type Listener struct {
	o       Options
	held    atomic.Int64
	proxy   *httputil.ReverseProxy
	log     *slog.Logger
	stopped context.Context // Serve's: its end ends the holding, not the requests passed on
}

// stopGrace is how long requests already passed to a container may go on
// once the listener stops.
const stopGrace = 5 * time.Second

// New checks the options; nothing listens until Serve.
func New(o Options) (*Listener, error) {
	if o.Mode == "" {
		o.Mode = ModeHTTP
	}
	switch {
	case o.Service == "" || o.Waker == nil:
		return nil, errors.New("wake: a service and a waker are required")
	case o.Mode != ModeHTTP && o.Mode != ModeTCP:
		return nil, fmt.Errorf("wake %s: mode %q: want http or tcp", o.Service, o.Mode)
	case o.Timeout <= 0 || o.MaxPending < 1:
		return nil, fmt.Errorf("wake %s: timeout and max_pending must be positive", o.Service)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	l := &Listener{o: o, log: o.Log.With("service", o.Service, "component", "wake")}
	l.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = r.In.Context().Value(targetKey{}).(netip.AddrPort).String()
			r.Out.Host = r.In.Host // the container sees the Host the client sent
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 0, // the container takes as long as it takes, as behind HAProxy
		},
		FlushInterval: -1, // stream responses as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			l.log.Warn("pass held request to the container", "err", err)
			http.Error(w, "slotscaler wake: the new replica of "+o.Service+" did not answer: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	return l, nil
}

type targetKey struct{}

// Serve holds the requests that arrive on ln until ctx ends; then it
// stops accepting, lets the requests still held go (bodyless ones without
// an answer, for HAProxy to retry; others with 503), and gives those it
// passed on stopGrace to finish. Call it once.
func (l *Listener) Serve(ctx context.Context, ln net.Listener) error {
	l.stopped = ctx
	if l.o.Mode == ModeTCP {
		return l.serveTCP(ctx, ln)
	}
	srv := &http.Server{
		Handler:           l,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("wake %s: %w", l.o.Service, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// ServeHTTP holds one request and passes it on.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	holding, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(l.stopped, cancel)
	addr, release, result, err := l.hold(holding)
	stop()
	if err != nil {
		if l.stopped.Err() != nil && result == "" && r.ContentLength == 0 {
			// slotscaler stops: no answer at all, so that HAProxy's
			// "retry-on empty-response" (render emits it) sends the
			// request again, to the restarted slotscaler. It never reached
			// a container: a replay is safe. A request with a body gets
			// the 503 below: HAProxy retries only what fits its buffer.
			panic(http.ErrAbortHandler)
		}
		switch result {
		case ResultOverflow:
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(l.o.Timeout/time.Second/2))))
		case ResultClosed: // until the schedule opens: no point in retrying soon
		default: // a timeout, or slotscaler stopping (a restart is back in seconds)
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, "slotscaler wake: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer release()
	l.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, addr)))
}

// hold waits for a serving slot within the bounds, and records the result.
// On error, result says which bound answered ("" when the client or
// slotscaler went away).
func (l *Listener) hold(ctx context.Context) (addr netip.AddrPort, release func(), result string, err error) {
	if n := l.held.Add(1); n > int64(l.o.MaxPending) {
		l.held.Add(-1)
		l.o.Observer.WakeDone(l.o.Service, ResultOverflow, 0)
		return addr, nil, ResultOverflow, fmt.Errorf("%d requests of %s are already held (wake.max_pending); retry later", l.o.MaxPending, l.o.Service)
	}
	l.o.Observer.Held(l.o.Service, 1)
	begin := time.Now()
	held, cancel := context.WithTimeout(ctx, l.o.Timeout)
	addr, release, err = l.o.Waker.Wake(held, l.o.Service)
	cancel()
	l.held.Add(-1)
	l.o.Observer.Held(l.o.Service, -1)
	took := time.Since(begin)
	switch {
	case err == nil:
		result = ResultServed
	case errors.Is(err, scaler.ErrClosed):
		result, err = ResultClosed, fmt.Errorf("%s is closed now (max_replicas 0 in force, or pinned or paused at 0): nothing is started", l.o.Service)
	case ctx.Err() != nil:
		l.log.Debug("held request ended before a replica served", "err", ctx.Err(), "held", took)
		return addr, nil, "", fmt.Errorf("held request of %s ended: %w", l.o.Service, context.Cause(ctx))
	case errors.Is(err, context.DeadlineExceeded):
		result, err = ResultTimeout, fmt.Errorf("no replica of %s served within %s (wake.timeout); retry later", l.o.Service, l.o.Timeout)
	default:
		l.log.Warn("wake", "err", err)
		result = ResultTimeout
	}
	l.o.Observer.WakeDone(l.o.Service, result, took)
	return addr, release, result, err
}

// serveTCP holds each connection and splices it to a serving slot.
func (l *Listener) serveTCP(ctx context.Context, ln net.Listener) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("wake %s: accept: %w", l.o.Service, err)
		}
		conns.Go(func() { l.splice(ctx, c) })
	}
}

func (l *Listener) splice(ctx context.Context, c net.Conn) {
	defer c.Close()
	addr, release, _, err := l.hold(ctx)
	if err != nil {
		l.log.Debug("held connection refused", "err", err)
		return // tcp mode has no way to say why: the client sees the connection close
	}
	defer release()
	upstream, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		l.log.Warn("dial the new replica", "addr", addr, "err", err)
		return
	}
	defer upstream.Close()
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(stopGrace, func() { c.Close(); upstream.Close() })
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(upstream, c)
	}()
	pipe(c, upstream)
	<-done
}

// pipe copies src to dst, then half-closes dst so the other side sees the
// end of this direction.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if tc, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

type nopObserver struct{}

func (nopObserver) Held(string, int)                       {}
func (nopObserver) WakeDone(string, string, time.Duration) {}

// Start listens at wake.listen for every service with a wake block and
// serves there until ctx ends; mode says each backend's mode (http or
// tcp, from haproxy.cfg). The returned wait blocks until every listener
// has stopped. Nothing is left listening when it fails.
func Start(ctx context.Context, services []config.Service, mode func(backend string) string, waker Waker, obs Observer, log *slog.Logger) (wait func(), err error) {
	var listeners []net.Listener
	var handlers []*Listener
	defer func() {
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
		}
	}()
	for _, s := range services {
		if s.Wake == nil {
			continue
		}
		h, err := New(Options{Service: s.Name, Mode: mode(s.Backend), Timeout: s.Wake.Timeout.Duration, MaxPending: s.Wake.MaxPending, Waker: waker, Observer: obs, Log: log})
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", s.Wake.Listen)
		if err != nil {
			return nil, fmt.Errorf("service %s: wake.listen: %w", s.Name, err)
		}
		listeners, handlers = append(listeners, ln), append(handlers, h)
		log.Info("wake listener ready", "service", s.Name, "addr", ln.Addr().String(), "mode", h.o.Mode, "timeout", s.Wake.Timeout.Duration, "max_pending", s.Wake.MaxPending)
	}
	var wg sync.WaitGroup
	for i, h := range handlers {
		wg.Go(func() {
			if err := h.Serve(ctx, listeners[i]); err != nil {
				log.Error("wake listener stopped", "service", h.o.Service, "err", err)
			}
		})
	}
	return wg.Wait, nil
}
