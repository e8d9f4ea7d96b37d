// Command demo is "make demo": it starts HAProxy with examples/haproxy.cfg
// and slotscaler with examples/slotscaler.yaml on loopback, sends a load
// step through HAProxy with the built-in load generator, prints a live
// view of replicas, sessions and queue, ends by waking the echo-zero
// service from zero with one request, and cleans up everything it
// started, also on Ctrl-C. Run it from the repository root after
// "make build" (make demo does both).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/slotscaler/slotscaler/internal/imagebuild"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

const (
	dir       = "/tmp/slotscaler-demo"
	socket    = dir + "/admin.sock"
	frontend  = "http://127.0.0.1:8088/"
	zeroURL   = "http://127.0.0.1:8089/" // frontend zero: the echo-zero service, at zero until asked
	zero      = "echo-zero"
	backend   = "echo"
	image     = "slotscaler-echo:demo"
	demoLabel = "slotscaler.demo=true"
)

// phases of the load: a trickle, a step, and the trickle again until the
// service is back at one replica.
var phases = []struct {
	name    string
	workers int
	length  time.Duration
}{
	{"warm-up", 0, 6 * time.Second},
	{"load step", 45, 25 * time.Second},
	{"cool-down", 0, 45 * time.Second},
}

const trickle = 2 // workers running all along: they must never see a failure

func main() {
	buildOnly := flag.Bool("build-only", false, "build the echo image "+image+" and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *buildOnly); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, buildOnly bool) (err error) {
	for _, p := range []string{"bin/slotscaler", "examples/haproxy.cfg", "examples/slotscaler.yaml"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run from the repository root with \"make demo\"", p)
		}
	}
	if _, err := exec.LookPath("haproxy"); err != nil && !buildOnly {
		return errors.New("haproxy not installed: apt-get install -y haproxy (make demo runs scripts/setup.sh for you)")
	}
	for _, addr := range []string{"127.0.0.1:8088", "127.0.0.1:8089", "127.0.0.1:8404", "127.0.0.1:9301"} {
		if c, err := net.Dial("tcp", addr); err == nil && !buildOnly {
			c.Close()
			return fmt.Errorf("%s is in use: the demo's HAProxy binds it (is another demo running?)", addr)
		}
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer docker.Close()
	if _, err := docker.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker engine answers (%w); start dockerd (scripts/setup.sh does)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, _ := os.Getwd()
	step("building the echo image %s (FROM scratch, no registry)", image)
	if err := imagebuild.Echo(ctx, docker, root, image, nil); err != nil {
		return err
	}
	if buildOnly {
		return nil
	}

	// Everything started from here is stopped on the way out, Ctrl-C
	// included; slotscaler's state_dir starts and ends empty.
	stateDir := filepath.Join(dir, "state")
	_ = os.RemoveAll(stateDir)
	defer os.RemoveAll(stateDir)
	defer cleanup(docker)
	_ = os.Remove(socket)
	step("starting haproxy -f examples/haproxy.cfg (frontend %s)", frontend)
	haproxy := exec.Command("haproxy", "-db", "-f", "examples/haproxy.cfg")
	haproxyLog, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		return err
	}
	defer haproxyLog.Close()
	haproxy.Stdout, haproxy.Stderr = haproxyLog, haproxyLog
	if err := haproxy.Start(); err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	defer stopProcess("haproxy", haproxy, syscall.SIGKILL, 0)
	lb, err := runtimeapi.New("unix://" + socket)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 10*time.Second, func() bool { _, err := lb.Info(ctx); return err == nil }); err != nil {
		return fmt.Errorf("haproxy runtime socket %s: %w (see %s/haproxy.log)", socket, err, dir)
	}
	before, _ := lb.Info(ctx)

	step("starting bin/slotscaler run --config examples/slotscaler.yaml (log: %s/slotscaler.log)", dir)
	scaler := exec.Command("bin/slotscaler", "run", "--config", "examples/slotscaler.yaml", "--log-format", "json")
	// examples/slotscaler.yaml reads the API token of "lbctl" from here.
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	scaler.Env = append(os.Environ(), "SLOTSCALER_CI_TOKEN="+hex.EncodeToString(token))
	logPipe, err := scaler.StderrPipe()
	if err != nil {
		return err
	}
	if err := scaler.Start(); err != nil {
		return fmt.Errorf("start slotscaler: %w", err)
	}
	defer stopProcess("slotscaler", scaler, syscall.SIGTERM, 15*time.Second)
	events := make(chan string, 100)
	go relayEvents(logPipe, events)

	if err := waitFor(ctx, 20*time.Second, func() bool { return view(ctx, lb).serving >= 1 }); err != nil {
		return fmt.Errorf("no replica serving: %w (see %s/slotscaler.log)", err, dir)
	}
	base := loadgen.Start(ctx, frontend, trickle)
	defer base.Stop()
	peak, err := drive(ctx, lb, base, events, func() int {
		list, err := demoContainers(ctx, docker)
		if err != nil {
			return -1
		}
		return len(list)
	})
	baseResult := base.Stop()
	if err != nil {
		return err
	}
	after, _ := lb.Info(context.Background())
	final := view(context.Background(), lb)
	fmt.Println()
	step("summary: replicas 1 -> %d -> %d; trickle requests %d, failed %d; HAProxy pid %d -> %d (no reload)",
		peak, final.serving, baseResult.OK+baseResult.Failed, baseResult.Failed, before.PID, after.PID)
	if baseResult.Failed > 0 {
		return fmt.Errorf("%d requests failed: %v", baseResult.Failed, baseResult.Errors)
	}
	return fromZero(ctx, lb, events)
}

// fromZero wakes echo-zero, which has had no container all along: its
// first request is held by slotscaler's wake listener until a container
// started and passed its check.
func fromZero(ctx context.Context, lb *runtimeapi.Client, events <-chan string) error {
	b, err := lb.Backend(ctx, zero)
	if err != nil {
		return fmt.Errorf("read backend %s: %w", zero, err)
	}
	serving := 0
	for _, s := range b.Servers {
		if s.Name != "wake" && s.Serving() && s.Weight > 0 {
			serving++
		}
	}
	fmt.Println()
	step("from zero: %s has %d replicas; its first request goes to %s", zero, serving, zeroURL)
	client := &http.Client{Timeout: 40 * time.Second}
	for _, what := range []string{"first request (wakes a replica)", "second request (warm)"} {
		begin := time.Now()
		resp, err := client.Get(zeroURL)
		if err != nil {
			return fmt.Errorf("%s to %s: %w", what, zero, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for drained := false; !drained; {
			select {
			case ev := <-events:
				fmt.Println("        » " + ev)
			default:
				drained = true
			}
		}
		step("%s: %d in %s (%s)", what, resp.StatusCode, time.Since(begin).Round(time.Millisecond), strings.TrimSpace(string(body)))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s to %s answered %d", what, zero, resp.StatusCode)
		}
	}
	step("%s goes back to zero after wake.idle_after (10s) without requests", zero)
	return nil
}

// drive runs the load phases and prints a line per second.
func drive(ctx context.Context, lb *runtimeapi.Client, base *loadgen.Run, events <-chan string, containers func() int) (peak int, err error) {
	fmt.Printf("\n%6s  %-10s %7s %8s %9s %9s %9s %6s %7s %7s\n", "time", "phase", "workers", "serving", "starting", "draining", "sessions", "queue", "req/s", "failed")
	fmt.Println("        (» lines are slotscaler's own log events)")
	start := time.Now()
	lastOK, stepsOK, stepsFailed := 0, 0, 0 // stepsOK/Failed: ended load steps
	for _, ph := range phases {
		var step *loadgen.Run
		if ph.workers > 0 {
			step = loadgen.Start(ctx, frontend, ph.workers)
		}
		end := time.Now().Add(ph.length)
		tick := time.NewTicker(time.Second)
		for time.Now().Before(end) {
			select {
			case <-ctx.Done():
				tick.Stop()
				if step != nil {
					step.Stop()
				}
				return peak, errors.New("interrupted")
			case ev := <-events:
				fmt.Println("        » " + ev)
				continue
			case <-tick.C:
			}
			v := view(ctx, lb)
			peak = max(peak, v.serving)
			r := base.Snapshot()
			ok, failed := r.OK+stepsOK, r.Failed+stepsFailed
			if step != nil {
				s := step.Snapshot()
				ok, failed = ok+s.OK, failed+s.Failed
			}
			fmt.Printf("%5.0fs  %-10s %7d %8d %9d %9d %9d %6d %7d %7d\n", time.Since(start).Seconds(), ph.name, ph.workers+trickle,
				v.serving, v.starting, v.draining, v.sessions, v.queue, ok-lastOK, failed)
			lastOK = ok
			if ph.name == "cool-down" && v.serving == 1 && v.starting == 0 && v.draining == 0 && containers() == 1 {
				end = time.Now() // back at the minimum: done
			}
		}
		tick.Stop()
		if step != nil {
			r := step.Stop()
			stepsOK, stepsFailed = stepsOK+r.OK, stepsFailed+r.Failed
			if r.Failed > 0 {
				return peak, fmt.Errorf("%d requests of the load step failed: %v", r.Failed, r.Errors)
			}
		}
	}
	return peak, nil
}

type slotView struct{ serving, starting, draining, sessions, queue int }

func view(ctx context.Context, lb *runtimeapi.Client) slotView {
	var v slotView
	b, err := lb.Backend(ctx, backend)
	if err != nil {
		return v
	}
	v.queue = b.Queue
	for _, s := range b.Servers {
		v.sessions += s.Sessions
		v.queue += s.Queue
		switch {
		case s.Admin == runtimeapi.AdminDrain:
			v.draining++
		case s.Admin == runtimeapi.AdminReady && s.Serving() && s.Weight > 0:
			v.serving++
		case s.Admin == runtimeapi.AdminReady:
			v.starting++
		}
	}
	return v
}

// relayEvents passes slotscaler's scaling events on to the live view.
func relayEvents(r io.Reader, events chan<- string) {
	f, _ := os.Create(filepath.Join(dir, "slotscaler.log"))
	defer f.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Fprintln(f, sc.Text())
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		msg, _ := rec["msg"].(string)
		event, _ := rec["event"].(string)
		if !slices.Contains([]string{"scale_up", "scale_down", "serving", "drain", "container_removed", "start_failed"}, event) && rec["level"] != "ERROR" {
			continue
		}
		line := msg
		for _, k := range []string{"slot", "current", "desired", "reason", "took", "err"} {
			if v, ok := rec[k]; ok && v != "" {
				line += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		select {
		case events <- line:
		default:
		}
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func stopProcess(name string, cmd *exec.Cmd, sig syscall.Signal, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace + time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	step("stopped %s (pid %d)", name, cmd.Process.Pid)
}

// demoContainers lists the containers the demo's slotscaler started; they
// carry the demo label from examples/slotscaler.yaml.
func demoContainers(ctx context.Context, docker *client.Client) ([]container.Summary, error) {
	return docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", demoLabel))})
}

// cleanup removes the containers the demo's slotscaler started.
func cleanup(docker *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := demoContainers(ctx, docker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: list containers to clean up:", err)
		return
	}
	for _, c := range list {
		if err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			fmt.Fprintln(os.Stderr, "demo: remove", c.ID[:12], err)
		}
	}
	step("removed %d demo containers", len(list))
}
