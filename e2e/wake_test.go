package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/imagebuild"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/metrics"
	"github.com/slotscaler/slotscaler/scaler/wake"
)

// wakeFixture is what an env of a service that scales to zero adds.
type wakeFixture struct {
	metrics *metrics.Metrics
	mode    string // the backend's: wake.ModeHTTP (default) or wake.ModeTCP
}

// wakeEchoImage is the echo image with its /body and /ws endpoints, under
// a tag of its own so that a concurrent build of the shared test tag from
// another checkout cannot swap it.
const wakeEchoImage = "slotscaler-echo:test-wake"

var (
	wakeImageOnce sync.Once
	wakeImageErr  error
)

func buildWakeEcho(t testing.TB) string {
	t.Helper()
	c := dockertest.Client(t)
	wakeImageOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		wakeImageErr = imagebuild.Echo(ctx, c, filepath.Join(filepath.Dir(file), ".."), wakeEchoImage, nil)
	})
	if wakeImageErr != nil {
		t.Fatalf("build %s: %v", wakeEchoImage, wakeImageErr)
	}
	return wakeEchoImage
}

// newWakeEnv is an env whose service starts at zero and wakes on the first
// request: min_replicas 0, a wake listener, idle_after 3s.
func newWakeEnv(t testing.TB, mode string, tune func(*config.Service)) *env {
	return newWakeEnvEdited(t, mode, tune, nil)
}

func newWakeEnvEdited(t testing.TB, mode string, tune func(*config.Service), edit func(string) string) *env {
	image := buildWakeEcho(t)
	e := newEnvEdited(t, mode, func(c *config.Config) {
		s := &c.Services[0]
		s.Container.Image = image
		s.MinReplicas = 0
		s.Wake = &config.Wake{
			Listen:     fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t)),
			Timeout:    config.Duration{Duration: 30 * time.Second},
			MaxPending: 200,
			IdleAfter:  config.Duration{Duration: 3 * time.Second},
		}
		if tune != nil {
			tune(s)
		}
	}, edit)
	e.wake.metrics = metrics.New()
	// The Docker client negotiates its API version on first use, racily:
	// let the test's listing do it before the loop's may run at once.
	e.containers()
	return e
}

// startWake serves the wake listener of the env's service, if it has one,
// until ctx ends; the returned wait blocks until it has stopped.
func (e *env) startWake(ctx context.Context, loop *scaler.Loop) (wait func()) {
	if e.cfg.Services[0].Wake == nil {
		return func() {}
	}
	if e.wake.metrics == nil {
		e.wake.metrics = metrics.New()
	}
	mode := cmp.Or(e.wake.mode, wake.ModeHTTP)
	wait, err := wake.Start(ctx, e.cfg.Services, func(string) string { return mode }, loop, e.wake.metrics, slog.New(slog.NewTextHandler(e.logs, nil)))
	if err != nil {
		e.t.Fatalf("start wake listener: %v", err)
	}
	return wait
}

// wakeCount is how many requests the wake listener answered with result.
func (e *env) wakeCount(result string) int {
	families, err := e.wake.metrics.Registry().Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "slotscaler_wake_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// answer is one request's outcome.
type answer struct {
	status int
	body   string
	header http.Header
	took   time.Duration
	err    error
}

func do(method, url string, body []byte) answer {
	begin := time.Now()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(begin)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header, took: time.Since(begin), err: err}
}

// wsEcho opens a WebSocket through HAProxy, sends msg and reads it back.
func wsEcho(url, msg string) (string, time.Duration, error) {
	begin := time.Now()
	wsURL := strings.Replace(url, "http://", "ws://", 1) + "ws"
	ws, err := websocket.Dial(wsURL, "", url)
	if err != nil {
		return "", time.Since(begin), fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(60 * time.Second))
	if err := websocket.Message.Send(ws, msg); err != nil {
		return "", time.Since(begin), fmt.Errorf("send: %w", err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		return "", time.Since(begin), fmt.Errorf("receive: %w", err)
	}
	return got, time.Since(begin), nil
}

// TestWakeFromZero: a service at zero gets a burst of 30 concurrent GETs,
// three 1 MiB POSTs, a PUT, a DELETE, a PATCH, an OPTIONS and a WebSocket
// at once; one container starts, every request is answered by it (bodies
// intact, the WebSocket echoing), and after idle_after the service goes
// back to zero, to wake again.
func TestWakeFromZero(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			e := newWakeEnv(t, mode, nil)
			e.startLoop()
			time.Sleep(time.Second) // a few ticks: nothing starts without a request
			if n := e.containers(); n != 0 || e.slots().serving != 0 {
				t.Fatalf("at zero: %d containers, %d serving; want none", n, e.slots().serving)
			}

			const gets, posts = 30, 3
			bodies := make([][]byte, posts)
			for i := range bodies {
				bodies[i] = make([]byte, 1<<20)
				rand.Read(bodies[i])
			}
			others := []string{"PUT", "DELETE", "PATCH", "OPTIONS"} // any method is passed on
			answers := make([]answer, gets+posts+len(others))
			var ws struct {
				got  string
				took time.Duration
				err  error
			}
			var wg sync.WaitGroup
			for i := range gets {
				wg.Go(func() { answers[i] = do("GET", e.url, nil) })
			}
			for i := range posts {
				wg.Go(func() { answers[gets+i] = do("POST", e.url+"body", bodies[i]) })
			}
			for i, method := range others {
				wg.Go(func() { answers[gets+posts+i] = do(method, e.url, nil) })
			}
			wg.Go(func() { ws.got, ws.took, ws.err = wsEcho(e.url, "hello from zero") })
			wg.Wait()

			var took []time.Duration
			for i, a := range answers {
				took = append(took, a.took)
				if a.err != nil || a.status != http.StatusOK {
					t.Errorf("request %d: status %d, err %v, body %q", i, a.status, a.err, a.body)
					continue
				}
				if i >= gets && i < gets+posts {
					want := fmt.Sprintf("%d %x\n", len(bodies[i-gets]), sha256.Sum256(bodies[i-gets]))
					if a.body != want {
						t.Errorf("POST %d: container read %q, want %q", i-gets, a.body, want)
					}
				}
			}
			if ws.err != nil || ws.got != "hello from zero" {
				t.Errorf("WebSocket from zero: got %q, err %v", ws.got, ws.err)
			}
			slices.Sort(took)
			t.Logf("%s: %d requests and a WebSocket from zero: p50 %s, max %s; WebSocket %s", mode, len(answers), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), ws.took.Round(time.Millisecond))
			if n := e.containers(); n != 1 {
				t.Errorf("the burst started %d containers, want 1", n)
			}
			if got := e.wakeCount(wake.ResultServed); got < 1 || got > len(answers)+1 {
				t.Errorf("wake_requests_total{result=served} = %d, want between 1 and %d", got, len(answers)+1)
			}

			idle := e.waitFor("back to zero after idle_after", 40*time.Second, func() bool {
				return e.containers() == 0 && e.slots().serving == 0 && e.slots().other == 0
			})
			t.Logf("%s: back to zero %s after the burst", mode, idle.Round(time.Millisecond))

			a := do("GET", e.url, nil)
			if a.err != nil || a.status != http.StatusOK {
				t.Fatalf("second wake: status %d, err %v, body %q", a.status, a.err, a.body)
			}
			t.Logf("%s: second wake answered in %s", mode, a.took.Round(time.Millisecond))
		})
	}
}

// TestWakeBounds: held requests beyond max_pending get 503 with
// Retry-After at once, held ones get 503 after wake.timeout when no
// replica serves (here: its health check always fails), and a closed
// service (max 0 in force) answers 503 at once without starting anything.
func TestWakeBounds(t *testing.T) {
	t.Run("overflow and timeout", func(t *testing.T) {
		e := newWakeEnv(t, config.ModeTemplate, func(s *config.Service) {
			s.Container.Env = map[string]string{"ECHO_HEALTH": "fail"}
			s.Wake.MaxPending = 2
			s.Wake.Timeout = config.Duration{Duration: 2 * time.Second}
		})
		e.startLoop()
		answers := make([]answer, 5)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() { answers[i] = do("GET", e.url, nil) })
		}
		wg.Wait()
		var overflow, timeout int
		for i, a := range answers {
			switch {
			case a.err != nil || a.status != http.StatusServiceUnavailable:
				t.Errorf("request %d: status %d, err %v, body %q; want 503", i, a.status, a.err, a.body)
			case strings.Contains(a.body, "wake.max_pending"):
				overflow++
				if a.header.Get("Retry-After") == "" || a.took > 1500*time.Millisecond {
					t.Errorf("overflow answered in %s with Retry-After %q; want at once, with Retry-After", a.took, a.header.Get("Retry-After"))
				}
			case strings.Contains(a.body, "within 2s (wake.timeout)"):
				timeout++
				if a.took < 2*time.Second {
					t.Errorf("timeout answered after %s, before wake.timeout", a.took)
				}
			default:
				t.Errorf("request %d: unexpected 503 body %q", i, a.body)
			}
		}
		if overflow != 3 || timeout != 2 {
			t.Errorf("%d overflows and %d timeouts, want 3 and 2", overflow, timeout)
		}
		if e.wakeCount(wake.ResultOverflow) != 3 || e.wakeCount(wake.ResultTimeout) != 2 {
			t.Errorf("metrics: overflow %d, timeout %d; want 3, 2", e.wakeCount(wake.ResultOverflow), e.wakeCount(wake.ResultTimeout))
		}
	})
	t.Run("closed", func(t *testing.T) {
		e := newWakeEnv(t, config.ModeDynamic, func(s *config.Service) {
			s.Schedule = &config.Schedule{Timezone: config.Location{Location: time.UTC, Name: "UTC"}, Outside: config.Limits{MinReplicas: 0, MaxReplicas: 0}}
		})
		e.startLoop()
		a := do("GET", e.url, nil)
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "is closed now") || a.took > time.Second {
			t.Errorf("closed service: status %d in %s, body %q; want 503 at once saying closed", a.status, a.took, a.body)
		}
		time.Sleep(time.Second)
		if n := e.containers(); n != 0 {
			t.Errorf("a closed service started %d containers", n)
		}
		if e.wakeCount(wake.ResultClosed) != 1 {
			t.Errorf("wake_requests_total{result=closed} = %d, want 1", e.wakeCount(wake.ResultClosed))
		}
	})
}

// TestWakeTCP: in a "mode tcp" backend the wake listener holds each
// connection and splices it to the new replica: a burst of GETs, a 1 MiB
// POST and a WebSocket, all opened at zero, all work.
func TestWakeTCP(t *testing.T) {
	toTCP := strings.NewReplacer("frontend public\n", "frontend public\n  mode tcp\n", "  mode http\n", "  mode tcp\n",
		"  retry-on conn-failure empty-response junk-response\n", "")
	e := newWakeEnvEdited(t, config.ModeTemplate, nil, toTCP.Replace)
	e.wake.mode = wake.ModeTCP
	e.startLoop()
	body := make([]byte, 1<<20)
	rand.Read(body)
	answers := make([]answer, 11)
	var ws struct {
		got string
		err error
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { answers[i] = do("GET", e.url, nil) })
	}
	wg.Go(func() { answers[10] = do("POST", e.url+"body", body) })
	wg.Go(func() { ws.got, _, ws.err = wsEcho(e.url, "tcp from zero") })
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusOK {
			t.Errorf("request %d: status %d, err %v, body %q", i, a.status, a.err, a.body)
		}
	}
	if want := fmt.Sprintf("%d %x\n", len(body), sha256.Sum256(body)); answers[10].body != want {
		t.Errorf("POST through the splice: container read %q, want %q", answers[10].body, want)
	}
	if ws.err != nil || ws.got != "tcp from zero" {
		t.Errorf("WebSocket through the splice: %q, %v", ws.got, ws.err)
	}
	if n := e.containers(); n != 1 {
		t.Errorf("%d containers started, want 1", n)
	}
}

// TestWakeDuringLastDrain: a request sent the moment the last replica is
// drained to go to zero (HAProxy then sends it to the backup server) is
// held and served, not lost.
func TestWakeDuringLastDrain(t *testing.T) {
	e := newWakeEnv(t, config.ModeTemplate, nil)
	e.startLoop()
	if a := do("GET", e.url, nil); a.status != http.StatusOK {
		t.Fatalf("first wake: status %d, err %v", a.status, a.err)
	}
	ctx := context.Background()
	e.waitFor("the last replica drains", 40*time.Second, func() bool {
		b, err := e.lb.Backend(ctx, e.service)
		if err != nil {
			return false
		}
		for _, srv := range b.Servers {
			if srv.Name != config.WakeServer && srv.Admin == runtimeapi.AdminDrain {
				return true
			}
		}
		return false
	})
	served := e.wakeCount(wake.ResultServed)
	a := do("GET", e.url, nil)
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("request during the last drain: status %d, err %v, body %q", a.status, a.err, a.body)
	}
	if e.wakeCount(wake.ResultServed) != served+1 {
		t.Errorf("the request during the last drain did not go through the wake listener (served %d before, %d after)", served, e.wakeCount(wake.ResultServed))
	}
	t.Logf("request sent as the last replica drained: held and answered in %s", a.took.Round(time.Millisecond))
}

// TestWakeAcrossRestart: slotscaler restarts while it holds a request for
// a service at zero, and another request arrives while it is down. The
// held request is let go without an answer, so HAProxy's "retry-on
// empty-response" sends it again (it never reached a container: a replay
// is safe); the other one gets "conn-failure" retries. Both reach the
// restarted slotscaler, which wakes the service: both are answered 200,
// for a restart of 0.3 s and of 1.2 s (HAProxy's retries are about 1 s
// apart: a held request has about 2 s).
func TestWakeAcrossRestart(t *testing.T) {
	for _, down := range []time.Duration{300 * time.Millisecond, 1200 * time.Millisecond} {
		t.Run(down.String(), func(t *testing.T) {
			e := newWakeEnv(t, config.ModeTemplate, nil)
			stop := e.startLoop()
			held := make(chan answer, 1)
			go func() { held <- do("GET", e.url, nil) }()
			e.waitFor("a request held", 5*time.Second, func() bool { return e.heldNow() == 1 })
			begin := time.Now()
			stop()
			if n := e.wakeCount(wake.ResultServed); n != 0 {
				t.Fatalf("a replica served before slotscaler stopped (%d served): nothing was held across the restart", n)
			}
			arrived := make(chan answer, 1)
			go func() { arrived <- do("GET", e.url, nil) }()
			time.Sleep(time.Until(begin.Add(down)))
			e.startLoop()
			t.Logf("slotscaler down for %s", time.Since(begin).Round(time.Millisecond))
			for what, c := range map[string]chan answer{"held at the restart": held, "sent while down": arrived} {
				if a := <-c; a.err != nil || a.status != http.StatusOK {
					t.Errorf("request %s: status %d, err %v, body %q; want 200 from the restarted slotscaler", what, a.status, a.err, a.body)
				} else {
					t.Logf("request %s answered in %s", what, a.took.Round(time.Millisecond))
				}
			}
		})
	}
}

// TestWakeSeveralHAProxies: with two HAProxy instances, each carrying the
// backup line, the first request from zero through the second one wakes
// the service on both.
func TestWakeSeveralHAProxies(t *testing.T) {
	e := newWakeEnv(t, config.ModeDynamic, nil)
	port := haproxytest.FreePort(t)
	second := haproxytest.Start(t, fmt.Sprintf("frontend public\n  bind 127.0.0.1:%d\n  default_backend %s\n\n%s", port, e.service, e.backends))
	lb2, err := runtimeapi.New("unix://" + second.Socket)
	if err != nil {
		t.Fatal(err)
	}
	e.mirrors = []*runtimeapi.Client{lb2}
	e.startLoop()
	time.Sleep(500 * time.Millisecond)
	a := do("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("first request through the second instance: status %d, err %v, body %q", a.status, a.err, a.body)
	}
	t.Logf("first request from zero through the second instance: %s", a.took.Round(time.Millisecond))
	e.waitFor("a slot serving on both instances", 10*time.Second, func() bool {
		b, err := lb2.Backend(context.Background(), e.service)
		if err != nil {
			return false
		}
		serving := 0
		for _, s := range b.Servers {
			if s.Name != config.WakeServer && s.Serving() && s.Weight > 0 {
				serving++
			}
		}
		return serving == 1 && e.slots().serving == 1
	})
	if a := do("GET", e.url, nil); a.status != http.StatusOK {
		t.Errorf("request through the first instance: %d", a.status)
	}
}
