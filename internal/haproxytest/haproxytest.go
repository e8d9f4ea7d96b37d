// Package haproxytest starts a real haproxy for tests: a temp directory,
// a config checked with "haproxy -c" first, a stats socket (unix, and TCP
// when asked), stopped by PID in t.Cleanup, its log printed only when the
// test failed.
package haproxytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// HAProxy is one haproxy process started by a test.
type HAProxy struct {
	Dir     string // temp directory holding the config, socket and state file
	Config  string // path of haproxy.cfg
	Socket  string // unix stats socket path
	TCPAddr string // "127.0.0.1:PORT" of the TCP stats socket
	cmd     *exec.Cmd
	log     *SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: process output
// and test logs collected while the test runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Binary returns the haproxy path or fails the test: every machine that
// runs these tests has Debian's haproxy (.ci/run installs it).
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy not installed (apt-get install -y haproxy): %v", err)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start writes body (the backends and frontends; "{{DIR}}" is replaced by
// the temp directory) behind a global section with stats sockets and an
// HTTP defaults section, checks it, starts haproxy and waits for the socket.
func Start(t testing.TB, body string) *HAProxy {
	t.Helper()
	return StartGlobal(t, "", body)
}

// StartGlobal is Start with extra lines for the global section ("{{DIR}}"
// replaced too), e.g. a server-state-file.
func StartGlobal(t testing.TB, global, body string) *HAProxy {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	h := &HAProxy{
		Dir:     dir,
		Config:  filepath.Join(dir, "haproxy.cfg"),
		Socket:  filepath.Join(dir, "admin.sock"),
		TCPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		log:     &SyncBuffer{},
	}
	cfg := fmt.Sprintf(`global
  stats socket %s mode 600 level admin expose-fd listeners
  stats socket ipv4@%s level admin
  stats timeout 1m
  maxconn 4000
%s
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s

`, h.Socket, h.TCPAddr, strings.ReplaceAll(global, "{{DIR}}", dir)) + strings.ReplaceAll(body, "{{DIR}}", dir)
	if err := os.WriteFile(h.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", h.Config).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	h.cmd = exec.Command(bin, "-db", "-f", h.Config)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.log.String())
		}
	})
	h.waitSocket(t)
	return h
}

func (h *HAProxy) waitSocket(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("unix", h.Socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("haproxy socket %s did not appear; log:\n%s", h.Socket, h.log.String())
}

func (h *HAProxy) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
	h.cmd = nil
}

// PID is the haproxy process id.
func (h *HAProxy) PID() int { return h.cmd.Process.Pid }

// Reload starts a new haproxy on the same config that takes the listening
// sockets over from the running one (-x, seamless) and tells it to finish
// its connections and leave (-sf), as "systemctl reload" does.
func (h *HAProxy) Reload(t testing.TB) {
	t.Helper()
	h.reload(t, "-x", h.Socket)
}

// ReloadClassic is Reload without -x: the new haproxy binds its listening
// sockets anew beside the old ones (SO_REUSEPORT) while the old one closes
// its own, as reloads did before seamless reloads.
func (h *HAProxy) ReloadClassic(t testing.TB) {
	t.Helper()
	h.reload(t)
}

func (h *HAProxy) reload(t testing.TB, args ...string) {
	t.Helper()
	old := h.cmd
	args = append([]string{"-db", "-f", h.Config}, args...)
	h.cmd = exec.Command(Binary(t), append(args, "-sf", fmt.Sprint(old.Process.Pid))...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("reload haproxy: %v", err)
	}
	go func() { _ = old.Wait() }() // the old process finishes its connections and exits
	pid := fmt.Sprintf("Pid: %d\n", h.cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.showInfo(), pid) {
		if time.Now().After(deadline) {
			t.Fatalf("reloaded haproxy (pid %d) did not take the socket over; log:\n%s", h.cmd.Process.Pid, h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *HAProxy) showInfo() string {
	c, err := net.DialTimeout("unix", h.Socket, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("show info\n")); err != nil {
		return ""
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

// Restart stops haproxy and starts it again on the same config: every
// runtime change is lost, as after a host reboot.
func (h *HAProxy) Restart(t testing.TB) {
	t.Helper()
	h.stop()
	_ = os.Remove(h.Socket)
	h.cmd = exec.Command(Binary(t), "-db", "-f", h.Config)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("restart haproxy: %v", err)
	}
	h.waitSocket(t)
}
