package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/imagebuild"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

func runApp(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).Run(append([]string{"slotscaler"}, args...))
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ec):
		code = ec.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestCheckExampleOK(t *testing.T) {
	t.Setenv("SLOTSCALER_CI_TOKEN", "example-token-0123456789")
	out, errOut, code := runApp(t, "check", "--config", "examples/slotscaler.yaml")
	if code != 0 || !strings.Contains(out, "ok (2 services)") {
		t.Errorf("check example: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCheckBadFilePrintsEveryMistake(t *testing.T) {
	_, errOut, code := runApp(t, "check", "--config", "scaler/config/testdata/bad.yaml")
	if code != exitInvalidConfig {
		t.Errorf("exit code %d, want %d", code, exitInvalidConfig)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) < 5 {
		t.Fatalf("want one line per mistake, got:\n%s", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "scaler/config/testdata/bad.yaml: ") || !strings.Contains(l, ": ") {
			t.Errorf("line without file and field path: %q", l)
		}
	}
	// A decoding error and a validation error, in one run.
	for _, want := range []string{`services[0].schedule.timezone: unknown time zone "Asia/Dhakka"`, "services[0].min_replicas: 5 is above max_replicas 3"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q:\n%s", want, errOut)
		}
	}
}

func TestCheckAgainstHAProxyConfig(t *testing.T) {
	data, _ := os.ReadFile("examples/slotscaler.yaml")
	cfg := strings.Replace(string(data), "max_replicas: 5\n", "max_replicas: 5\n    slots: {mode: template, prefix: srv}\n", 1)
	cfg = strings.Replace(cfg, "    slots: {mode: template, prefix: slot}\n", "", 1)
	path := filepath.Join(t.TempDir(), "s.yaml")
	cfg = strings.Replace(cfg, "config_file: examples/haproxy.cfg", "config_file: "+filepath.Join(mustAbs(t, "examples"), "haproxy.cfg"), 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runApp(t, "check", "--config", path)
	if code != exitInvalidConfig || !strings.Contains(errOut, `services[0].slots.prefix: backend "echo" has no server-template "srv"`) {
		t.Errorf("code %d, stderr:\n%s", code, errOut)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The example haproxy.cfg, which holds render's output, is valid HAProxy.
func TestExampleHAProxyConfigValid(t *testing.T) {
	if out, err := exec.Command(haproxytest.Binary(t), "-c", "-f", "examples/haproxy.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c examples/haproxy.cfg: %v\n%s", err, out)
	}
	rendered, _, code := runApp(t, "render", "--config", "examples/slotscaler.yaml")
	example, _ := os.ReadFile("examples/haproxy.cfg")
	if code != 0 || !strings.Contains(string(example), strings.TrimSpace(rendered)) {
		t.Errorf("examples/haproxy.cfg does not contain render's current output:\n%s", rendered)
	}
}

// TestRunDryRun runs "slotscaler run --dry-run" against a real haproxy and
// the real Docker engine: it decides to start the minimum replicas, logs
// and prints that plan, and changes nothing.
func TestRunDryRun(t *testing.T) {
	raw := dockertest.Client(t)
	service := dockertest.ServiceName(t, "dry")
	dockertest.RemoveAll(t, raw, service)
	h, path := haproxyFor(t, runYAML(service, "{image: slotscaler-echo:test, port: 8080}", 2, 3))

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out, logs bytes.Buffer
	if err := newApp(&out, &logs).RunContext(ctx, []string{"slotscaler", "run", "--config", path, "--dry-run", "--log-format", "text"}); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `msg="dry run: planned"`) || !strings.Contains(logs.String(), "action=start") || !strings.Contains(logs.String(), "desired=2") {
		t.Errorf("dry run did not log its decision and plan:\n%s", logs.String())
	}
	if !strings.Contains(out.String(), ": start a container on local for ") {
		t.Errorf("dry run did not print its plan on stdout:\n%s", out.String())
	}
	if n := len(dockertest.Containers(t, raw, service)); n != 0 {
		t.Errorf("dry run created %d containers", n)
	}
	lb, _ := runtimeapi.New("unix://" + h.Socket)
	b, err := lb.Backend(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Servers {
		if s.Admin != runtimeapi.AdminMaint {
			t.Errorf("dry run changed %s to %s", s.Name, s.Admin)
		}
	}
}

// TestDockerImageRunsVersion builds the Dockerfile (FROM scratch, the static
// binary, a non-root user) on the real engine and runs "slotscaler version"
// in it.
func TestDockerImageRunsVersion(t *testing.T) {
	raw := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	binary, err := imagebuild.GoBinary(ctx, ".", ".", "-s -w -X main.version=image-test")
	if err != nil {
		t.Fatal(err)
	}
	var files []imagebuild.File
	for name, data := range map[string][]byte{"Dockerfile": nil, "examples/slotscaler.yaml": nil} {
		if data, err = os.ReadFile(name); err != nil {
			t.Fatal(err)
		}
		files = append(files, imagebuild.File{Name: name, Mode: 0o644, Data: data})
	}
	files = append(files, imagebuild.File{Name: "bin/slotscaler", Mode: 0o755, Data: binary})
	const tag = "slotscaler:image-test"
	if err := imagebuild.Build(ctx, raw, tag, files, nil); err != nil {
		t.Fatal(err)
	}
	created, err := raw.ContainerCreate(ctx, &container.Config{Image: tag, Cmd: []string{"version"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := raw.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := raw.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Fatalf("slotscaler version exited %d", w.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := raw.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out bytes.Buffer
	io.Copy(&out, logs)
	if !strings.Contains(out.String(), "slotscaler image-test") {
		t.Errorf("image output %q, want the version line", out.String())
	}
	inspect, err := raw.ImageInspect(ctx, tag)
	if err == nil && inspect.Config.User != "65532:65532" {
		t.Errorf("image user %q, want the non-root 65532:65532", inspect.Config.User)
	}
}
