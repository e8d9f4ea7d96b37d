package docker_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dockerimage "github.com/docker/docker/api/types/image"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/tooltest"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

func spec(service, image string) scaler.Spec {
	return scaler.Spec{
		Name: service + "-slot1", Service: service, Slot: "slot1", Host: "local", Generation: "g1",
		Image: image, Port: 8080, PublishIP: netip.MustParseAddr("127.0.0.1"),
		Env: map[string]string{"ECHO_VERSION": "v7"}, Labels: map[string]string{"team": "qa"},
		Memory: 32 << 20, CPUs: 0.25,
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no 200 in 10s (last error %v)", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEngineLifecycle starts the echo image on the real engine, reaches it
// on its published loopback port, finds it by label, samples its CPU, and
// removes it.
func TestEngineLifecycle(t *testing.T) {
	image, raw, e, service := dockertest.Fixture(t, "drv")
	ctx := context.Background()

	c, err := e.Start(ctx, spec(service, image))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Running || c.Port == 0 || c.ID == "" {
		t.Fatalf("started container: %+v", c)
	}
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", c.Port)); !strings.Contains(body, "v7") {
		t.Errorf("echo answered %q, want its env ECHO_VERSION=v7", body)
	}

	list, err := e.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *scaler.Container
	for i := range list {
		if list[i].ID == c.ID {
			found = &list[i]
		}
	}
	want := scaler.Container{ID: c.ID, Name: service + "-slot1", Service: service, Slot: "slot1", Host: "local", Generation: "g1", Image: image, Running: true, Port: c.Port}
	if found == nil {
		t.Fatalf("container %s not listed", c.ID)
	}
	found.Created = time.Time{}
	if *found != want {
		t.Errorf("listed\n%+v\nwant\n%+v", *found, want)
	}
	inspect, err := raw.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if hc := inspect.HostConfig; hc.Memory != 32<<20 || hc.NanoCPUs != 25e7 || hc.RestartPolicy.Name != "no" || inspect.Config.Labels["team"] != "qa" {
		t.Errorf("limits/labels not applied: memory %d nanocpus %d restart %q labels %v", hc.Memory, hc.NanoCPUs, hc.RestartPolicy.Name, inspect.Config.Labels)
	}

	s1, err := e.CPU(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s1.SystemNS == 0 || s1.OnlineCPUs == 0 {
		t.Errorf("cpu sample %+v: want system time and CPU count", s1)
	}

	// The echo image exits on SIGTERM at once: removal must not wait the grace.
	start := time.Now()
	if err := e.Remove(ctx, c.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("remove took %v: SIGTERM was not honoured", d)
	}
	if n := len(dockertest.Containers(t, raw, service)); n != 0 {
		t.Errorf("%d containers left after Remove", n)
	}
	if err := e.Remove(ctx, c.ID, time.Second); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
}

func TestEngineMissingImage(t *testing.T) {
	raw := dockertest.Client(t)
	e := dockertest.Engine(t)
	service := dockertest.ServiceName(t, "drv")
	dockertest.RemoveAll(t, raw, service)
	_, err := e.Start(context.Background(), spec(service, "slotscaler-missing:never"))
	if !errors.Is(err, scaler.ErrImageNotFound) || !strings.Contains(err.Error(), "slotscaler-missing:never") {
		t.Fatalf("err = %v, want ErrImageNotFound naming the image", err)
	}
	if n := len(dockertest.Containers(t, raw, service)); n != 0 {
		t.Errorf("%d containers left after a failed start", n)
	}
}

// An image found by one start is not looked up again by the next; when it
// was removed in between, the start still fails with ErrImageNotFound
// naming it.
func TestEngineImageRemovedAfterStart(t *testing.T) {
	image, raw, e, service := dockertest.Fixture(t, "drv")
	ctx := context.Background()
	tag := "slotscaler-echo:" + service // removed below: the echo image stays
	if err := raw.ImageTag(ctx, image, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.ImageRemove(context.Background(), tag, dockerimage.RemoveOptions{}) })
	c, err := e.Start(ctx, spec(service, tag))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ImageRemove(ctx, tag, dockerimage.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = e.Start(ctx, spec(service, tag))
	if !errors.Is(err, scaler.ErrImageNotFound) || !strings.Contains(err.Error(), tag) {
		t.Fatalf("err = %v, want ErrImageNotFound naming %s", err, tag)
	}
	if n := len(dockertest.Containers(t, raw, service)); n != 0 {
		t.Errorf("%d containers left after a failed start", n)
	}
}

// A container that cannot start (its publish address is not on this host)
// is reported and removed, not left behind.
func TestEngineStartFailureLeavesNothing(t *testing.T) {
	image, raw, e, service := dockertest.Fixture(t, "drv")
	s := spec(service, image)
	s.PublishIP = netip.MustParseAddr("192.0.2.1") // TEST-NET-1, never local
	_, err := e.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), s.Name) {
		t.Fatalf("err = %v, want a start error naming %s", err, s.Name)
	}
	if n := len(dockertest.Containers(t, raw, service)); n != 0 {
		t.Errorf("failed start left %d containers", n)
	}
}

// ssh:// endpoints go through "docker system dial-stdio"; a stand-in ssh
// that runs it locally proves the wiring against the real engine.
func TestEngineOverSSHDialStdio(t *testing.T) {
	tooltest.Path(t, "docker", "docker.io") // the CLI, which ssh:// needs on the remote side only
	dockertest.Client(t)
	fakeSSH(t, "# stand-in for ssh: drop options and the target, run the command locally\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift 2\nexec \"$@\"\n")
	e, ctx := sshEngine(t, "ssh://deploy@remote.invalid:2222")
	if err := e.Ping(ctx); err != nil {
		t.Fatalf("ping over dial-stdio: %v", err)
	}
	if _, err := e.Containers(ctx); err != nil {
		t.Fatalf("list over dial-stdio: %v", err)
	}
}

// fakeSSH puts a shell script named ssh first on PATH for the test.
func fakeSSH(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// sshEngine is an Engine for endpoint and a context for its calls, both
// ending with the test.
func sshEngine(t *testing.T, endpoint string) (*docker.Engine, context.Context) {
	t.Helper()
	e, err := docker.New("remote", docker.Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return e, ctx
}

// When ssh fails, its own words reach the error instead of a bare EOF.
func TestEngineOverSSHErrorCarriesStderr(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"refused key", "echo 'deploy@remote.invalid: Permission denied (publickey).' >&2\nexit 255\n", "Permission denied (publickey)."},
		{"no docker there", "echo 'sh: 1: docker: not found' >&2\nexit 127\n", "docker: not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeSSH(t, tt.script)
			e, ctx := sshEngine(t, "ssh://deploy@remote.invalid")
			_, err := e.Containers(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ssh deploy@remote.invalid") {
				t.Fatalf("err = %v, want ssh's stderr %q and the target", err, tt.want)
			}
			t.Logf("list: %v", err)
			if err := e.Ping(ctx); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ping err = %v, want ssh's stderr %q", err, tt.want)
			}
		})
	}
}

// Two Engines with different owners on one Docker engine each list their
// own containers only; a container without the owner label (started before
// the label existed) is listed, adopted, by both.
func TestEngineOwnerLabel(t *testing.T) {
	image := dockertest.BuildEcho(t)
	raw := dockertest.Client(t)
	service := dockertest.ServiceName(t, "own")
	dockertest.RemoveAll(t, raw, service)
	ctx := context.Background()
	engines := map[string]*docker.Engine{}
	for _, owner := range []string{"", "owner-a", "owner-b"} {
		e, err := docker.New("local", docker.Options{Endpoint: dockertest.Endpoint, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines[owner] = e
	}
	started := map[string]string{} // owner -> container id
	for owner, e := range engines {
		s := spec(service, image)
		s.Name = service + "-" + cmp.Or(owner, "unlabelled")
		if owner == "" {
			s.Labels = map[string]string{scaler.LabelOwner: "owner-b"} // a spec cannot claim an owner
		}
		c, err := e.Start(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		started[owner] = c.ID
		inspect, err := raw.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := inspect.Config.Labels[scaler.LabelOwner]; got != owner || ok != (owner != "") {
			t.Errorf("container of owner %q carries owner label %q (set: %v)", owner, got, ok)
		}
	}
	for _, tt := range []struct {
		owner string
		want  []string
	}{
		{"owner-a", []string{started["owner-a"], started[""]}},
		{"owner-b", []string{started["owner-b"], started[""]}},
		{"", []string{started["owner-a"], started["owner-b"], started[""]}},
	} {
		list, err := engines[tt.owner].Containers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range list {
			if c.Service == service {
				got = append(got, c.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(tt.want)
		if !slices.Equal(got, tt.want) {
			t.Errorf("owner %q lists %v, want %v", tt.owner, got, tt.want)
		}
	}
}
