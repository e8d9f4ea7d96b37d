// Package imagebuild builds Docker images through the engine's build API
// from files in memory, so neither a registry nor the docker CLI is needed:
// the demo and test echo image (examples/echo compiled as a static binary,
// FROM scratch) and slotscaler's own image.
package imagebuild

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

// File is one file of a build context.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Build builds tag from a Dockerfile among files; args are its build
// arguments.
func Build(ctx context.Context, c *client.Client, tag string, files []File, args map[string]string) error {
	var buildContext bytes.Buffer
	tw := tar.NewWriter(&buildContext)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	buildArgs := map[string]*string{}
	for k, v := range args {
		buildArgs[k] = &v
	}
	resp, err := c.ImageBuild(ctx, &buildContext, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, BuildArgs: buildArgs})
	if err != nil {
		return fmt.Errorf("docker build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := docker.ReadProgress(resp.Body); err != nil {
		return fmt.Errorf("docker build %s: %w", tag, err)
	}
	return nil
}

// GoBinary compiles a package of the module at root as a static Linux
// binary and returns its bytes.
func GoBinary(ctx context.Context, root, pkg string, ldflags string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "imagebuild")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return os.ReadFile(bin)
}

// Echo builds the echo service of root/examples/echo as tag; args are the
// Dockerfile's build arguments (VERSION, HEALTH).
func Echo(ctx context.Context, c *client.Client, root, tag string, args map[string]string) error {
	binary, err := GoBinary(ctx, root, "./examples/echo", "-s -w")
	if err != nil {
		return err
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "examples", "echo", "Dockerfile"))
	if err != nil {
		return err
	}
	return Build(ctx, c, tag, []File{{"Dockerfile", 0o644, dockerfile}, {"echo", 0o755, binary}}, args)
}
