package runtimeapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// TestConnectionReused: reads, changes and batches share one connection;
// Info opens a new one, which the commands after it use.
func TestConnectionReused(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	conns := countConnections(t, h.Socket)
	c := newClient(t, conns.path)
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	steps := []func() error{
		func() error { _, err := c.Backend(ctx, "web"); return err },
		func() error { return c.SetAddr(ctx, "web", "slot1", lo, 8081) },
		func() error { return c.SetState(ctx, "web", "nope", runtimeapi.AdminReady) }, // refused: the connection stays
		func() error {
			_, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.SetWeightCommand("web", "slot1", 0), runtimeapi.SetStateCommand("web", "slot1", runtimeapi.AdminReady)})
			return err
		},
		func() error { _, err := c.Stats(ctx, ""); return err },
		func() error { _, err := c.DumpServersState(ctx); return err },
		func() error { _, err := c.Backend(ctx, "nope"); return err }, // refused too
	}
	for i, step := range steps {
		err := step()
		if refused := i == 2 || i == 6; (err != nil) != refused {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if n := conns.count.Load(); n != 1 {
		t.Errorf("%d connections for %d commands, want 1", n, len(steps))
	}
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWeight(ctx, "web", "slot1", 100); err != nil {
		t.Fatal(err)
	}
	if n := conns.count.Load(); n != 2 {
		t.Errorf("%d connections after Info and one more command, want 2", n)
	}
	b, _ := c.Backend(ctx, "web")
	if s, _ := b.Server("slot1"); s.Port != 8081 || s.Admin != runtimeapi.AdminReady || s.Weight != 1 {
		t.Errorf("slot1 = %+v, want port 8081, ready, weight 1", s)
	}
}

// TestConnectionClosedByPeer: HAProxy closed the connection between two
// commands ("stats timeout"; on 2.6.12 it fires on an idle prompt
// connection in some cases only, so a fake closes here): the next command
// goes over a new one, sent once.
func TestConnectionClosedByPeer(t *testing.T) {
	s := scriptedSocket(t, func(int, string) (string, time.Duration, bool) { return "\n> ", 0, true })
	c := newClient(t, s.path)
	ctx := context.Background()
	for i := range 3 {
		if err := c.SetWeight(ctx, "web", "slot1", i); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		<-s.closed
	}
	want := []string{"1: set weight web/slot1 0%", "2: set weight web/slot1 1%", "3: set weight web/slot1 2%"}
	if got := s.received(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("HAProxy received %q, want %q", got, want)
	}
}

// TestConnectionAcrossRestartAndReload: a command after HAProxy restarted
// reaches the new process without an error; after a reload, whose old
// process lives on while a connection to it does, Info reaches the new
// process and so do the commands after it.
func TestConnectionAcrossRestartAndReload(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	c := newClient(t, h.Socket)
	ctx := context.Background()
	if err := c.SetState(ctx, "web", "slot1", runtimeapi.AdminReady); err != nil {
		t.Fatal(err)
	}
	h.Restart(t)
	if err := c.SetState(ctx, "web", "slot2", runtimeapi.AdminReady); err != nil {
		t.Fatalf("first command after a restart: %v", err)
	}
	before, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Backend(ctx, "web")
	if s, _ := b.Server("slot2"); s.Admin != runtimeapi.AdminReady || before.PID != h.PID() {
		t.Fatalf("slot2 = %v on pid %d, want ready on the restarted haproxy %d", s.Admin, before.PID, h.PID())
	}

	h.Reload(t)
	after, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.PID != h.PID() || after.PID == before.PID {
		t.Errorf("Info after a reload: pid %d, want the new process %d (old %d)", after.PID, h.PID(), before.PID)
	}
	b, _ = c.Backend(ctx, "web")
	if s, _ := b.Server("slot2"); s.Admin != runtimeapi.AdminMaint {
		t.Errorf("slot2 after the reload = %v, want maint: read from the new process", s.Admin)
	}
}

// newClient is a client for addr whose connection is closed when the test
// ends (the fakes wait for it).
func newClient(t *testing.T, addr string) *runtimeapi.Client {
	t.Helper()
	c, err := runtimeapi.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scripted is a fake HAProxy CLI in prompt mode: it answers the preamble
// as HAProxy does, then each command with what answer says.
type scripted struct {
	path     string
	conns    atomic.Int32
	mu       sync.Mutex
	commands []string // "conn: command", in order received
	closed   chan int // connections closed, by either side
}

// answer is the fake's reply to command on connection conn (counted from
// 1): written after delay; hangUp closes the connection after it.
type answer func(conn int, command string) (reply string, delay time.Duration, hangUp bool)

func scriptedSocket(t *testing.T, answer answer) *scripted {
	t.Helper()
	s := &scripted{closed: make(chan int, 16)}
	s.path = serveUnix(t, func(nc net.Conn, n int) {
		s.conns.Add(1)
		r := bufio.NewReader(nc)
		for i := 0; ; i++ {
			line, err := r.ReadString('\n')
			if err != nil {
				s.closed <- n
				return
			}
			command := strings.TrimSuffix(line, "\n")
			if i < 2 { // "prompt", "set severity-output number"
				_, _ = nc.Write([]byte("\n> "))
				continue
			}
			s.mu.Lock()
			s.commands = append(s.commands, fmt.Sprintf("%d: %s", n, command))
			s.mu.Unlock()
			reply, delay, hangUp := answer(n, command)
			time.Sleep(delay)
			_, _ = nc.Write([]byte(reply))
			if hangUp {
				nc.Close()
				s.closed <- n
				return
			}
		}
	})
	return s
}

func (s *scripted) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

const (
	statsHeader = "# pxname,svname,qcur,scur,status,weight,lastchg,check_status,addr,algo\n"
	statsReply  = statsHeader + "web,BACKEND,0,0,UP,1,5,,,roundrobin\nweb,slot1,0,0,MAINT,1,5,,127.0.0.1:9,\n\n> "
)

// TestConnectionDroppedOnError: a reply cut short, late or garbled is an
// error and closes the connection; the next command gets its own reply on
// a new one, never what was left of the last.
func TestConnectionDroppedOnError(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		first string // the first connection's reply to "show stat"
		delay time.Duration
	}{
		{"cut mid-row", statsHeader + "web,BACKEND,0,0,UP,1,5,,,roundrobin\nweb,slo", 0},
		{"cut before the prompt", statsHeader + "web,BACKEND,0,0,UP,1,5,,,roundrobin\n\n", 0},
		{"late", statsReply, 300 * time.Millisecond},
		{"garbled", "\x00\x01binary garbage,,,\"\n\n> ", 0},
		{"more than one reply", statsReply + statsReply, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := scriptedSocket(t, func(conn int, _ string) (string, time.Duration, bool) {
				if conn == 1 {
					return tt.first, tt.delay, false // the connection stays open
				}
				return statsReply, 0, false
			})
			c := newClient(t, s.path)
			c = c.WithTimeout(100 * time.Millisecond)
			if bs, err := c.Stats(ctx, ""); err == nil && tt.name != "more than one reply" {
				t.Fatalf("Stats = %+v, want an error", bs)
			}
			if tt.name == "more than one reply" {
				// The first reply was whole; the second is one no command
				// asked for: the connection is not reused.
				time.Sleep(50 * time.Millisecond)
			}
			bs, err := c.Stats(ctx, "")
			if err != nil || len(bs) != 1 || len(bs[0].Servers) != 1 {
				t.Fatalf("Stats after the error = %+v, %v; want web with slot1", bs, err)
			}
			if n := s.conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// TestChangeNeverSentTwice: a connection lost after a change was written
// returns the error; the change is not sent again.
func TestChangeNeverSentTwice(t *testing.T) {
	s := scriptedSocket(t, func(conn int, _ string) (string, time.Duration, bool) {
		if conn == 1 {
			return "", 0, true // read, maybe applied, never answered
		}
		return "\n> ", 0, false
	})
	c := newClient(t, s.path)
	ctx := context.Background()
	if err := c.SetState(ctx, "web", "slot1", runtimeapi.AdminMaint); err == nil {
		t.Fatal("SetState on a connection lost before the reply: want an error")
	}
	if _, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.SetWeightCommand("web", "slot1", 0)}); err != nil {
		t.Fatalf("the next command: %v", err)
	}
	want := []string{"1: set server web/slot1 state maint", "2: set weight web/slot1 0%"}
	if got := s.received(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("HAProxy received %q, want %q", got, want)
	}
}

// TestIdleConnectionClosed: a connection unused for the idle timeout is
// closed; the next command opens a new one.
func TestIdleConnectionClosed(t *testing.T) {
	s := scriptedSocket(t, func(int, string) (string, time.Duration, bool) { return "\n> ", 0, false })
	c := newClient(t, s.path)
	c.SetIdleTimeout(100 * time.Millisecond)
	ctx := context.Background()
	if err := c.SetWeight(ctx, "web", "slot1", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-s.closed:
		if n != 1 {
			t.Fatalf("connection %d closed, want 1", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the idle connection was not closed")
	}
	if err := c.SetWeight(ctx, "web", "slot1", 100); err != nil {
		t.Fatal(err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestConcurrentCallers: callers take turns on the one connection and
// each gets its own reply (HAProxy's reply to "set server addr" names the
// port, so a reply taken by the wrong caller shows).
func TestConcurrentCallers(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	conns := countConnections(t, h.Socket)
	c := newClient(t, conns.path)
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := fmt.Sprintf("slot%d", g%3+1)
			for i := range 40 {
				port := 20000 + g*100 + i
				res, err := c.Batch(ctx, []runtimeapi.Command{runtimeapi.SetAddrCommand("web", slot, lo, port)})
				if err == nil {
					err = res[0].Err
				}
				if err == nil && !strings.Contains(res[0].Reply, fmt.Sprintf("to '%d'", port)) {
					err = fmt.Errorf("set port %d: got the reply %q", port, res[0].Reply)
				}
				if err == nil && i%4 == 0 {
					_, err = c.Backend(ctx, "web")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// A caller that gives up waiting for its turn leaves the others alone.
	short, cancel := context.WithTimeout(ctx, time.Microsecond)
	defer cancel()
	if _, err := c.Backend(short, "web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Backend with an expired context: %v, want deadline exceeded", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := conns.count.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
