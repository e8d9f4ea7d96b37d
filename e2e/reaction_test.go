package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// reactionRuns is how many load steps the reaction benchmark times.
const reactionRuns = 7

// BenchmarkReactionTime times, over several fresh runs, the delay from a
// load step to the first request answered by a container that did not
// exist before the step: one decision interval, a container start, and
// HAProxy's first passed check. Interval and check period are those the
// issue sets the goal for (500 ms each).
func BenchmarkReactionTime(b *testing.B) {
	const interval, inter = 500 * time.Millisecond, 500 * time.Millisecond
	for range b.N {
		var runs []reaction
		for run := range reactionRuns {
			runs = append(runs, reactOnce(b, run, interval, inter))
		}
		slices.SortFunc(runs, func(a, b reaction) int { return int(a.total - b.total) })
		ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
		var rows strings.Builder
		fmt.Fprintf(&rows, "\n| run | reaction | decision | container start | bind to first passed check |\n|---|---|---|---|---|\n")
		for i, r := range runs {
			fmt.Fprintf(&rows, "| %d | %s | %s | %s | %s |\n", i+1, ms(r.total), ms(r.decision), ms(r.start), ms(r.check))
		}
		fmt.Fprintf(&rows, "| **p50** of %d | **%s** | %s | %s | %s |\n(interval %s, check inter %s, fastinter %s, rise 1; goal p50 <= 0.9s; columns other than reaction are each run's own, sorted by reaction)",
			len(runs), ms(runs[len(runs)/2].total), ms(median(runs, func(r reaction) time.Duration { return r.decision })),
			ms(median(runs, func(r reaction) time.Duration { return r.start })), ms(median(runs, func(r reaction) time.Duration { return r.check })),
			interval, inter, config.FastInter(inter))
		// A benchmark with sub-benchmarks reports no metrics of its own.
		fmt.Println(rows.String())
	}
}

// reaction is one load step: from the step to the first answer of a new
// container, and its parts as slotscaler logged them.
type reaction struct {
	total    time.Duration
	decision time.Duration // step to the scale-up decision
	start    time.Duration // docker create + start
	check    time.Duration // bind at weight 0 to a passed check and weight restored
}

func median(rs []reaction, f func(reaction) time.Duration) time.Duration {
	ds := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		ds = append(ds, f(r))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func longest(rs []reaction, f func(reaction) time.Duration) time.Duration {
	var d time.Duration
	for _, r := range rs {
		d = max(d, f(r))
	}
	return d
}

// parts reads the decision time and the op durations from the text log.
func parts(log string, step time.Time) (r reaction) {
	for _, line := range strings.Split(log, "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = strings.Trim(v, `"`)
			}
		}
		at, err := time.Parse(time.RFC3339Nano, fields["time"])
		if err != nil || at.Before(step) {
			continue
		}
		took, _ := time.ParseDuration(fields["took"])
		switch {
		case fields["event"] == "scale_up" && r.decision == 0:
			r.decision = at.Sub(step)
		case strings.Contains(line, `msg="container started"`) && r.start == 0:
			r.start = took
		case fields["event"] == "serving" && r.check == 0:
			r.check = took - r.start
		}
	}
	return r
}

func reactOnce(b *testing.B, run int, interval, inter time.Duration) reaction {
	var result reaction
	b.Run(fmt.Sprintf("run%d", run), func(b *testing.B) {
		e := newEnvWith(b, config.ModeTemplate, func(c *config.Config) {
			c.Interval.Duration = interval
			c.Services[0].Check.Inter.Duration = inter
			c.Services[0].Cooldown.ScaleUp.Duration = 0
		})
		e.startLoop()
		e.waitFor("min replicas serving", 20*time.Second, func() bool { return e.slots().serving == 1 })
		warm := loadgen.Start(context.Background(), e.url, 1)
		e.waitFor("first answer", 5*time.Second, func() bool { return warm.Snapshot().OK > 0 })
		old := warm.Stop().Answers

		// Wait a random part of an interval so the step does not always
		// land just after a tick.
		time.Sleep(time.Duration(run) * interval / reactionRuns)
		step := time.Now()
		load := loadgen.Start(context.Background(), e.url, 24)
		defer load.Stop()
		var total time.Duration
		e.waitFor("a new container answers", 20*time.Second, func() bool {
			for host, at := range load.Snapshot().FirstSeen {
				if _, existed := old[host]; !existed {
					total = at.Sub(step)
					return true
				}
			}
			return false
		})
		result = parts(e.logs.String(), step)
		result.total = total
		b.ReportMetric(total.Seconds(), "reaction-s")
		if r := load.Stop(); r.Failed != 0 {
			b.Errorf("%d failed requests during the step: %v", r.Failed, r.Errors)
		}
	})
	return result
}
