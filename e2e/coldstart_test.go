package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// coldStartRuns is how many first requests from zero the benchmark times.
const coldStartRuns = 7

// BenchmarkColdStart times the first request to a service at zero, over
// several wakes of one service (each after it went back to zero): from the
// request to the wake's scale-up decision (wake signal), the container
// start, the bind to its first passed check, and the rest until the answer
// (serving: the slot's weight restored, the held request passed on). Then
// a burst of 100 concurrent first requests, and the memory each held
// request costs the wake listener. Check inter 500 ms, rise 1, as the
// reaction benchmark.
func BenchmarkColdStart(b *testing.B) {
	for range b.N {
		b.Run("first request", benchFirstRequest)
		b.Run("burst of 100", benchBurst)
		b.Run("memory per held request", benchHeldMemory)
	}
}

func coldEnv(b *testing.B, mode string, tune func(*config.Service)) *env {
	return newWakeEnv(b, mode, func(s *config.Service) {
		s.Check.Inter.Duration = 500 * time.Millisecond
		s.Cooldown.ScaleDown.Duration = 0
		s.Stabilization.ScaleDown.Duration = time.Second
		s.Wake.IdleAfter.Duration = time.Second
		if tune != nil {
			tune(s)
		}
	})
}

func benchFirstRequest(b *testing.B) {
	e := coldEnv(b, config.ModeTemplate, nil)
	e.startLoop()
	var runs []reaction
	for run := range coldStartRuns {
		e.waitFor("at zero", 60*time.Second, func() bool { return e.containers() == 0 && e.slots().serving+e.slots().other == 0 })
		time.Sleep(time.Duration(run) * 100 * time.Millisecond) // not always just after a tick
		step := time.Now()
		a := do("GET", e.url, nil)
		if a.err != nil || a.status != http.StatusOK {
			b.Fatalf("run %d: status %d, err %v, body %q", run, a.status, a.err, a.body)
		}
		r := parts(e.logs.String(), step)
		r.total = a.took
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b reaction) int { return int(a.total - b.total) })
	// The columns: the first request, then its parts (serving is the rest:
	// the slot's weight restored and the held request passed on).
	cols := []func(reaction) time.Duration{
		func(r reaction) time.Duration { return r.total },
		func(r reaction) time.Duration { return r.decision },
		func(r reaction) time.Duration { return r.start },
		func(r reaction) time.Duration { return r.check },
		func(r reaction) time.Duration { return r.total - r.decision - r.start - r.check },
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	var rows strings.Builder
	row := func(label string, cell func(func(reaction) time.Duration) time.Duration) {
		fmt.Fprintf(&rows, "| %s |", label)
		for _, c := range cols {
			fmt.Fprintf(&rows, " %s |", ms(cell(c)))
		}
		rows.WriteString("\n")
	}
	fmt.Fprintf(&rows, "\n| run | first request | wake signal | container start | first passed check | serving |\n|---|---|---|---|---|---|\n")
	for i, r := range runs {
		row(strconv.Itoa(i+1), func(c func(reaction) time.Duration) time.Duration { return c(r) })
	}
	row(fmt.Sprintf("**p50** of %d", len(runs)), func(c func(reaction) time.Duration) time.Duration { return median(runs, c) })
	row("**max**", func(c func(reaction) time.Duration) time.Duration { return longest(runs, c) })
	fmt.Fprintf(&rows, "(check inter 500ms, fastinter %s, rise 1; goal p50 <= 1.0s; rows are runs sorted by the first request, p50 and max are each column's own)",
		config.FastInter(500*time.Millisecond))
	fmt.Println(rows.String())
	b.ReportMetric(runs[len(runs)/2].total.Seconds(), "p50-s")
}

func benchBurst(b *testing.B) {
	const n = 100
	e := coldEnv(b, config.ModeDynamic, func(s *config.Service) { s.Wake.MaxPending = 1000 })
	e.startLoop()
	time.Sleep(500 * time.Millisecond)
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = do("GET", e.url, nil) })
	}
	wg.Wait()
	var took []time.Duration
	failed := 0
	for _, a := range answers {
		if a.err != nil || a.status != http.StatusOK {
			failed++
		}
		took = append(took, a.took)
	}
	slices.Sort(took)
	started := strings.Count(e.logs.String(), `msg="container started"`)
	fmt.Printf("\nburst of %d first requests from zero: %d served, %d failed, %d container(s) started, p50 %s, max %s\n",
		n, n-failed, failed, started, took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
	if failed > 0 {
		b.Errorf("%d of %d first requests failed", failed, n)
	}
}

// benchHeldMemory holds 1,000 requests (the replica's check never passes)
// and reads how much this process grew: the wake listener is the only
// part of it that grows with them (the clients are bare connections that
// sent one request each).
func benchHeldMemory(b *testing.B) {
	const n = 1000
	e := coldEnv(b, config.ModeTemplate, func(s *config.Service) {
		s.Container.Env = map[string]string{"ECHO_HEALTH": "fail"}
		s.Wake.MaxPending = 2 * n
		s.Wake.Timeout.Duration = 60 * time.Second
	})
	e.startLoop()
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	rssBefore, goBefore := rss(b), goMemory()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", e.cfg.Services[0].Wake.Listen) // straight to the listener: HAProxy's memory is not ours
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	e.waitFor("1,000 requests held", 30*time.Second, func() bool { return e.heldNow() >= n })
	runtime.GC()
	rssAfter, goAfter := rss(b), goMemory()
	fmt.Printf("\n%d held requests: process RSS +%.1f MiB (%.1f KiB per request), Go heap+stacks in use +%.1f MiB (%.1f KiB per request)\n",
		n, float64(rssAfter-rssBefore)/(1<<20), float64(rssAfter-rssBefore)/1024/n, float64(goAfter-goBefore)/(1<<20), float64(goAfter-goBefore)/1024/n)
}

// heldNow reads the held_requests gauge.
func (e *env) heldNow() int {
	families, err := e.wake.metrics.Registry().Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "slotscaler_held_requests" && len(f.GetMetric()) > 0 {
			return int(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

// rss is this process's resident set size in bytes.
func rss(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func goMemory() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
