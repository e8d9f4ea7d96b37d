// Package dockertest gives tests the real Docker engine of this machine:
// the echo image built locally FROM scratch (no registry needed), an Engine
// for the local host, and cleanup of the containers a test's service left.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/slotscaler/slotscaler/internal/imagebuild"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

// Tags of the test echo images: v1, v2, and one whose health check fails.
const (
	EchoImage    = "slotscaler-echo:test"
	EchoImageV2  = "slotscaler-echo:test-v2"
	EchoImageBad = "slotscaler-echo:test-unhealthy"
)

// Endpoint is the local engine.
const Endpoint = "unix:///var/run/docker.sock"

var (
	buildOnce sync.Once
	buildErr  error
)

// Client returns a raw client for the local engine or fails the test:
// every machine that runs these tests has an engine (.ci/run starts one).
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost(Endpoint), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("no Docker engine answers at %s (.ci/run starts dockerd): %v", Endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Engine returns the slotscaler engine for the local host, named "local".
func Engine(t testing.TB) *docker.Engine {
	t.Helper()
	Client(t)
	e, err := docker.New("local", docker.Options{Endpoint: Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Ping(context.Background()); err != nil { // negotiates the API version, as slotscaler run does
		t.Fatal(err)
	}
	return e
}

// BuildEcho builds examples/echo as a static binary and the echo images
// (EchoImage, EchoImageV2, EchoImageBad) from it, once per test process.
func BuildEcho(t testing.TB) string {
	t.Helper()
	c := Client(t)
	buildOnce.Do(func() { buildErr = buildEcho(c) })
	if buildErr != nil {
		t.Fatalf("build echo image: %v", buildErr)
	}
	return EchoImage
}

func buildEcho(c *client.Client) error {
	_, file, _, _ := runtime.Caller(0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for tag, args := range map[string]map[string]string{
		EchoImage:    nil,
		EchoImageV2:  {"VERSION": "v2"},
		EchoImageBad: {"VERSION": "v3", "HEALTH": "fail"},
	} {
		if err := imagebuild.Echo(ctx, c, root, tag, args); err != nil {
			return err
		}
	}
	return nil
}

// ServiceName returns a service name unique to this test run, so tests
// running at once on one engine never see each other's containers.
func ServiceName(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s%d%d", strings.ToLower(prefix), os.Getpid(), time.Now().UnixNano()%100000)
}

// Containers lists the containers of service, running or not.
func Containers(t testing.TB, c *client.Client, service string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", scaler.LabelService+"="+service))})
	if err != nil {
		t.Fatalf("list containers of %s: %v", service, err)
	}
	return list
}

// RemoveAll removes every container of service at the end of the test.
func RemoveAll(t testing.TB, c *client.Client, service string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ct := range Containers(t, c, service) {
			if err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Errorf("remove %s: %v", ct.ID[:12], err)
			}
		}
	})
}

// Fixture is what a driver test starts from: the echo image, a raw
// client, the driver, and a service name (prefix and the test's) that
// nothing on the engine uses.
func Fixture(t testing.TB, prefix string) (image string, raw *client.Client, e *docker.Engine, service string) {
	image, raw, e = BuildEcho(t), Client(t), Engine(t)
	service = ServiceName(t, prefix)
	RemoveAll(t, raw, service)
	return image, raw, e, service
}
