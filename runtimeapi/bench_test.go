package runtimeapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	native "github.com/haproxytech/client-native/v5/runtime"
	nativeopts "github.com/haproxytech/client-native/v5/runtime/options"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// bigConfig is 200 backends x 20 template slots: 4,000 servers, about
// 945 KB of "show stat" CSV.
func bigConfig() string {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "backend be%03d\n  balance roundrobin\n  server-template slot 1-20 127.0.0.1:9 check disabled\n", i)
	}
	return b.String()
}

// BenchmarkStats reads and parses stats for 4,000 servers three ways in one
// run: the bare socket read (the floor), our streaming CSV parse, and
// client-native's GetStats.
func BenchmarkStats(b *testing.B) {
	h := haproxytest.Start(b, bigConfig())
	ctx := context.Background()

	b.Run("bare-read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			conn, err := net.Dial("unix", h.Socket)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.WriteString(conn, "show stat -1 6 -1\n")
			n, err := io.Copy(io.Discard, conn)
			conn.Close()
			if err != nil || n < 500_000 {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
	b.Run("slotscaler", func(b *testing.B) {
		c, _ := runtimeapi.New(h.Socket)
		b.ReportAllocs()
		for b.Loop() {
			bs, err := c.Stats(ctx, "")
			if err != nil || len(bs) != 200 || len(bs[0].Servers) != 20 {
				b.Fatalf("Stats: %d backends, %v", len(bs), err)
			}
		}
	})
	b.Run("slotscaler-with-admin-state", func(b *testing.B) {
		c, _ := runtimeapi.New(h.Socket)
		b.ReportAllocs()
		for b.Loop() {
			if bs, err := c.Backends(ctx, ""); err != nil || len(bs) != 200 {
				b.Fatalf("Backends: %d backends, %v", len(bs), err)
			}
		}
	})
	b.Run("client-native-GetStats", func(b *testing.B) {
		rt, err := native.New(ctx, nativeopts.Socket(h.Socket))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if st := rt.GetStats(); len(st) == 0 || st[0].Error != "" {
				b.Fatalf("GetStats: %+v", st)
			}
		}
	})
}
