package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// stateFileWorld is a ServerStateFile over the in-memory HAProxy whose
// dump lists backend web's slots ("slot1 ready 127.0.0.1:8080 w100") and
// counts the dumps.
type stateFileWorld struct {
	fake  *runtimeapi.Fake
	file  *scaler.ServerStateFile
	path  string
	dumps atomic.Int32
	fail  atomic.Bool // the next dumps fail
}

func newStateFileWorld(t *testing.T) *stateFileWorld {
	t.Helper()
	w := &stateFileWorld{fake: runtimeapi.NewFake(), path: filepath.Join(t.TempDir(), "server-state")}
	w.fake.DeclareBackend("web", "roundrobin")
	w.fake.DeclareTemplate("web", "slot", 2, netip.MustParseAddrPort("127.0.0.1:9"))
	w.file = scaler.WithServerStateFile(haproxy.New(w.fake), w.dump, w.path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return w
}

func (w *stateFileWorld) dump(ctx context.Context) ([]byte, error) {
	w.dumps.Add(1)
	if w.fail.Load() {
		return nil, errors.New("socket gone")
	}
	b, err := w.fake.Backend(ctx, "web")
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	for _, s := range b.Servers {
		fmt.Fprintf(&out, "%s %s %s w%d\n", s.Name, s.Admin, netip.AddrPortFrom(s.Addr, uint16(s.Port)), s.Weight)
	}
	return []byte(out.String()), nil
}

func (w *stateFileWorld) written(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(w.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(data)
}

// tickEnd is what the loop does at the end of a tick.
func (w *stateFileWorld) tickEnd() { w.file.AtTickEnd(nil).Tick(time.Millisecond, nil, nil) }

// TestServerStateFileWrites: what is written at once, what waits for the
// tick's end.
func TestServerStateFileWrites(t *testing.T) {
	ctx := context.Background()
	w := newStateFileWorld(t)
	lo := netip.MustParseAddr("127.0.0.1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(dumps int32, has string) {
		t.Helper()
		if got := w.written(t); w.dumps.Load() != dumps || !strings.Contains(got, has) {
			t.Fatalf("%d dumps, file\n%s\nwant %d dumps and a file with %q", w.dumps.Load(), got, dumps, has)
		}
	}

	// A bind: its first steps on a slot in maint wait, the state change
	// writes them, and so does the weight once the check passed.
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetAddr("web", "slot1", lo, 8080)})[0])
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetWeight("web", "slot1", 0)})[0])
	must(w.file.Apply(ctx, []scaler.Change{scaler.EnableHealth("web", "slot1")})[0])
	expect(0, "")
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminReady)})[0])
	expect(1, "slot1 ready 127.0.0.1:8080 w0\n")
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetWeight("web", "slot1", 100)})[0])
	expect(2, "slot1 ready 127.0.0.1:8080 w1\n")
	w.tickEnd()
	expect(2, "slot1 ready 127.0.0.1:8080 w1\n")

	// Only deferred changes: written at the tick's end.
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetAddr("web", "slot2", lo, 8081)})[0])
	expect(2, "slot2 maint 127.0.0.1:9 w1\n")
	w.tickEnd()
	expect(3, "slot2 maint 127.0.0.1:8081 w1\n")

	// A refused change writes nothing.
	if err := w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "nope", scaler.AdminDrain)})[0]; err == nil {
		t.Fatal("SetState on an unknown server: want an error")
	}
	w.tickEnd()
	expect(3, "")

	// Drain and maint at once: the container goes right after a maint.
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminDrain)})[0])
	expect(4, "slot1 drain ")
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminMaint)})[0])
	expect(5, "slot1 maint ")

	// A failed write is tried again at the next tick's end.
	w.fail.Store(true)
	must(w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot2", scaler.AdminReady)})[0])
	expect(6, "slot2 maint ")
	w.fail.Store(false)
	w.tickEnd()
	expect(7, "slot2 ready ")
}

// TestServerStateFileChangeDuringWrite: a change made while the file is
// being written (an operation binding a slot between ticks) is written at
// the next tick's end, not lost.
func TestServerStateFileChangeDuringWrite(t *testing.T) {
	ctx := context.Background()
	w := newStateFileWorld(t)
	var once atomic.Bool
	w.file = scaler.WithServerStateFile(haproxy.New(w.fake), func(ctx context.Context) ([]byte, error) {
		data, err := w.dump(ctx)
		if once.CompareAndSwap(false, true) {
			// After the dump read HAProxy, before the file is written.
			if err := w.file.Apply(ctx, []scaler.Change{scaler.SetAddr("web", "slot1", netip.MustParseAddr("127.0.0.2"), 80)})[0]; err != nil {
				t.Error(err)
			}
		}
		return data, err
	}, w.path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := w.file.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminReady)})[0]; err != nil {
		t.Fatal(err)
	}
	if got := w.written(t); !strings.Contains(got, "slot1 ready 127.0.0.1:9 w1\n") {
		t.Fatalf("first write:\n%s", got)
	}
	w.tickEnd()
	if got := w.written(t); !strings.Contains(got, "slot1 ready 127.0.0.2:80 w1\n") {
		t.Errorf("the change made during the first write was not written at the next tick's end:\n%s", got)
	}
}

// TestServerStateFileLoop: a loop wired as run.go wires it (the file also
// at the end of every tick) keeps the file current with the slots its
// operations bind, at most two writes per bind and one per tick.
func TestServerStateFileLoop(t *testing.T) {
	var w *stateFileWorld
	f := scalertest.New(t, `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080}, min_replicas: 2, max_replicas: 3, target: {sessions_per_replica: 10}}
`, scalertest.Options{
		WrapLB: func(lb scaler.LB) scaler.LB {
			w = &stateFileWorld{path: filepath.Join(t.TempDir(), "server-state")}
			w.file = scaler.WithServerStateFile(lb, w.dump, w.path, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return w.file
		},
		Observer: observerFunc(func() { w.tickEnd() }),
	})
	w.fake = f.LB
	ctx := context.Background()
	bound := regexp.MustCompile(`(?m)^slot[12] ready 127\.0\.0\.1:300\d\d w1$`)
	ticks := 0
	for ; ticks < 5 && len(bound.FindAllString(w.written(t), -1)) < 2; ticks++ {
		f.Loop.Tick(ctx)
		f.Loop.Wait()
	}
	if got := w.written(t); len(bound.FindAllString(got, -1)) != 2 {
		t.Fatalf("after %d ticks the file says\n%s\nwant slot1 and slot2 bound and weighted in", ticks, got)
	}
	if n := w.dumps.Load(); int(n) > 2*2+ticks {
		t.Errorf("%d dumps for two binds in %d ticks, want at most %d", n, ticks, 2*2+ticks)
	}
}

// observerFunc calls tick at the end of every tick.
type observerFunc func()

func (observerFunc) Event(scaler.Event) {}
func (o observerFunc) Tick(time.Duration, []scaler.ServiceStatus, []scaler.HostStatus) {
	o()
}
