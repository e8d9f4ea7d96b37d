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
		var samples []time.Duration
		for run := range reactionRuns {
			samples = append(samples, reactOnce(b, run, interval, inter))
		}
		slices.Sort(samples)
		p50 := samples[len(samples)/2]
		var rows strings.Builder
		fmt.Fprintf(&rows, "\n| run | reaction |\n|---|---|\n")
		for i, s := range samples {
			fmt.Fprintf(&rows, "| %d | %s |\n", i+1, s.Round(time.Millisecond))
		}
		fmt.Fprintf(&rows, "| **p50** of %d | **%s** (interval %s, check inter %s, rise 1; goal <= 1.5s) |\n| min / max | %s / %s |",
			len(samples), p50.Round(time.Millisecond), interval, inter, samples[0].Round(time.Millisecond), samples[len(samples)-1].Round(time.Millisecond))
		// A benchmark with sub-benchmarks reports no metrics of its own.
		fmt.Println(rows.String())
	}
}

func reactOnce(b *testing.B, run int, interval, inter time.Duration) time.Duration {
	var reaction time.Duration
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
		e.waitFor("a new container answers", 20*time.Second, func() bool {
			for host, at := range load.Snapshot().FirstSeen {
				if _, existed := old[host]; !existed {
					reaction = at.Sub(step)
					return true
				}
			}
			return false
		})
		b.ReportMetric(reaction.Seconds(), "reaction-s")
		if r := load.Stop(); r.Failed != 0 {
			b.Errorf("%d failed requests during the step: %v", r.Failed, r.Errors)
		}
	})
	return reaction
}
