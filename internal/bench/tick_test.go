package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// BenchmarkTick times one scaler.Loop.Tick over 200 services x 20 template
// slots on a real haproxy, with a fake Docker host holding no container
// and nothing to do, and in the same iteration the bare read of "show
// stat" and "show servers state" over the socket: the floor any tick that
// reads every slot pays. Interleaving the two keeps the ratio fair on a
// busy machine. Allocations count the tick only.
func BenchmarkTick(b *testing.B) {
	w := newTickWorld(b, benchServices, benchSlots)
	var tickTime, bareTime time.Duration
	var mallocs, bytes uint64
	var before, after runtime.MemStats
	b.ResetTimer()
	for range b.N {
		runtime.ReadMemStats(&before)
		start := time.Now()
		w.tick(b)
		tickTime += time.Since(start)
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
		bytes += after.TotalAlloc - before.TotalAlloc

		start = time.Now()
		bareRead(b, w.socket, "show stat", 500_000)
		bareRead(b, w.socket, "show servers state", 100_000)
		bareTime += time.Since(start)
	}
	b.StopTimer()
	w.nothingDone(b)
	n := float64(b.N)
	b.ReportMetric(float64(tickTime.Microseconds())/n/1000, "ms/tick")
	b.ReportMetric(float64(bareTime.Microseconds())/n/1000, "ms/bare-read")
	b.ReportMetric(float64(tickTime)/float64(bareTime), "tick/bare")
	b.ReportMetric(float64(mallocs)/n, "allocs/tick")
	b.ReportMetric(float64(bytes)/n/(1<<20), "MB/tick")
	fmt.Printf("tick over %d services x %d slots: %.1f ms, bare read of show stat + show servers state: %.1f ms, ratio %.2f (goal <= 1.5), %.0f allocs and %.1f MB per tick\n",
		benchServices, benchSlots, float64(tickTime.Microseconds())/n/1000, float64(bareTime.Microseconds())/n/1000,
		float64(tickTime)/float64(bareTime), float64(mallocs)/n, float64(bytes)/n/(1<<20))
}

// tickWorld is a loop over services x slots template slots on a real
// haproxy, with a fake Docker host holding no container.
type tickWorld struct {
	loop   *scaler.Loop
	engine *fakeengine.Engine
	socket string
}

func newTickWorld(tb testing.TB, services, slots int) *tickWorld {
	tb.Helper()
	h := haproxytest.Start(tb, haproxyBackends(services, slots))
	cfg, err := config.Parse([]byte(scalerYAML("svc", "unix://"+h.Socket, tb.TempDir(), "127.0.0.1:0", services, slots)))
	if err != nil {
		tb.Fatal(err)
	}
	lb, err := runtimeapi.New(h.Socket)
	if err != nil {
		tb.Fatal(err)
	}
	w := &tickWorld{engine: fakeengine.New("local", 30000), socket: h.Socket}
	w.loop, err = scaler.New(scaler.Options{Config: cfg, LB: haproxy.New(lb), StateDir: tb.TempDir(),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 100, Preferred: true, Engine: w.engine}}})
	if err != nil {
		tb.Fatal(err)
	}
	w.tick(tb) // the first tick learns HAProxy's identity
	if ok, faults := w.loop.Ready(); !ok {
		tb.Fatalf("loop not ready after a tick: %v", faults)
	}
	return w
}

func (w *tickWorld) tick(tb testing.TB) {
	if !w.loop.Tick(context.Background()) {
		tb.Fatal("tick: runtime API did not answer")
	}
}

// nothingDone fails when the ticks did something: the figure is for a
// tick with nothing to do.
func (w *tickWorld) nothingDone(tb testing.TB) {
	w.engine.Mu.Lock()
	n := w.engine.Starts
	w.engine.Mu.Unlock()
	if n != 0 {
		tb.Fatalf("the ticks were to have nothing to do, but they started %d containers", n)
	}
	for _, st := range w.loop.Services() {
		if st.Desired != 0 || st.Error != "" {
			tb.Fatalf("service %s: desired %d, error %q; want 0 and none", st.Name, st.Desired, st.Error)
		}
	}
}

// TestTickWorld keeps BenchmarkTick's set-up honest in `make test`, on a
// small config: ticks answer, and have nothing to do.
func TestTickWorld(t *testing.T) {
	w := newTickWorld(t, 3, 4)
	w.tick(t)
	w.nothingDone(t)
	if got := len(w.loop.Services()); got != 3 {
		t.Errorf("%d services, want 3", got)
	}
}

// bareRead sends command on a connection of its own and reads the whole
// reply without parsing it; the reply must be at least least bytes long.
func bareRead(b testing.TB, socket, command string, least int64) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, conn)
	if err != nil || n < least {
		b.Fatalf("%s: read %d bytes: %v", command, n, err)
	}
}
