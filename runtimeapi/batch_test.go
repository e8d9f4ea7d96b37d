package runtimeapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// batcher is what the batch contract drives on both Client and Fake.
type batcher interface {
	runtimeAPI
	Batch(ctx context.Context, cmds []runtimeapi.Command) ([]runtimeapi.Result, error)
}

var (
	_ batcher = (*runtimeapi.Client)(nil)
	_ batcher = (*runtimeapi.Fake)(nil)
)

// batchScenario sends one batch mixing accepted, refused and invalid
// commands, then observes; it returns one line per command and the final
// observation.
func batchScenario(t *testing.T, api batcher, up int, settle bool) []string {
	t.Helper()
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	cmds := []runtimeapi.Command{
		runtimeapi.SetAddrCommand("web", "slot1", lo, up),
		runtimeapi.SetWeightCommand("web", "slot1", 0),
		runtimeapi.SetStateCommand("web", "slot1", runtimeapi.AdminReady),
		runtimeapi.SetStateCommand("web", "nope", runtimeapi.AdminReady),
		runtimeapi.SetStateCommand("nope", "slot1", runtimeapi.AdminReady),
		runtimeapi.SetStateCommand("web", "slot1;shutdown", runtimeapi.AdminReady),
		runtimeapi.SetWeightCommand("web", "slot1", 101),
		runtimeapi.SetWeightCommand("web", "slot1", 100),
		runtimeapi.EnableHealthCommand("web", "static1"),
		runtimeapi.AddServerCommand("web", "dyn1", lo, up, runtimeapi.ServerOptions{Check: true, Inter: "100ms", Rise: 1, Fall: 1}),
		runtimeapi.AddServerCommand("web", "dyn1", lo, up, runtimeapi.ServerOptions{}),
		runtimeapi.AddServerCommand("web", "dyn2", lo, up, runtimeapi.ServerOptions{Extra: []string{"weight 1"}}),
		runtimeapi.EnableHealthCommand("web", "dyn1"),
		runtimeapi.SetStateCommand("web", "dyn1", runtimeapi.AdminReady),
		runtimeapi.DelServerCommand("web", "dyn1"),
		runtimeapi.SetAddrCommand("web", "slot2", lo, up),
		runtimeapi.SetStateCommand("web", "slot2", runtimeapi.AdminDrain),
		runtimeapi.DelServerCommand("web", "slot3"),
	}
	results, err := api.Batch(ctx, cmds)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if len(results) != len(cmds) {
		t.Fatalf("Batch returned %d results for %d commands", len(results), len(cmds))
	}
	var log []string
	for i, r := range results {
		if fmt.Sprint(r.Command) != fmt.Sprint(cmds[i]) {
			t.Errorf("result %d is for %+v, want %+v", i, r.Command, cmds[i])
		}
		log = append(log, fmt.Sprintf("%d %s: %s", i, r.Line, errName(r.Err)))
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		obs, settled, err := observe(ctx, api)
		if err != nil {
			t.Fatalf("observe: %v", err)
		}
		if !settle || (settled && time.Now().After(deadline.Add(-2700*time.Millisecond))) || time.Now().After(deadline) {
			return append(log, fmt.Sprintf("end: %+v", obs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatchFakeMatchesHAProxy(t *testing.T) {
	up := listen(t)
	h := haproxytest.Start(t, contractBackend)
	conns := countConnections(t, h.Socket)
	client, err := runtimeapi.New(conns.path)
	if err != nil {
		t.Fatal(err)
	}
	real := batchScenario(t, client, up, true)
	t.Log(strings.Join(real, "\n"))

	faked := batchScenario(t, contractFake(up), up, false)

	if diff := cmp.Diff(real, faked); diff != "" {
		t.Errorf("fake differs from haproxy (-haproxy +fake):\n%s", diff)
	}
	// The batch and every observation (show stat, then show servers
	// state) go over one connection.
	if n := conns.count.Load(); n != 1 {
		t.Errorf("%d connections: want 1", n)
	}
}

func TestBatchRepliesAndErrors(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	conns := countConnections(t, h.Socket)
	c, _ := runtimeapi.New(conns.path)
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")

	// Enough commands for several chunks: every reply must still land on
	// its own command.
	var cmds []runtimeapi.Command
	for i := range 900 {
		slot := fmt.Sprintf("slot%d", i%3+1)
		switch i % 3 {
		case 0:
			cmds = append(cmds, runtimeapi.SetAddrCommand("web", slot, lo, 20000+i))
		case 1:
			cmds = append(cmds, runtimeapi.SetWeightCommand("web", slot, i%101))
		default:
			cmds = append(cmds, runtimeapi.SetStateCommand("web", "missing"+slot, runtimeapi.AdminDrain))
		}
	}
	results, err := c.Batch(ctx, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if n := conns.count.Load(); n != 1 {
		t.Errorf("batch of %d used %d connections, want 1", len(cmds), n)
	}
	for i, r := range results {
		switch i % 3 {
		case 0:
			// HAProxy names the old and new port: the reply is this command's.
			if r.Err != nil || !strings.Contains(r.Reply, fmt.Sprintf("to '%d'", 20000+i)) {
				t.Errorf("result %d (%s) = %q, %v; want the port changed to %d", i, r.Line, r.Reply, r.Err, 20000+i)
			}
		case 1:
			if r.Err != nil || r.Reply != "" {
				t.Errorf("result %d (%s) = %q, %v; want a silent success", i, r.Line, r.Reply, r.Err)
			}
		default:
			var ce *runtimeapi.CommandError
			if !errors.Is(r.Err, runtimeapi.ErrNoSuchServer) || !errors.As(r.Err, &ce) || ce.Command != r.Line {
				t.Errorf("result %d (%s) = %v; want no such server naming its command", i, r.Line, r.Err)
			}
		}
	}
	b, err := c.Backend(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	// The last commands on slot1 and slot2 were i=897 (addr) and i=898 (weight 898%101=90).
	if s, _ := b.Server("slot1"); s.Port != 20897 {
		t.Errorf("slot1 port = %d, want 20897 (the last set addr applied last)", s.Port)
	}

	t.Run("over the TCP socket", func(t *testing.T) {
		tcp, _ := runtimeapi.New("tcp://" + h.TCPAddr)
		results, err := tcp.Batch(ctx, []runtimeapi.Command{runtimeapi.SetStateCommand("web", "slot2", runtimeapi.AdminReady), runtimeapi.DelServerCommand("web", "slot2")})
		if err != nil || results[0].Err != nil || !errors.Is(results[1].Err, runtimeapi.ErrNotInMaint) {
			t.Errorf("Batch over TCP = %+v, %v", results, err)
		}
	})
	t.Run("nothing valid sends nothing", func(t *testing.T) {
		before := conns.count.Load()
		results, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.SetWeightCommand("web", "slot1", -1), runtimeapi.DelServerCommand("web", "a b")})
		if err != nil || len(results) != 2 || results[0].Err == nil || !errors.Is(results[1].Err, runtimeapi.ErrInvalidName) {
			t.Errorf("Batch of invalid commands = %+v, %v", results, err)
		}
		if conns.count.Load() != before {
			t.Error("a batch of invalid commands opened a connection")
		}
	})
}

func TestBatchLostConnection(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		preamble string
		reply    string
		answered int
	}{
		// One empty reply, then the socket closes.
		{"closed after the first reply", "\n> \n> ", "\n> ", 1},
		{"closed before any reply", "\n> \n> ", "", 0},
		{"preamble refused", "\n> [3]: Unknown command.\n\n> ", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := runtimeapi.New(fakeSocketWith(t, tt.preamble, tt.reply, false))
			cmds := []runtimeapi.Command{runtimeapi.SetWeightCommand("web", "slot1", 0), runtimeapi.SetWeightCommand("web", "slot2", 0), runtimeapi.SetWeightCommand("web", "slot3", 0)}
			results, err := c.Batch(ctx, cmds)
			if err == nil {
				t.Fatal("Batch on a lost connection: want error")
			}
			for i, r := range results {
				if got, want := errors.Is(r.Err, runtimeapi.ErrNotAnswered), i >= tt.answered; got != want {
					t.Errorf("result %d: %v; want not answered = %v", i, r.Err, want)
				}
			}
		})
	}
	t.Run("replies with and without an empty line before the prompt", func(t *testing.T) {
		// As HAProxy 2.6 answers: "del server" puts no empty line before "> ".
		c, _ := runtimeapi.New(fakeSocket(t, "[3]: Only servers in maintenance mode can be deleted.\n> [6]: Server deleted.\n> [4]: IP changed from '127.0.0.1' to '127.0.0.2', port changed from '9' to '80' by 'stats socket command'\n\n> ", false))
		lo := netip.MustParseAddr("127.0.0.2")
		results, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.DelServerCommand("web", "d1"), runtimeapi.DelServerCommand("web", "d2"), runtimeapi.SetAddrCommand("web", "slot1", lo, 80)})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(results[0].Err, runtimeapi.ErrNotInMaint) || results[1].Err != nil || results[1].Reply != "Server deleted." || results[2].Err != nil || !strings.HasPrefix(results[2].Reply, "IP changed") {
			t.Errorf("results = %+v", results)
		}
	})
	t.Run("hang honours context", func(t *testing.T) {
		c, _ := runtimeapi.New(fakeSocket(t, "", true))
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.SetWeightCommand("web", "slot1", 0)})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Batch on a hanging socket: %v, want deadline exceeded", err)
		}
	})
}

// connCounter forwards a unix socket to HAProxy's and counts connections.
type connCounter struct {
	path  string
	count atomic.Int32
}

func countConnections(t *testing.T, target string) *connCounter {
	t.Helper()
	cc := &connCounter{}
	cc.path = serveUnix(t, func(in net.Conn, _ int) {
		cc.count.Add(1)
		out, err := net.Dial("unix", target)
		if err != nil {
			return
		}
		defer out.Close()
		go func() { _, _ = io.Copy(out, in); _ = out.(*net.UnixConn).CloseWrite() }()
		_, _ = io.Copy(in, out)
	})
	return cc
}
