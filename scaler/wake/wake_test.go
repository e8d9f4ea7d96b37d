package wake_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/metrics"
	"github.com/slotscaler/slotscaler/scaler/wake"
)

// listening starts the wake listener of a real loop (over the in-memory
// HAProxy and Docker host) whose loop never ticks: whatever it holds stays
// held. It listens on a port of its own, not wake.listen. stop ends the
// listener and waits for it.
func listening(t *testing.T, tune func(*config.Wake)) (url string, stop func()) {
	f := scalertest.New(t, `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080}, min_replicas: 0, max_replicas: 2, target: {sessions_per_replica: 10}, wake: {listen: "127.0.0.1:9301"}}
`, scalertest.Options{})
	w := f.Config.Services[0].Wake
	if tune != nil {
		tune(w)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := wake.New(wake.Options{Service: "web", Timeout: w.Timeout.Duration, MaxPending: w.MaxPending, Waker: f.Loop, Observer: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Serve(ctx, ln) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return fmt.Sprintf("http://%s/", ln.Addr()), stop
}

type reply struct {
	status     int
	retryAfter string
	body       string
	took       time.Duration
}

func get(t *testing.T, url string) reply {
	begin := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return reply{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), time.Since(begin)}
}

// Stopping slotscaler lets the requests it holds go: one without a body
// gets no answer at all (HAProxy's retry-on empty-response sends it again,
// to the restarted slotscaler), one with a body 503 with Retry-After
// (HAProxy cannot retry what did not fit its buffer: the client may).
func TestStopLetsHeldRequestsGo(t *testing.T) {
	url, stop := listening(t, nil)
	type result struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	send := func(method string, body string) <-chan result {
		c := make(chan result, 1)
		go func() {
			req, err := http.NewRequest(method, url, strings.NewReader(body))
			if err != nil {
				c <- result{err: err}
				return
			}
			resp, err := http.DefaultTransport.RoundTrip(req) // no retry of its own
			if err != nil {
				c <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			c <- result{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), nil}
		}()
		return c
	}
	bodyless, withBody := send("GET", ""), send("POST", "payload")
	time.Sleep(300 * time.Millisecond)
	stop()
	if r := <-bodyless; r.err == nil {
		t.Errorf("bodyless request held at stop: answered %d %q; want no answer (connection closed)", r.status, r.body)
	}
	if r := <-withBody; r.err != nil || r.status != http.StatusServiceUnavailable || r.retryAfter != "1" || !strings.Contains(r.body, "held request of web ended") {
		t.Errorf("request with a body held at stop: %+v; want 503, Retry-After 1, a body saying so", r)
	}
}

func TestBounds(t *testing.T) {
	url, _ := listening(t, func(w *config.Wake) {
		w.MaxPending = 1
		w.Timeout.Duration = 500 * time.Millisecond
	})
	held := make(chan reply, 1)
	go func() { held <- get(t, url) }()
	time.Sleep(100 * time.Millisecond)
	over := get(t, url)
	if over.status != http.StatusServiceUnavailable || over.retryAfter == "" || !strings.Contains(over.body, "wake.max_pending") || over.took > 300*time.Millisecond {
		t.Errorf("overflow: %+v; want 503 at once with Retry-After", over)
	}
	r := <-held
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "no replica of web served within 500ms (wake.timeout)") || r.took < 500*time.Millisecond {
		t.Errorf("timeout: %+v; want 503 after wake.timeout", r)
	}
}
