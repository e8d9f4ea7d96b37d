package runtimeapi_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// hold accepts TCP connections and keeps them open, unanswered, until the
// test ends: each is a session on the server that took it.
func hold(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLoadsOnHAProxy: "show stat -1 2 -1" gives each backend's BACKEND
// row. Its scur counts the sessions of a drained server and the requests
// waiting in the queue too (measured: 2 served, 2 queued, scur 4), so the
// probe between ticks compares changes of it, never its value, with the
// sessions of serving slots.
func TestLoadsOnHAProxy(t *testing.T) {
	ctx := context.Background()
	front, held := haproxytest.FreePort(t), hold(t)
	h := haproxytest.Start(t, fmt.Sprintf(`
frontend in
  mode tcp
  bind 127.0.0.1:%d
  default_backend held

backend held
  mode tcp
  timeout queue 10s
  server a 127.0.0.1:%d maxconn 1
  server b 127.0.0.1:%d maxconn 1
`, front, held, held)+contractBackend)
	c, err := runtimeapi.New("unix://" + h.Socket)
	if err != nil {
		t.Fatal(err)
	}
	var clients []net.Conn
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	connect := func(n int) {
		for range n {
			cn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", front))
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, cn)
		}
	}
	waitFor := func(want []runtimeapi.Load) {
		t.Helper()
		var got []runtimeapi.Load
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got, err = c.Loads(ctx); err != nil {
				t.Fatalf("Loads: %v", err)
			}
			if cmp.Equal(want, got) {
				return
			}
		}
		t.Fatalf("Loads (-want +got):\n%s", cmp.Diff(want, got))
	}

	waitFor([]runtimeapi.Load{{Backend: "held"}, {Backend: "web"}})
	connect(2) // one on each server
	waitFor([]runtimeapi.Load{{Backend: "held", Sessions: 2}, {Backend: "web"}})
	if err := c.SetState(ctx, "held", "b", runtimeapi.AdminDrain); err != nil {
		t.Fatal(err)
	}
	connect(2) // a is full and b drained: both wait in the backend's queue
	waitFor([]runtimeapi.Load{{Backend: "held", Sessions: 4, Queue: 2}, {Backend: "web"}})
}

// TestLoadsFake: the fake answers from its state as HAProxy counts:
// drained servers' sessions and queued requests in the sessions.
func TestLoadsFake(t *testing.T) {
	ctx := context.Background()
	fake := contractFake(1)
	fake.DeclareBackend("api", "leastconn")
	fake.DeclareServer("api", "a1", netip.MustParseAddrPort("127.0.0.1:2"), false, false)
	for _, step := range []error{
		fake.SetAddr(ctx, "web", "slot1", netip.MustParseAddr("127.0.0.1"), 1),
		fake.SetState(ctx, "web", "slot1", runtimeapi.AdminReady),
		fake.SetLoad("web", "slot1", 5, 0),
		fake.SetLoad("web", "static1", 2, 1),
		fake.SetState(ctx, "web", "static1", runtimeapi.AdminDrain),
		fake.SetBackendQueue("web", 3),
		fake.SetLoad("api", "a1", 1, 0),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	got, err := fake.Loads(ctx)
	want := []runtimeapi.Load{{Backend: "web", Sessions: 5 + 2 + 1 + 3, Queue: 3}, {Backend: "api", Sessions: 1}}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("Loads = %+v, %v; want %+v", got, err, want)
	}
}

// TestLoadsIncompleteReply: a reply without HAProxy's closing empty line
// is an error, as for every read; with it, the BACKEND rows are read.
func TestLoadsIncompleteReply(t *testing.T) {
	ctx := context.Background()
	const head = "# pxname,svname,qcur,scur,status,weight,lastchg,check_status,addr,algo\n"
	const row = "web,BACKEND,2,9,UP,1,0,,,roundrobin\n"
	for _, cut := range []string{head + row, head + row + "> "} { // closed, or the prompt at once
		if got, err := replying(t, cut).Loads(ctx); err == nil {
			t.Errorf("Loads on %q = %+v, want error", cut, got)
		}
	}
	got, err := replying(t, head+row+"\n> ").Loads(ctx)
	if want := []runtimeapi.Load{{Backend: "web", Sessions: 9, Queue: 2}}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("Loads = %+v, %v; want %+v", got, err, want)
	}
}

func replying(t *testing.T, reply string) *runtimeapi.Client {
	t.Helper()
	c, err := runtimeapi.New(fakeSocket(t, reply, false))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
