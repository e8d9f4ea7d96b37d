package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// The overlap tests: two things happen at once on the real system (issue
// 10). Each watches one HAProxy instance every 20 ms while they do, and
// names the invariant that broke.

// slotWatch is what a watch of one HAProxy instance saw.
type slotWatch struct {
	reads, errors int
	lastErr       error
	minServing    int           // fewest serving slots in one read
	minAt         time.Duration // when, since the watch began
	minView       string        // the backend at that read
	maint         []string      // watched slots seen in maint: the first sighting of each
}

// watchSlots reads lb's view of the service every 20 ms until the returned
// stop is called (or the test ends), keeping the fewest serving slots seen
// and any slot of watched seen in maint.
func (e *env) watchSlots(lb *runtimeapi.Client, watched []string) (stop func() slotWatch) {
	ctx, cancel := context.WithCancel(context.Background())
	w := slotWatch{minServing: -1}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		seen := map[string]bool{}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			b, err := lb.Backend(rctx, e.service)
			rcancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				w.errors++
				w.lastErr = err
			default:
				w.reads++
				at := time.Since(start)
				if n := countSlots(b).serving; w.minServing < 0 || n < w.minServing {
					w.minServing, w.minAt, w.minView = n, at, describe(b)
				}
				for _, name := range watched {
					if s, ok := b.Server(name); ok && s.Admin == runtimeapi.AdminMaint && !seen[name] {
						seen[name] = true
						w.maint = append(w.maint, fmt.Sprintf("%s at +%s", name, at.Round(time.Millisecond)))
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() slotWatch {
		once.Do(func() {
			cancel()
			<-done
		})
		return w
	}
	e.t.Cleanup(func() { stop() })
	return stop
}

// assert logs what the watch of instance and the load through it saw, and
// fails when a request failed or the watch read too little to prove
// anything.
func (w slotWatch) assert(t *testing.T, instance string, load loadgen.Result) {
	t.Helper()
	t.Logf("%s read %d times (%d errors): fewest serving slots %d (at +%s); %d requests through it, %d failed",
		instance, w.reads, w.errors, w.minServing, w.minAt.Round(time.Millisecond), load.OK+load.Failed, load.Failed)
	if w.reads < 20 {
		t.Errorf("the watch of %s read it only %d times (%d errors, last %v)", instance, w.reads, w.errors, w.lastErr)
	}
	if load.Failed != 0 {
		t.Errorf("invariant \"no failed request through %s\": %d of %d failed, the first: %v", instance, load.Failed, load.OK+load.Failed, load.Errors[:min(3, len(load.Errors))])
	}
}

// describe is a backend's slots in one line, for failure messages.
func describe(b runtimeapi.Backend) string {
	var rows []string
	for _, s := range b.Servers {
		rows = append(rows, fmt.Sprintf("%s %s %q w%d %s:%d", s.Name, s.Admin, s.Status, s.Weight, s.Addr, s.Port))
	}
	return strings.Join(rows, "; ")
}

// scale pins the service at n replicas through the HTTP API, as
// "lbctl scale" does.
func (e *env) scale(apiURL string, n int) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, apiURL+"/v1/services/"+e.service+"/scale", strings.NewReader(fmt.Sprintf(`{"replicas": %d}`, n)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("scale to %d: %v", n, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("scale to %d: %d %s", n, resp.StatusCode, body)
	}
}

// TestOverlapFirstInstanceRestartsUnderLoad: two HAProxy instances, load
// through the second only, and the first restarts (losing every runtime
// change). The second keeps serving on its slots the whole time, no
// request through it fails, and the first is brought back to the same
// slot table without touching a container.
func TestOverlapFirstInstanceRestartsUnderLoad(t *testing.T) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) { c.Services[0].MinReplicas = 2 })
	_, lb2, url2 := e.startMirror()
	e.startLoop()
	e.waitFor("2 replicas serving on both instances", 30*time.Second, func() bool {
		s := e.slots()
		return s.serving == 2 && s.other == 0 && e.inStep(lb2) && e.converged()
	})
	before, containers := e.table(lb2), e.running()
	var serving []string
	for name, row := range before {
		if row.Serving && row.Weighted {
			serving = append(serving, name)
		}
	}
	slices.Sort(serving)
	load := loadgen.Start(context.Background(), url2, 4)
	defer load.Stop()
	time.Sleep(500 * time.Millisecond) // the load flows before the fault

	watch := e.watchSlots(lb2, serving)
	e.haproxy.Restart(t)
	took, rebuilt := poll(20*time.Second, func() bool { return maps.Equal(e.table(e.lb), before) })
	time.Sleep(2 * time.Second) // several more ticks: nothing may move the second afterwards
	seen := watch()
	r := load.Stop()

	seen.assert(t, "the second instance", r)
	if seen.minServing == 0 {
		t.Errorf("invariant \"the second keeps serving\": 0 serving slots at +%s: %s", seen.minAt.Round(time.Millisecond), seen.minView)
	}
	if len(seen.maint) > 0 {
		t.Errorf("invariant \"the second's slots are never put in maint\": %v of its serving slots %v went to maint", seen.maint, serving)
	}
	if !rebuilt {
		t.Errorf("invariant \"the first is rebuilt to the same slots\": not within %s: first %v, second before %v", took.Round(time.Millisecond), e.table(e.lb), before)
	} else {
		t.Logf("the first instance showed the second's slot table again %s after its restart", took.Round(time.Millisecond))
	}
	if after := e.running(); !mapsEqualKeys(containers, after) {
		t.Errorf("invariant \"a restart does not churn containers\": %d containers before, %d after", len(containers), len(after))
	}
}

// TestOverlapPinUpThenDownWhileStarting: "scale 4" then, 0.6 s later while
// its starts run, "scale 2". Serving slots never fall below the lower of
// what served then and the new pin, no request fails, and the service
// settles at 2 serving with no container left over.
func TestOverlapPinUpThenDownWhileStarting(t *testing.T) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) { c.Services[0].MinReplicas = 2 })
	apiURL, _ := e.startLoopAndAPI()
	e.waitFor("2 replicas serving", 30*time.Second, func() bool {
		s := e.slots()
		return s.serving == 2 && s.other == 0 && e.converged()
	})
	load := loadgen.Start(context.Background(), e.url, 2)
	defer load.Stop()
	time.Sleep(500 * time.Millisecond)

	watch := e.watchSlots(e.lb, nil)
	e.scale(apiURL, 4)
	time.Sleep(600 * time.Millisecond)
	at := e.slots()
	e.scale(apiURL, 2)
	// A start shows in HAProxy only once its container runs: count them.
	t.Logf("at the second pin: %d slots serving, %d bound but not serving; %d containers just after it", at.serving, at.other, e.containers())
	floor := min(at.serving, 2)
	took, settled := poll(30*time.Second, func() bool {
		s := e.slots()
		return s.serving == 2 && s.other == 0 && e.containers() == 2 && e.converged()
	})
	time.Sleep(time.Second) // several more ticks at the pin
	seen := watch()
	r := load.Stop()

	seen.assert(t, "haproxy", r)
	if seen.minServing < floor {
		t.Errorf("invariant \"serving never below the lower pin\": %d serving at +%s, want at least %d: %s", seen.minServing, seen.minAt.Round(time.Millisecond), floor, seen.minView)
	}
	if !settled {
		s := e.slots()
		t.Errorf("invariant \"settles at the pin\": not within %s: %d serving, %d other, %d containers, converged %v", took.Round(time.Millisecond), s.serving, s.other, e.containers(), e.converged())
	} else {
		t.Logf("settled at 2 serving, 2 containers %s after the second pin", took.Round(time.Millisecond))
	}
}

// TestOverlapHAProxyRestartsWhileStartWaitsForCheck: HAProxy restarts
// (runtime state lost) while a start's slot waits for its first passed
// check. The slot is taken out and its container kept, then bound again by
// the next tick: one container from start to end, never a second. Before,
// the healthy container was removed and another started.
func TestOverlapHAProxyRestartsWhileStartWaitsForCheck(t *testing.T) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].Container.Env["ECHO_HEALTH"] = "fail" // the check waits until the test says
	})
	e.startLoop()
	var first string
	var port int
	e.waitFor("a start bound, waiting for its check", 30*time.Second, func() bool {
		cs := e.managed()
		if len(cs) != 1 {
			return false
		}
		first, port = cs[0].ID, cs[0].Port
		return e.readyAt(port)
	})
	e.haproxy.Restart(t)
	rebound := e.waitFor("the slot bound again at the same container", 15*time.Second, func() bool { return e.readyAt(port) })
	t.Logf("bound again %s after the restart", rebound.Round(time.Millisecond))
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/admin/health?state=ok", port), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := e.waitFor("serving", 15*time.Second, func() bool { s := e.slots(); return s.serving == 1 && e.converged() })
	t.Logf("serving %s after the check was let pass", took.Round(time.Millisecond))
	if cs := e.managed(); len(cs) != 1 || cs[0].ID != first {
		t.Errorf("invariant \"a restart does not churn a starting container\": containers %v, want only %s", cs, first)
	}
	if strings.Contains(e.logs.String(), "container_removed") {
		t.Errorf("a container was removed:\n%s", e.logs.String())
	}
}

// readyAt reports whether a slot is ready at the container published on
// port (on 127.0.0.1).
func (e *env) readyAt(port int) bool {
	for _, row := range e.table(e.lb) {
		if row.Port == port && row.Admin == runtimeapi.AdminReady {
			return true
		}
	}
	return false
}
