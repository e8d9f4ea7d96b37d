package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

// ownedEngine is the local engine as an instance with owner ID owner sees it.
func ownedEngine(t *testing.T, owner string) *docker.Engine {
	t.Helper()
	e, err := docker.New("local", docker.Options{Endpoint: dockertest.Endpoint, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// holdSteady checks for d that each env serves one slot and that the
// service's containers stay exactly want (ids): nobody removes another's.
func holdSteady(t *testing.T, d time.Duration, want []string, envs ...*env) {
	t.Helper()
	slices.Sort(want)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		var ids []string
		for _, c := range envs[0].managed() {
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Fatalf("containers of the service are %v, want %v all along", ids, want)
		}
		for i, e := range envs {
			if s := e.slots(); s.serving != 1 || s.other != 0 {
				t.Fatalf("instance %d: slots %+v, want one serving", i, s)
			}
		}
	}
}

// TestOwnersShareAnEngine: two slotscalers with different owner IDs (two
// state_dirs) run a service of the same name, each behind its own haproxy,
// on one Docker engine. Each starts and keeps its own container; neither
// takes the other's for a stray of its slot.
func TestOwnersShareAnEngine(t *testing.T) {
	service := dockertest.ServiceName(t, "own")
	a := newEnvNamed(t, config.ModeTemplate, service, nil)
	b := newEnvNamed(t, config.ModeTemplate, service, nil)
	a.engine, b.engine = ownedEngine(t, "owner-a"), ownedEngine(t, "owner-b")
	a.startLoop()
	b.startLoop()
	for _, e := range []*env{a, b} {
		e.waitFor("one slot serving", 30*time.Second, func() bool { return e.slots().serving == 1 })
	}
	all := a.managed()
	owners := map[string]string{}
	var ids []string
	for _, c := range all {
		inspect, err := a.docker.ContainerInspect(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		owners[inspect.Config.Labels[scaler.LabelOwner]] = c.ID
		ids = append(ids, c.ID)
	}
	if len(all) != 2 || owners["owner-a"] == "" || owners["owner-b"] == "" {
		t.Fatalf("containers %+v with owners %v: want one of owner-a and one of owner-b", all, owners)
	}
	holdSteady(t, 3*time.Second, ids, a, b)
}

// TestUnlabelledContainerAdopted: a container started before the owner
// label (by an instance without owner) keeps serving when the instance
// restarts with an owner ID: it is adopted, not replaced nor removed.
func TestUnlabelledContainerAdopted(t *testing.T) {
	e := newEnv(t, config.ModeTemplate)
	stop := e.startLoop() // e.engine is the local engine without owner
	e.waitFor("one slot serving", 30*time.Second, func() bool { return e.slots().serving == 1 })
	before := e.managed()
	stop()
	if len(before) != 1 {
		t.Fatalf("%d containers before the restart, want 1", len(before))
	}
	inspect, err := e.docker.ContainerInspect(t.Context(), before[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if owner, ok := inspect.Config.Labels[scaler.LabelOwner]; ok {
		t.Fatalf("container started without owner carries owner label %q", owner)
	}
	e.engine = ownedEngine(t, "owner-a")
	e.startLoop()
	holdSteady(t, 3*time.Second, []string{before[0].ID}, e)
}
