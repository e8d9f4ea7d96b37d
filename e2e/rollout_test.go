package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// lbctlBinary builds the real lbctl once per test process.
func lbctlBinary(t testing.TB) string { return goBinary(t, "../lbctl", "lbctl") }

// lbctl runs the binary against the test API with the token in the
// environment, as CI would, and returns its output and exit code.
func lbctl(t *testing.T, apiURL string, args ...string) (string, int) {
	cmd := exec.Command(lbctlBinary(t), append([]string{"--api", apiURL}, args...)...)
	cmd.Env = append(os.Environ(), "SLOTSCALER_TOKEN="+apiToken)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

// rolloutEnv is 3 replicas of the v1 echo image serving, one free slot,
// under a steady load.
func rolloutEnv(t *testing.T) (*env, string, *loadgen.Run) {
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Services[0].MinReplicas = 3
		c.Services[0].UnhealthyAfter.Duration = 5 * time.Second
		c.Services[0].DrainTimeout.Duration = 3 * time.Second
	})
	url, _ := e.startLoopAndAPI()
	e.waitFor("3 replicas serving", 30*time.Second, func() bool { return e.slots().serving == 3 })
	load := loadgen.Start(context.Background(), e.url, 6)
	t.Cleanup(func() { load.Stop() })
	return e, url, load
}

func (e *env) images() map[string]int {
	out := map[string]int{}
	for _, c := range e.managed() {
		out[c.Image]++
	}
	return out
}

// TestRolloutV1ToV2UnderLoad: "lbctl rollout --wait" replaces every
// replica with v2, one at a time behind a health-checked surge, with no
// failed request.
func TestRolloutV1ToV2UnderLoad(t *testing.T) {
	e, url, load := rolloutEnv(t)
	start := time.Now()
	out, code := lbctl(t, url, "rollout", e.service, "--image", dockertest.EchoImageV2, "--wait", "--timeout", "3m")
	t.Logf("lbctl rollout (%s, exit %d):\n%s", time.Since(start).Round(time.Millisecond), code, out)
	if code != 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("rollout exit %d", code)
	}
	e.waitFor("old containers removed", 20*time.Second, func() bool { return len(e.images()) == 1 })
	if imgs := e.images(); imgs[dockertest.EchoImageV2] != 3 {
		t.Errorf("containers after the rollout: %v, want 3 on v2", imgs)
	}
	time.Sleep(time.Second)
	r := load.Stop()
	t.Logf("%d requests during the rollout, %d failed, answers by version %v", r.OK+r.Failed, r.Failed, r.Versions)
	if r.Failed != 0 {
		t.Errorf("%d failed requests: %v", r.Failed, r.Errors)
	}
	if r.Versions["v2"] == 0 || r.Versions["v1"] == 0 {
		t.Errorf("want answers from both versions during the rollout: %v", r.Versions)
	}
	if out, _ := lbctl(t, url, "status", e.service); !strings.Contains(out, "image "+dockertest.EchoImageV2) {
		t.Errorf("status after rollout:\n%s", out)
	}
}

// TestRolloutUnhealthyImageRollsBack: the new image never passes its
// health check; the rollout rolls back, v1 keeps serving every request,
// and "lbctl rollout --wait" exits 1.
func TestRolloutUnhealthyImageRollsBack(t *testing.T) {
	e, url, load := rolloutEnv(t)
	out, code := lbctl(t, url, "rollout", e.service, "--image", dockertest.EchoImageBad, "--wait", "--timeout", "3m")
	t.Logf("lbctl rollout (exit %d):\n%s", code, out)
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rollout of an unhealthy image: exit %d, want 1 with rolled_back", code)
	}
	e.waitFor("unhealthy container removed", 20*time.Second, func() bool { return len(e.images()) == 1 })
	if imgs := e.images(); imgs[dockertest.EchoImage] != 3 {
		t.Errorf("containers after the rollback: %v, want 3 on v1", imgs)
	}
	r := load.Stop()
	t.Logf("%d requests during the rollout, %d failed, versions %v", r.OK+r.Failed, r.Failed, r.Versions)
	if r.Failed != 0 || r.Versions["v3"] != 0 {
		t.Errorf("%d failed requests (%v); answers from the unhealthy version: %d", r.Failed, r.Errors, r.Versions["v3"])
	}
}
