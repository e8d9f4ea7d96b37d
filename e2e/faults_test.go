package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

// faultEnv is 2 replicas serving under a steady load, with short
// unhealthy_after and drain_timeout.
func faultEnv(t *testing.T, tune func(*config.Config)) (*env, *loadgen.Run) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].MinReplicas = 2
		c.Services[0].UnhealthyAfter.Duration = 2 * time.Second
		c.Services[0].DrainTimeout.Duration = 3 * time.Second
		if tune != nil {
			tune(c)
		}
	})
	e.startLoop()
	e.waitFor("2 replicas serving", 30*time.Second, func() bool { return e.slots().serving == 2 })
	load := loadgen.Start(context.Background(), e.url, 4)
	t.Cleanup(func() { load.Stop() })
	return e, load
}

// running lists the service's running containers by id.
func (e *env) running() map[string]scaler.Container {
	out := map[string]scaler.Container{}
	for _, c := range e.managed() {
		if c.Running {
			out[c.ID] = c
		}
	}
	return out
}

// converged: every container of the service runs and is the one its slot
// points at; every ready or draining slot points at a running container.
func (e *env) converged() bool {
	all := e.managed()
	ports := map[int]bool{}
	for _, c := range all {
		if !c.Running {
			return false
		}
		ports[c.Port] = true
	}
	b, err := e.lb.Backend(context.Background(), e.service)
	if err != nil {
		return false
	}
	bound := 0
	for _, s := range b.Servers {
		if s.Admin == runtimeapi.AdminMaint {
			continue
		}
		if s.Addr != netip.MustParseAddr("127.0.0.1") || !ports[s.Port] {
			return false // a slot pointing at a dead address
		}
		bound++
	}
	return bound == len(all)
}

func (e *env) assertNoFailures(load *loadgen.Run) {
	e.t.Helper()
	r := load.Stop()
	e.t.Logf("%d requests under the fault, %d failed", r.OK+r.Failed, r.Failed)
	if r.Failed != 0 {
		e.t.Errorf("%d failed requests: %v", r.Failed, r.Errors)
	}
}

// TestFaultUnhealthyContainerReplaced: a container that fails its health
// check (but runs) is taken out, removed and replaced; min replicas hold.
func TestFaultUnhealthyContainerReplaced(t *testing.T) {
	e, load := faultEnv(t, nil)
	before := e.running()
	var sick scaler.Container
	for _, c := range before {
		sick = c
		break
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/admin/health?state=fail", sick.Port), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := e.waitFor("sick container replaced", 30*time.Second, func() bool {
		now := e.running()
		_, still := now[sick.ID]
		return !still && len(now) == 2 && e.slots().serving == 2 && e.converged()
	})
	t.Logf("converged %s after the health check started failing (unhealthy_after 2s)", took.Round(time.Millisecond))
	e.assertNoFailures(load)
}

// TestFaultContainerKilled: a container killed behind slotscaler's back is
// replaced; HAProxy retries the requests it cut on another slot.
func TestFaultContainerKilled(t *testing.T) {
	e, load := faultEnv(t, nil)
	var victim string
	for id := range e.running() {
		victim = id
		break
	}
	if err := e.docker.ContainerKill(context.Background(), victim, "KILL"); err != nil {
		t.Fatal(err)
	}
	took := e.waitFor("killed container replaced", 30*time.Second, func() bool {
		now := e.running()
		_, still := now[victim]
		return !still && len(now) == 2 && e.slots().serving == 2 && e.converged() && e.containers() == 2
	})
	t.Logf("converged %s after docker kill", took.Round(time.Millisecond))
	e.assertNoFailures(load)
}

// TestFaultHAProxyRestart: HAProxy restarts and forgets every runtime
// change; slotscaler binds the running containers again within two ticks
// (plus a health check), without restarting any.
func TestFaultHAProxyRestart(t *testing.T) {
	e, load := faultEnv(t, nil)
	load.Stop() // requests fail while HAProxy is down: not what this test counts
	before := e.running()
	e.haproxy.Restart(t)
	took := e.waitFor("slots bound again", 20*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	t.Logf("re-bound %s after the restart (interval 200ms, check inter 200ms)", took.Round(time.Millisecond))
	if after := e.running(); !mapsEqualKeys(before, after) {
		t.Errorf("containers changed: before %d, after %d: a restart must not churn them", len(before), len(after))
	}
	steady := loadgen.Start(context.Background(), e.url, 4)
	time.Sleep(time.Second)
	e.assertNoFailures(steady)
}

func mapsEqualKeys[V any](a, b map[string]V) bool {
	ka, kb := make([]string, 0, len(a)), make([]string, 0, len(b))
	for k := range a {
		ka = append(ka, k)
	}
	for k := range b {
		kb = append(kb, k)
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// TestFaultOperatorIntent: a slot drained straight on the socket is left
// drained and not counted (another slot covers), its container kept; once
// the operator puts it in maint, its container goes.
func TestFaultOperatorIntent(t *testing.T) {
	e, load := faultEnv(t, nil)
	ctx := context.Background()
	b, _ := e.lb.Backend(ctx, e.service)
	var slot runtimeapi.Server
	for _, s := range b.Servers {
		if s.Serving() {
			slot = s
			break
		}
	}
	if err := e.lb.SetState(ctx, e.service, slot.Name, runtimeapi.AdminDrain); err != nil {
		t.Fatal(err)
	}
	took := e.waitFor("other slots cover", 20*time.Second, func() bool { return e.slots().serving == 2 })
	t.Logf("covered %s after an operator drain", took.Round(time.Millisecond))
	time.Sleep(time.Second) // several ticks: nothing may re-enable it
	b, _ = e.lb.Backend(ctx, e.service)
	if s, _ := b.Server(slot.Name); s.Admin != runtimeapi.AdminDrain {
		t.Fatalf("operator-drained %s is now %s", slot.Name, s.Admin)
	}
	if n := len(e.running()); n != 3 {
		t.Fatalf("%d containers: the drained slot's container must be kept (want 3)", n)
	}
	if err := e.lb.SetState(ctx, e.service, slot.Name, runtimeapi.AdminMaint); err != nil {
		t.Fatal(err)
	}
	took = e.waitFor("maint slot's container removed", 20*time.Second, func() bool { return len(e.running()) == 2 && e.converged() })
	t.Logf("container removed %s after the operator's maint", took.Round(time.Millisecond))
	e.assertNoFailures(load)
}

func readyz(t *testing.T, apiURL string) (int, string) {
	resp, err := http.Get(apiURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestFaultDockerUnavailable: the Docker engine refuses every connection
// for 10 s. slotscaler keeps running, leaves the serving slots alone,
// reports the fault on /readyz, and resumes when the engine is back.
func TestFaultDockerUnavailable(t *testing.T) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].MinReplicas = 2
		c.Services[0].UnhealthyAfter.Duration = 2 * time.Second
	})
	proxy := dockertest.NewProxy(t)
	engine, err := docker.New("local", docker.Options{Endpoint: proxy.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	e.engine = engine
	apiURL, _ := e.startLoopAndAPI()
	e.waitFor("2 replicas serving", 30*time.Second, func() bool { return e.slots().serving == 2 })
	load := loadgen.Start(context.Background(), e.url, 4)
	defer load.Stop()
	before := e.running()

	proxy.Cut()
	took := e.waitFor("/readyz reports the engine", 5*time.Second, func() bool {
		code, body := readyz(t, apiURL)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "docker host local")
	})
	t.Logf("/readyz said 503 %s after the engine went away", took.Round(time.Millisecond))
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if s := e.slots(); s.serving != 2 || s.other != 0 {
			t.Fatalf("serving slots changed while Docker was away: %+v", s)
		}
	}
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	took = e.waitFor("/readyz ready again", 10*time.Second, func() bool { code, _ := readyz(t, apiURL); return code == http.StatusOK })
	t.Logf("ready again %s after the engine came back", took.Round(time.Millisecond))
	if after := e.running(); !mapsEqualKeys(before, after) || !e.converged() {
		t.Errorf("containers changed across the outage: before %d after %d", len(before), len(after))
	}
	e.assertNoFailures(load)
}

// TestFaultOperatorReloadKeepsSlots: with haproxy.server_state_file set,
// slotscaler keeps that file current and "render" writes slots HAProxy can
// restore addresses for. An operator's seamless reload under load brings
// every slot back bound and serving before slotscaler does anything (its
// loop is stopped across the reload), and no request fails.
func TestFaultOperatorReloadKeepsSlots(t *testing.T) {
	stateFile := filepath.Join(t.TempDir(), "server-state")
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].MinReplicas = 2
		c.HAProxy.ServerStateFile = stateFile
	})
	stop := e.startLoop()
	e.waitFor("2 replicas serving", 30*time.Second, func() bool { return e.slots().serving == 2 })
	load := loadgen.Start(context.Background(), e.url, 4)
	defer load.Stop()
	time.Sleep(500 * time.Millisecond)
	stop() // nothing may re-apply the slots but HAProxy itself
	if data, err := os.ReadFile(stateFile); err != nil || !strings.Contains(string(data), e.service) {
		t.Fatalf("server state file: %v\n%s", err, data)
	}
	before, containers := e.info(), e.running()

	e.haproxy.Reload(t)
	took := e.waitFor("slots restored by HAProxy", 10*time.Second, func() bool { return e.slots().serving == 2 && e.converged() })
	after := e.info()
	t.Logf("reloaded (pid %d -> %d); slots bound and serving %s later, with slotscaler stopped", before.PID, after.PID, took.Round(time.Millisecond))
	if after.PID == before.PID {
		t.Fatal("haproxy was not reloaded")
	}
	time.Sleep(time.Second)
	e.startLoop()
	time.Sleep(time.Second)
	if now := e.running(); !mapsEqualKeys(containers, now) || !e.converged() {
		t.Errorf("containers churned after the reload: before %d after %d", len(containers), len(now))
	}
	e.assertNoFailures(load)
}

// TestSeveralHAProxies: one slotscaler, two HAProxy instances (two
// runtime_api entries). Load through the second alone scales the service;
// both instances always show the same slots; when the second restarts it
// is brought back to the first's slots without touching a container.
func TestSeveralHAProxies(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode)
			second, lb2, url2 := e.startMirror()
			e.startLoop()
			e.waitFor("min replicas serving on both", 30*time.Second, func() bool { return e.slots().serving == 1 && e.inStep(lb2) })
			first := loadgen.Start(context.Background(), e.url, 2)
			defer first.Stop()
			step := loadgen.Start(context.Background(), url2, 24)
			took := e.waitFor("scaled on the second's load", 30*time.Second, func() bool { return e.slots().serving >= 3 && e.inStep(lb2) })
			t.Logf("%s: load through the second instance only: %d serving on both after %s", mode, e.slots().serving, took.Round(time.Millisecond))
			r := step.Stop()
			if r.Failed != 0 {
				t.Errorf("%d of %d requests through the second failed: %v", r.Failed, r.OK+r.Failed, r.Errors)
			}
			e.waitFor("starts settled", 20*time.Second, func() bool { return e.slots().other == 0 && e.inStep(lb2) && e.converged() })
			before := e.running()
			second.Restart(t)
			took = e.waitFor("second brought back in step", 20*time.Second, func() bool { return e.inStep(lb2) && e.converged() })
			t.Logf("%s: second instance restarted; in step again %s later", mode, took.Round(time.Millisecond))
			if after := e.running(); !mapsEqualKeys(before, after) {
				t.Errorf("containers changed across the second's restart: %d -> %d", len(before), len(after))
			}
			again := loadgen.Start(context.Background(), url2, 2)
			time.Sleep(time.Second)
			e.assertNoFailures(again)
			e.assertNoFailures(first)
		})
	}
}
