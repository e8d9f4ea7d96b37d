package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// TestAutoscaleEndToEnd: a load step through HAProxy scales the echo
// service from 1 to at least 3 containers; when the load stops it returns
// to 1 after the stabilization window. A light steady load runs all along:
// no request may fail and HAProxy is never reloaded.
func TestAutoscaleEndToEnd(t *testing.T) {
	for _, mode := range []string{config.ModeTemplate, config.ModeDynamic} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode)
			e.startLoop()
			e.loadStepUpAndDown(mode, func(workers int) *loadgen.Run {
				return loadgen.Start(context.Background(), e.url, workers)
			})
		})
	}
}

// loadStepUpAndDown waits for the min replica, then runs a steady load of
// 2 clients and a step of 24 from start: the service must grow to at least
// 3 serving slots, answer the step from at least 3 containers, return to
// 1 slot and 1 container once the step ends, and fail no request, with
// HAProxy neither reloaded nor restarted. what names the run in the log.
func (e *env) loadStepUpAndDown(what string, start func(workers int) *loadgen.Run) {
	t := e.t
	before := e.info()
	e.waitFor("min replicas serving", 20*time.Second, func() bool { return e.slots().serving == 1 })

	steady := start(2)
	defer steady.Stop()
	step := start(24)
	up := e.waitFor("scale up to 3", 30*time.Second, func() bool { return e.slots().serving >= 3 })
	t.Logf("%s: 1 -> %d serving in %s", what, e.slots().serving, up.Round(time.Millisecond))
	time.Sleep(time.Second)
	stepResult := step.Stop()

	down := e.waitFor("scale down to 1", 40*time.Second, func() bool {
		s := e.slots()
		return s.serving == 1 && s.other == 0 && e.containers() == 1
	})
	t.Logf("%s: back to 1 serving and 1 container in %s after the load stopped", what, down.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	steadyResult := steady.Stop()

	after := e.info()
	if after.PID != before.PID || after.StartTime != before.StartTime || after.Uptime < before.Uptime {
		t.Errorf("haproxy was reloaded or restarted: before %+v after %+v", before, after)
	}
	total := stepResult.OK + steadyResult.OK
	failed := stepResult.Failed + steadyResult.Failed
	t.Logf("%s: %d requests, %d failed, answered by %d containers", what, total+failed, failed, len(stepResult.Answers))
	if failed != 0 {
		t.Errorf("%d failed requests: %v %v", failed, stepResult.Errors, steadyResult.Errors)
	}
	if len(stepResult.Answers) < 3 {
		t.Errorf("the step was answered by %d containers, want at least 3", len(stepResult.Answers))
	}
}

// TestAutoscaleOnCPU: with only the CPU target set, containers kept busy
// (the Docker stats API reports their CPU) make the service grow.
func TestAutoscaleOnCPU(t *testing.T) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		s := &c.Services[0]
		s.Target = config.Target{CPUPercent: 50, Tolerance: 0.1}
		s.Container.CPUs = 0.2
		s.Container.Env = map[string]string{"ECHO_BURN": "20ms"}
		// The load saturates the only container's CPU on purpose, which
		// slows its /healthz too: with the suite's 200 ms checks and fall 2
		// HAProxy once took it DOWN for the seconds the scale-up takes (a
		// flake: no server, 503s). Its checks get room, not the others'.
		s.Check.Inter.Duration, s.Check.Fall = time.Second, 5
	})
	e.startLoop()
	e.waitFor("min replicas serving", 20*time.Second, func() bool { return e.slots().serving == 1 })
	load := loadgen.Start(context.Background(), e.url, 6)
	took := e.waitFor("scale up on CPU", 30*time.Second, func() bool { return e.slots().serving >= 2 })
	r := load.Stop()
	t.Logf("1 -> %d serving %s after the CPU load began; %d requests, %d failed", e.slots().serving, took.Round(time.Millisecond), r.OK+r.Failed, r.Failed)
	if r.Failed != 0 {
		t.Errorf("%d failed requests: %v", r.Failed, r.Errors)
	}
	if !strings.Contains(e.logs.String(), "reason=cpu") {
		t.Errorf("the scale-up was not decided on CPU")
	}
}
