package sim

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	seeds     = flag.Int("sim.seeds", 40, "how many seeds TestSim runs (make test's short batch; make sim: 2000)")
	firstSeed = flag.Uint64("sim.first", 1, "the first seed TestSim runs")
	oneSeed   = flag.Uint64("sim.seed", 0, "replay this one seed (with its whole trail on failure)")
	logFile   = flag.String("sim.log", "", "with -sim.seed: write slotscaler's whole log there")
)

// TestSim runs random worlds, one per seed, in parallel on every core.
func TestSim(t *testing.T) {
	if *oneSeed != 0 {
		var log strings.Builder
		o := Random(*oneSeed)
		o.Log = &log
		w, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		f := w.Run()
		if *logFile != "" {
			if err := os.WriteFile(*logFile, []byte(log.String()), 0o644); err != nil {
				t.Error(err)
			}
		}
		if f != nil {
			lines := strings.Split(log.String(), "\n")
			t.Logf("slotscaler's log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-120):], "\n"))
			t.Fatal(f)
		}
		t.Logf("seed %d: ok (%s)", *oneSeed, describe(Random(*oneSeed)))
		return
	}
	begin := time.Now()
	var (
		mu       sync.Mutex
		failures []*Failure
		next     = *firstSeed
		last     = *firstSeed + uint64(*seeds)
		wg       sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				seed := next
				next++
				mu.Unlock()
				if seed >= last {
					return
				}
				w, err := New(Random(seed))
				if err != nil {
					t.Error(err)
					return
				}
				if f := w.Run(); f != nil {
					mu.Lock()
					failures = append(failures, f)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(begin)
	fmt.Fprintf(os.Stderr, "sim: %d seeds from %d in %s (%.1f seeds/s), %d failed\n", *seeds, *firstSeed, took.Round(time.Millisecond), float64(*seeds)/took.Seconds(), len(failures))
	sort.Slice(failures, func(i, j int) bool { return failures[i].Seed < failures[j].Seed })
	byInvariant := map[string][]uint64{}
	for _, f := range failures {
		byInvariant[f.Invariant] = append(byInvariant[f.Invariant], f.Seed)
	}
	for inv, ss := range byInvariant {
		fmt.Fprintf(os.Stderr, "sim: %q broken by %d seeds: %v\n", inv, len(ss), ss)
	}
	for i, f := range failures {
		if i == 3 {
			t.Errorf("... and %d more failing seeds", len(failures)-3)
			break
		}
		t.Error(f)
	}
}

func describe(o Options) string {
	mode := "template"
	if o.Dynamic {
		mode = "dynamic"
	}
	return fmt.Sprintf("%d haproxy, %d hosts, %s slots, %s of faults", o.Instances, o.Hosts, mode, o.Faults)
}

// TestReplayIsExact: one seed gives one run, event for event.
func TestReplayIsExact(t *testing.T) {
	trail := func() []string {
		o := Random(7)
		o.Faults, o.Quiet = 40*time.Second, 20*time.Second
		w, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w.Run()
		return w.trail
	}
	a, b := trail(), trail()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("seed 7 ran differently twice:\n%v\n---\n%v", a, b)
	}
}
