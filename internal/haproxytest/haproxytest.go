// Package haproxytest starts a real haproxy for tests: a temp directory,
// a config checked with "haproxy -c" first, a stats socket (unix, and TCP
// when asked), stopped by PID in t.Cleanup, its log printed only when the
// test failed.
package haproxytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HAProxy is one haproxy process started by a test.
type HAProxy struct {
	Dir     string // temp directory holding the config, socket and state file
	Config  string // path of haproxy.cfg
	Socket  string // unix stats socket path
	TCPAddr string // "127.0.0.1:PORT" of the TCP stats socket
	Master  string // master CLI socket path, in master-worker mode (StartMaster)
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
	return start(t, global, body, false)
}

// StartMaster is StartGlobal in master-worker mode with a master CLI
// ("haproxy -W -S master.sock", as Debian's unit runs it with -Ws): the
// body may hold program sections. Cleanup stops the master with SIGTERM,
// which it passes on to its workers and programs.
func StartMaster(t testing.TB, global, body string) *HAProxy {
	t.Helper()
	return start(t, global, body, true)
}

func start(t testing.TB, global, body string, master bool) *HAProxy {
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
	check := []string{"-c", "-f", h.Config}
	if master {
		h.Master = filepath.Join(dir, "master.sock")
		check = append([]string{"-W"}, check...)
	}
	if out, err := exec.Command(bin, check...).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	h.cmd = exec.Command(bin, h.args()...)
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
	if master {
		h.MasterCLI(t, "show proc") // answered once the master runs
	}
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

// args are haproxy's arguments to start on Config in the foreground.
func (h *HAProxy) args() []string {
	if h.Master != "" {
		return []string{"-W", "-db", "-S", h.Master, "-f", h.Config}
	}
	return []string{"-db", "-f", h.Config}
}

func (h *HAProxy) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	if h.Master == "" {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		h.cmd = nil
		return
	}
	// A master killed with SIGKILL would leave its programs behind.
	StopProcess(h.cmd, syscall.SIGTERM, 15*time.Second)
	h.cmd = nil
}

// StopProcess sends sig to a process a test started and waits until it
// has exited; after grace it is killed.
func StopProcess(cmd *exec.Cmd, sig os.Signal, grace time.Duration) {
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Stop stops haproxy (in master-worker mode: SIGTERM to the master, as
// "systemctl stop haproxy" does) and waits until the process has exited.
func (h *HAProxy) Stop() { h.stop() }

// Log is what haproxy (and, in master-worker mode, its programs) wrote to
// stdout and stderr so far.
func (h *HAProxy) Log() string { return h.log.String() }

// MasterCLI sends one command to the master CLI and returns the reply.
// A connection made while the master starts or re-executes itself is
// never answered (measured on 2.6), so a command that got no reply is
// sent again, for up to 15 s; "reload" is sent once.
func (h *HAProxy) MasterCLI(t testing.TB, command string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := h.masterCommand(command)
		if err == nil || command == "reload" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("master CLI %q: %v", command, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *HAProxy) masterCommand(command string) (string, error) {
	c, err := net.DialTimeout("unix", h.Master, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(command + "\n")); err != nil {
		return "", err
	}
	// The 2.6 master CLI answers once the client has finished writing.
	_ = c.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err == nil && len(out) == 0 && command != "reload" {
		err = errors.New("empty reply")
	}
	return string(out), err
}

// Program is one program section's process, as "show proc" lists it.
type Program struct {
	Name string
	PID  int
	Old  bool // listed under "old programs": started before the last reload
}

// Programs lists the master's programs.
func (h *HAProxy) Programs(t testing.TB) []Program {
	t.Helper()
	var out []Program
	section := ""
	for _, line := range strings.Split(h.MasterCLI(t, "show proc"), "\n") {
		if strings.HasPrefix(line, "#") {
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || (section != "programs" && section != "old programs") {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(fields[0], &pid); err != nil {
			continue
		}
		out = append(out, Program{Name: fields[1], PID: pid, Old: section == "old programs"})
	}
	return out
}

// ReloadMaster sends "reload" to the master CLI and waits until a new
// worker answers on the stats socket.
func (h *HAProxy) ReloadMaster(t testing.TB) {
	t.Helper()
	before := workerPID(h.showInfo())
	h.MasterCLI(t, "reload")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if now := workerPID(h.showInfo()); now != "" && now != before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new worker after the master reload; log:\n%s", h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func workerPID(info string) string {
	for _, line := range strings.Split(info, "\n") {
		if pid, ok := strings.CutPrefix(line, "Pid: "); ok {
			return strings.TrimSpace(pid)
		}
	}
	return ""
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
// runtime change is lost, as after a host reboot. After Stop, it starts it.
func (h *HAProxy) Restart(t testing.TB) {
	t.Helper()
	h.stop()
	_ = os.Remove(h.Socket)
	h.cmd = exec.Command(Binary(t), h.args()...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("restart haproxy: %v", err)
	}
	h.waitSocket(t)
	if h.Master != "" {
		h.MasterCLI(t, "show proc")
	}
}
