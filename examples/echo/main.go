// Command echo is the demo and test service: a static HTTP server small
// enough to run FROM scratch. It answers every path with its host name and
// version, /healthz with 200 (or 503 when ECHO_HEALTH=fail; with
// ECHO_ADMIN=1, POST /admin/health?state=fail|ok flips it), sleeps
// ECHO_DELAY per request to make sessions visible to HAProxy (and spins the
// CPU for ECHO_BURN, to exercise the CPU signal), and on
// SIGTERM finishes the requests in flight before it exits. POST /body
// answers the length and SHA-256 of the body it read, and /ws is a
// WebSocket echo: tests of requests held while a replica wakes use them.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

func main() {
	if err := run(); err != nil {
		slog.Error("echo", "err", err)
		os.Exit(1)
	}
}

func run() error {
	delay, err := time.ParseDuration(env("ECHO_DELAY", "0s"))
	if err != nil {
		return fmt.Errorf("ECHO_DELAY: %w", err)
	}
	burn, err := time.ParseDuration(env("ECHO_BURN", "0s"))
	if err != nil {
		return fmt.Errorf("ECHO_BURN: %w", err)
	}
	host, _ := os.Hostname()
	version := env("ECHO_VERSION", "v1")
	var healthy atomic.Bool
	healthy.Store(env("ECHO_HEALTH", "ok") != "fail")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "unhealthy on purpose (ECHO_HEALTH=fail)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if env("ECHO_ADMIN", "") == "1" {
		// Tests flip the health check of one container without stopping it.
		mux.HandleFunc("POST /admin/health", func(w http.ResponseWriter, r *http.Request) {
			healthy.Store(r.URL.Query().Get("state") != "fail")
			fmt.Fprintln(w, "healthy:", healthy.Load())
		})
	}
	mux.HandleFunc("POST /body", func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x\n", n, sum.Sum(nil))
	})
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) {
		_, _ = io.Copy(ws, ws)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// CPU work, for tests of the CPU signal.
		for end := time.Now().Add(burn); time.Now().Before(end); {
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "%s %s\n", host, version)
	})
	srv := &http.Server{Addr: ":" + env("PORT", "8080"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
