package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
)

// rssTicks is how many ticks the binary runs before its memory is read.
const rssTicks = 20

// BenchmarkRunRSS runs `slotscaler run` on
// the 200 x 20 config against a real haproxy and the real local Docker
// engine (where none of these services has a container, so every tick
// observes and decides and has nothing to do, as in BenchmarkTick), waits
// for rssTicks ticks on its /metrics, and reads VmRSS and VmHWM from
// /proc/PID/status. The Docker engine is real because the binary has no
// fake: its Docker client, HTTP API and metrics are all in the figure.
func BenchmarkRunRSS(b *testing.B) {
	// make bench passes the binary `make build` made; otherwise build it
	// the same way.
	bin := os.Getenv("SLOTSCALER_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "slotscaler")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/slotscaler/slotscaler")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	h := haproxytest.Start(b, haproxyBackends(benchServices, benchSlots))
	b.ResetTimer()
	dir := b.TempDir()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(b))
	cfgPath := filepath.Join(dir, "slotscaler.yaml")
	// Service names unique to this run: the Docker engine is shared.
	prefix := fmt.Sprintf("rss%d-", os.Getpid())
	if err := os.WriteFile(cfgPath, []byte(scalerYAML(prefix, "unix://"+h.Socket, dir, apiAddr, benchServices, benchSlots)), 0o600); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		vmRSS, vmHWM, took := runForRSS(b, bin, cfgPath, apiAddr)
		b.ReportMetric(float64(vmRSS)/1024, "MB-VmRSS")
		b.ReportMetric(float64(vmHWM)/1024, "MB-VmHWM")
		fmt.Printf("slotscaler run, %d services x %d slots, after %d ticks (%s): VmRSS %.1f MB, VmHWM %.1f MB (goal VmRSS <= 40 MB)\n",
			benchServices, benchSlots, rssTicks, took.Round(time.Second), float64(vmRSS)/1024, float64(vmHWM)/1024)
	}
}

// runForRSS starts the binary, waits for rssTicks ticks and returns its
// VmRSS and VmHWM in KiB, then stops it.
func runForRSS(b *testing.B, bin, cfgPath, apiAddr string) (vmRSS, vmHWM int, took time.Duration) {
	var logs haproxytest.SyncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-format", "text", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		n, err := tickCount(ctx, "http://"+apiAddr+"/metrics")
		if err == nil && n >= rssTicks {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("slotscaler did not tick %d times (last: %d, %v); log:\n%s", rssTicks, n, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	took = time.Since(start)
	vmRSS, vmHWM, err := procMemory(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		b.Errorf("slotscaler logged errors:\n%s", logs.String())
	}
	return vmRSS, vmHWM, took
}

// tickCount reads slotscaler_tick_duration_seconds_count from /metrics.
func tickCount(ctx context.Context, url string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "slotscaler_tick_duration_seconds_count "); ok {
			n, err := strconv.ParseFloat(v, 64)
			return int(n), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, io.ErrUnexpectedEOF
}

// procMemory reads VmRSS and VmHWM (peak RSS), in KiB, of a process.
func procMemory(pid int) (vmRSS, vmHWM int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(val), " kB"))
		switch key {
		case "VmRSS":
			vmRSS = kb
		case "VmHWM":
			vmHWM = kb
		}
	}
	if vmRSS == 0 || vmHWM == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM (%w)", pid, sc.Err())
	}
	return vmRSS, vmHWM, nil
}
