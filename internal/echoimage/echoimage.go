// Package echoimage builds the demo and test echo image: examples/echo
// compiled as a static binary and put in an image FROM scratch through the
// engine's build API, so neither a registry nor the docker CLI is needed.
package echoimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"

	"github.com/slotscaler/slotscaler/scaler/docker"
)

// Build compiles root/examples/echo and builds it as tag; args are the
// Dockerfile's build arguments (VERSION, HEALTH).
func Build(ctx context.Context, c *client.Client, root, tag string, args map[string]string) error {
	dir, err := os.MkdirTemp("", "echo-build")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "echo")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./examples/echo")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./examples/echo: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "examples", "echo", "Dockerfile"))
	if err != nil {
		return err
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buildContext bytes.Buffer
	tw := tar.NewWriter(&buildContext)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"echo", 0o755, binary}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := c.ImageBuild(ctx, &buildContext, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, BuildArgs: buildArgs(args)})
	if err != nil {
		return fmt.Errorf("docker build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := docker.ReadProgress(resp.Body); err != nil {
		return fmt.Errorf("docker build %s: %w", tag, err)
	}
	return nil
}

func buildArgs(args map[string]string) map[string]*string {
	out := map[string]*string{}
	for k, v := range args {
		out[k] = &v
	}
	return out
}
