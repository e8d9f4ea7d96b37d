package runtimeapi_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

func TestClientUnixAndTCP(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	for _, addr := range []string{"unix://" + h.Socket, h.Socket, "tcp://" + h.TCPAddr} {
		t.Run(addr, func(t *testing.T) {
			c, err := runtimeapi.New(addr)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.PID != h.PID() || info.StartTime == 0 {
				t.Errorf("Info = %+v, want pid %d and a start time", info, h.PID())
			}
			b, err := c.Backend(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Servers) != 4 || b.Algo != "roundrobin" {
				t.Errorf("Backend(web) = %+v, want 4 servers, roundrobin", b)
			}
			if err := c.SetAddr(ctx, "web", "slot3", netip.MustParseAddr("127.0.0.2"), 8080); err != nil {
				t.Fatal(err)
			}
			b, _ = c.Backend(ctx, "web")
			if s, _ := b.Server("slot3"); s.Addr != netip.MustParseAddr("127.0.0.2") || s.Port != 8080 || s.Admin != runtimeapi.AdminMaint {
				t.Errorf("slot3 after SetAddr = %+v", s)
			}
		})
	}
}

func TestRestartChangesIdentity(t *testing.T) {
	h := haproxytest.Start(t, contractBackend)
	c, _ := runtimeapi.New(h.Socket)
	ctx := context.Background()
	before, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(ctx, "web", "slot1", runtimeapi.AdminReady); err != nil {
		t.Fatal(err)
	}
	h.Restart(t)
	after, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.PID == before.PID {
		t.Errorf("PID unchanged across restart: %d", after.PID)
	}
	b, _ := c.Backend(ctx, "web")
	if s, _ := b.Server("slot1"); s.Admin != runtimeapi.AdminMaint {
		t.Errorf("slot1 after restart = %v, want maint (runtime change lost)", s.Admin)
	}
}

// fakeSocket answers the prompt-mode preamble as HAProxy does, then
// serves one canned reply per connection to what it reads next, or none
// at all.
func fakeSocket(t *testing.T, reply string, hang bool) string {
	t.Helper()
	return fakeSocketWith(t, "\n> \n> ", reply, hang)
}

// fakeSocketWith is fakeSocket answering the preamble with preamble.
func fakeSocketWith(t *testing.T, preamble, reply string, hang bool) string {
	t.Helper()
	return serveUnix(t, func(conn net.Conn, _ int) {
		r := bufio.NewReader(conn)
		for range 2 { // "prompt", "set severity-output number"
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
		_, _ = conn.Write([]byte(preamble))
		buf := make([]byte, 4096)
		_, _ = r.Read(buf)
		if hang {
			_, _ = r.Read(buf) // until the client gives up
			return
		}
		_, _ = conn.Write([]byte(reply))
	})
}

// serveUnix listens on a unix socket in a temporary directory and hands
// each connection, counted from 1, to handle in a goroutine of its own;
// the connection is closed when handle returns, and everything stops
// with the test. It returns the socket's path.
func serveUnix(t *testing.T, handle func(conn net.Conn, n int)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				handle(conn, n)
			}()
		}
	}()
	return path
}

func TestClientGarbageAndTimeouts(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		reply string
	}{
		{"garbage", "\x00\x01binary garbage,,,\"\n"},
		{"truncated stats", "# pxname,svname,qcur,scur,status,weight,lastchg,check_status,addr,algo\nweb,slot1,0,"},
		{"empty", ""},
		{"error reply", "\n[3]: No such proxy.\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := runtimeapi.New(fakeSocket(t, tt.reply, false))
			if bs, err := c.Stats(ctx, ""); err == nil {
				t.Errorf("Stats on %q = %+v, want error", tt.reply, bs)
			}
			if info, err := c.Info(ctx); err == nil {
				t.Errorf("Info on %q = %+v, want error", tt.reply, info)
			}
		})
	}
	t.Run("hang honours context", func(t *testing.T) {
		c, _ := runtimeapi.New(fakeSocket(t, "", true))
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Stats(ctx, "web")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stats on a hanging socket: %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Stats returned after %v, want about 200ms", d)
		}
	})
	t.Run("hang honours client timeout", func(t *testing.T) {
		c, _ := runtimeapi.New(fakeSocket(t, "", true))
		if _, err := c.WithTimeout(100 * time.Millisecond).Info(ctx); err == nil {
			t.Error("Info on a hanging socket: want error")
		}
	})
	t.Run("no socket", func(t *testing.T) {
		c, _ := runtimeapi.New(filepath.Join(t.TempDir(), "missing.sock"))
		if _, err := c.Info(ctx); err == nil {
			t.Error("Info without a socket: want error")
		}
	})
}
