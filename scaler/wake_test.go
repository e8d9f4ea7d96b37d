package scaler_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

const wakeConfig = `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
interval: 100ms
services:
  - name: web
    backend: web
    container: {image: web:1, port: 8080}
    min_replicas: 0
    max_replicas: 3
    target: {sessions_per_replica: 10}
    stabilization: {scale_down: 1s}
    wake: {listen: 127.0.0.1:9301, idle_after: 1s}
`

// wakeAll holds n requests at once, as a burst at the wake listener.
func wakeAll(loop *scaler.Loop, n int, timeout time.Duration) (addrs []netip.AddrPort, releases []func(), errs []error) {
	addrs, releases, errs = make([]netip.AddrPort, n), make([]func(), n), make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { addrs[i], releases[i], errs[i] = loop.Wake(ctx, "web") })
	}
	wg.Wait()
	return addrs, releases, errs
}

// A burst held at a service at zero makes the running loop tick at once
// and start one replica; every request gets its address once its check
// passed; the released service goes back to zero after idle_after.
func TestWakeBurstStartsOneReplica(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(300 * time.Millisecond)
	if n := f.Engine.Count(); n != 0 {
		t.Fatalf("%d containers at zero, want 0", n)
	}

	begin := time.Now()
	addrs, releases, errs := wakeAll(f.Loop, 50, 10*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("wake %d: %v", i, err)
		}
		if addrs[i] != addrs[0] {
			t.Errorf("wake %d went to %s, wake 0 to %s: one replica should serve the burst", i, addrs[i], addrs[0])
		}
	}
	t.Logf("burst of 50 served by %s after %s", addrs[0], time.Since(begin).Round(time.Millisecond))
	if n := f.Engine.Count(); n != 1 {
		t.Errorf("%d containers started for the burst, want 1", n)
	}
	if !f.Engine.RunningOn(int(addrs[0].Port())) {
		t.Errorf("no container runs on %s", addrs[0])
	}
	time.Sleep(1500 * time.Millisecond) // past idle_after: requests still being passed on keep the replica
	if n := f.Engine.Count(); n != 1 {
		t.Fatalf("replica went while requests were still passed to it: %d containers", n)
	}
	for _, r := range releases {
		r()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Engine.Count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not back to zero: %d containers", f.Engine.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := f.Loop.Service("web"); st.Replicas.Serving != 0 || st.Desired != 0 {
		t.Errorf("status at zero: %+v", st.Replicas)
	}
}

// Pinned at 0 the service is closed: Wake refuses at once and nothing
// starts. A rollout at zero records the image the next wake runs.
func TestWakeClosedAndRolloutAtZero(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	ctx := context.Background()
	tick := func() { f.Loop.Tick(ctx); f.Loop.Wait() }
	tick()
	if err := f.Loop.Pin("web", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Loop.Wake(ctx, "web"); !errors.Is(err, scaler.ErrClosed) {
		t.Fatalf("pinned at 0: Wake = %v, want ErrClosed", err)
	}
	tick()
	if n := f.Engine.Count(); n != 0 {
		t.Fatalf("closed service started %d containers", n)
	}
	if err := f.Loop.Resume("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Loop.StartRollout("web", "web:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		tick()
	}
	if r, _ := f.Loop.RolloutStatus("web"); r.State != scaler.RolloutSucceeded || f.Engine.Count() != 0 {
		t.Fatalf("rollout at zero: %s (%s), %d containers", r.State, r.Message, f.Engine.Count())
	}
	// The wake below runs the ticks itself: Tick does not wait for a kick.
	result := make(chan error, 1)
	go func() {
		_, release, err := f.Loop.Wake(ctx, "web")
		if release != nil {
			release()
		}
		result <- err
	}()
	for i := 0; ; i++ {
		tick()
		select {
		case err := <-result:
			if err != nil {
				t.Fatalf("wake after rollout: %v", err)
			}
			if imgs := f.Engine.Images(); imgs["web:2"] != 1 || len(imgs) != 1 {
				t.Errorf("the wake after a rollout at zero ran %v, want web:2", imgs)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if i > 100 {
			t.Fatal("wake never served")
		}
	}
}

// A reload may not add, remove or change a wake block (its listener starts
// with slotscaler); other changes of such a service still reload.
func TestReloadKeepsWake(t *testing.T) {
	f := scalertest.New(t, wakeConfig, scalertest.Options{})
	for _, tt := range []struct {
		name    string
		edit    *strings.Replacer
		refused bool
	}{
		{"other key", strings.NewReplacer("max_replicas: 3", "max_replicas: 2"), false},
		{"wake listen", strings.NewReplacer("listen: 127.0.0.1:9301", "listen: 127.0.0.1:9302"), true},
		{"wake removed", strings.NewReplacer("    wake: {listen: 127.0.0.1:9301, idle_after: 1s}\n", "", "min_replicas: 0", "min_replicas: 1"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.edit.Replace(wakeConfig)))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Loop.Reload(cfg)
			if refused := errors.Is(err, scaler.ErrConflict); refused != tt.refused {
				t.Errorf("Reload = %v, want refused %v", err, tt.refused)
			}
		})
	}
}
