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
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("16 KiB header: %d, want 431", resp.StatusCode)
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
