package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler/api"
)

// serve runs the fixture's API on a loopback listener with lim, as
// `slotscaler run` does with api.DefaultLimits.
func (f *fixture) serve(lim api.Limits) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	srv := f.api.Serve(ln, lim)
	f.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// healthz times one GET /healthz on a new connection.
func healthz(t *testing.T, addr string, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("healthz: %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// TestSlowClientsAreCutOff: 300 connections that promise a 1,000-byte body
// and send 1 byte are all closed by the server within its read timeout,
// and /healthz answers quickly meanwhile.
func TestSlowClientsAreCutOff(t *testing.T) {
	f := newFixture(t)
	lim := api.DefaultLimits
	lim.ReadTimeout = 2 * time.Second
	addr := f.serve(lim)

	const stalled = 300
	start := time.Now()
	held := make([]time.Duration, stalled) // from the request's last byte to the server's close
	var wg sync.WaitGroup
	for i := range stalled {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		token := ""
		if i%2 == 0 { // half unauthenticated, half with a valid token whose handler reads the body
			token = "Authorization: Bearer " + operatorToken + "\r\n"
		}
		if _, err := fmt.Fprintf(conn, "POST /v1/services/web/scale HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", token); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetReadDeadline(time.Now().Add(lim.ReadTimeout + 20*time.Second))
			_, err := io.Copy(io.Discard, conn) // ends when the server closes
			if err != nil {
				held[i] = -1 // our own deadline: the server never closed it
				return
			}
			held[i] = time.Since(sent)
		}()
	}
	t.Logf("%d stalled connections open after %s", stalled, time.Since(start).Round(time.Millisecond))

	var took []time.Duration
	for range 10 {
		d, err := healthz(t, addr, 5*time.Second)
		if err != nil {
			t.Fatalf("healthz while %d clients stall: %v", stalled, err)
		}
		took = append(took, d)
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(took)
	t.Logf("healthz while %d clients stall: %v", stalled, took)
	if worst := took[len(took)-1]; worst >= 100*time.Millisecond {
		t.Errorf("healthz took %s at worst while clients stall, want under 100ms", worst)
	}

	wg.Wait()
	slices.Sort(held)
	if open := len(held) - len(slices.DeleteFunc(slices.Clone(held), func(d time.Duration) bool { return d < 0 })); open > 0 {
		t.Fatalf("%d connections were still open %s after the read timeout", open, 20*time.Second)
	}
	t.Logf("stalled connections closed by the server %s (shortest) to %s (longest) after their last byte; read timeout %s", held[0].Round(time.Millisecond), held[stalled-1].Round(time.Millisecond), lim.ReadTimeout)
	if longest := held[stalled-1]; longest > lim.ReadTimeout+2*time.Second {
		t.Errorf("a stalled connection was held %s, want within the read timeout %s (+2s margin for a noisy machine)", longest, lim.ReadTimeout)
	}
}

// TestServerLimits: the connection limit, the header size limit and the
// idle timeout.
func TestServerLimits(t *testing.T) {
	f := newFixture(t)
	lim := api.Limits{ReadTimeout: 1500 * time.Millisecond, WriteTimeout: 5 * time.Second, IdleTimeout: 500 * time.Millisecond, MaxHeaderBytes: 4 << 10, MaxConns: 3}
	addr := f.serve(lim)

	t.Run("header size", func(t *testing.T) {
		// net/http reads MaxHeaderBytes plus 4 KiB of slack before it
		// answers 431.
		for _, c := range []struct{ size, want int }{
			{lim.MaxHeaderBytes, http.StatusOK},
			{lim.MaxHeaderBytes + 4<<10, http.StatusRequestHeaderFieldsTooLarge},
		} {
			req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
			req.Header.Set("X-Big", strings.Repeat("a", c.size))
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%d-byte header with a limit of %d: %d, want %d", c.size, lim.MaxHeaderBytes, resp.StatusCode, c.want)
			}
		}
	})

	t.Run("idle keep-alive connection closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection: %v, want EOF from the server", err)
		}
		if d := time.Since(start); d > lim.IdleTimeout+2*time.Second {
			t.Errorf("idle connection closed after %s, want about %s", d, lim.IdleTimeout)
		}
	})

	t.Run("connection limit", func(t *testing.T) {
		for range lim.MaxConns {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\n") // headers never end
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := healthz(t, addr, 500*time.Millisecond); err == nil {
			t.Errorf("healthz answered beyond the limit of %d connections", lim.MaxConns)
		}
		// The held connections time out; then the next one is served.
		if _, err := healthz(t, addr, lim.ReadTimeout+5*time.Second); err != nil {
			t.Errorf("healthz once the held connections timed out: %v", err)
		}
	})
}

// TestServerWriteTimeout: a client that sends a request and never reads
// the answer holds the handler no longer than the write timeout.
func TestServerWriteTimeout(t *testing.T) {
	f := newFixture(t)
	returned := make(chan time.Duration, 1)
	var start time.Time
	big := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := w.Write(chunk); err != nil {
				returned <- time.Since(start)
				return
			}
		}
	})
	server := api.New(f.loop, f.cfg, api.Secrets{}, big, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := api.DefaultLimits
	lim.WriteTimeout = 500 * time.Millisecond
	srv := server.Serve(ln, lim)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start = time.Now()
	fmt.Fprint(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case d := <-returned:
		t.Logf("the handler's write failed %s after the request; write timeout %s", d.Round(time.Millisecond), lim.WriteTimeout)
		if d > lim.WriteTimeout+2*time.Second {
			t.Errorf("the handler was held %s, want about the write timeout %s", d, lim.WriteTimeout)
		}
	case <-time.After(lim.WriteTimeout + 20*time.Second):
		t.Fatalf("the handler still writes %s after the request", lim.WriteTimeout+20*time.Second)
	}
}
