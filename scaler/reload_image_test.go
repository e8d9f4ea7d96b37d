package scaler_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// A rollout's image stays across reloads that leave container.image as it
// was; a new container.image in the YAML wins over it. While a rollout
// runs, a new container.image is refused (409) rather than lost when the
// rollout ends.
func TestReloadedImageWinsOverRollout(t *testing.T) {
	h := rolloutHarness(t)
	withImage := func(image string, minReplicas int) *config.Config {
		next := *h.cfg
		next.Services = append([]config.Service(nil), h.cfg.Services...)
		next.Services[0].Container.Image = image
		next.Services[0].MinReplicas = minReplicas
		return &next
	}
	image := func() string {
		st, _ := h.loop.Service("web")
		return st.Image
	}
	if _, err := h.loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.loop.Reload(withImage("web:3", h.cfg.Services[0].MinReplicas)); !errors.Is(err, scaler.ErrConflict) || !strings.Contains(err.Error(), "container.image changed while rollout 1 runs") {
		t.Fatalf("reload with a new image during a rollout: %v, want ErrConflict", err)
	}
	if r := h.rolloutUntilDone(40); r.State != scaler.RolloutSucceeded {
		t.Fatalf("rollout %s: %s", r.State, r.Message)
	}
	if err := h.loop.Reload(withImage("web:1", 3)); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if got := image(); got != "web:2" {
		t.Errorf("after a reload that kept container.image: service runs %q, want the rollout's web:2", got)
	}
	if err := h.loop.Reload(withImage("web:3", 3)); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if got := image(); got != "web:3" {
		t.Errorf("after a reload to container.image web:3: service runs %q, want web:3", got)
	}
}

// The same holds across a restart: the rollout's image is restored only
// while container.image is the one it replaced.
func TestRestartWithNewImageInYAML(t *testing.T) {
	h := rolloutHarness(t)
	if _, err := h.loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if r := h.rolloutUntilDone(40); r.State != scaler.RolloutSucceeded {
		t.Fatalf("rollout %s: %s", r.State, r.Message)
	}
	for _, c := range []struct{ yaml, want string }{{"web:1", "web:2"}, {"web:3", "web:3"}} {
		cfg := *h.cfg
		cfg.Services = append([]config.Service(nil), h.cfg.Services...)
		cfg.Services[0].Container.Image = c.yaml
		restarted, err := scaler.New(scaler.Options{Config: &cfg, LB: h.lb, StateDir: h.stateDir,
			Hosts: h.hosts, Now: func() time.Time { return h.now }})
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := restarted.Service("web"); st.Image != c.want {
			t.Errorf("restart with container.image %s after a rollout to web:2: runs %q, want %s", c.yaml, st.Image, c.want)
		}
	}
}

// The status's generation follows a reload that changes the container's
// spec but not its image: the loop keeps the label per image, and must not
// keep the old spec's.
func TestReloadedSpecChangesGeneration(t *testing.T) {
	h := newHarness(t, harnessOpt{})
	h.tick()
	before, _ := h.loop.Service("web")
	next := *h.cfg
	next.Services = append([]config.Service(nil), h.cfg.Services...)
	next.Services[0].Container.Env = map[string]string{"MODE": "reloaded"}
	if err := h.loop.Reload(&next); err != nil {
		t.Fatal(err)
	}
	h.tick()
	after, _ := h.loop.Service("web")
	if want := scaler.Generation(nil, next.Services[0].Container); after.Generation != want || after.Generation == before.Generation {
		t.Errorf("generation %q after a reload that changed env (before %q), want %q", after.Generation, before.Generation, want)
	}
}
