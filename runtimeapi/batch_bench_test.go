package runtimeapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// BenchmarkServerCommands sends the same 200 "set weight" commands (one
// per backend of bigConfig) one at a time, each waiting for its reply,
// then batched, in one run, over the client's one connection; ns/cmd is
// per command.
func BenchmarkServerCommands(b *testing.B) {
	h := haproxytest.Start(b, bigConfig())
	c, _ := runtimeapi.New(h.Socket)
	ctx := context.Background()
	var cmds []runtimeapi.Command
	for i := range 200 {
		cmds = append(cmds, runtimeapi.SetWeightCommand(fmt.Sprintf("be%03d", i), "slot1", 50+i%50))
	}
	b.Run("one-at-a-time", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, cmd := range cmds {
				if err := c.SetWeight(ctx, cmd.Backend, cmd.Server, cmd.Weight); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(cmds)), "ns/cmd")
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			results, err := c.Batch(ctx, cmds)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range results {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(cmds)), "ns/cmd")
	})
}
