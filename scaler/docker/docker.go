// Package docker is slotscaler's Docker driver: one Engine per host, on the
// official client. Containers are published on the host's address (the
// address HAProxy reaches it by, 127.0.0.1 for the local engine) at a port
// the engine picks, so slots of one host never collide and remote hosts work
// the same way as the local one.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// Engine is a Docker host reached through its API.
type Engine struct {
	host  string
	api   *client.Client
	pull  bool
	owner string

	// present holds the images found on the host: a start of one of them
	// creates at once, without an image inspect first (a round trip less
	// before the slot can come up). One removed since makes the create
	// fail with not found; the start then looks again (and pulls).
	mu      sync.Mutex
	present map[string]bool
}

var _ scaler.Engine = (*Engine)(nil)

// Options are how an Engine reaches its host.
type Options struct {
	Endpoint string      // unix://, tcp:// or ssh://user@host[:port]
	TLS      *config.TLS // client certificates for tcp://
	Pull     bool        // pull a missing image instead of refusing to start
	// Owner, when set, labels every container this Engine starts
	// (scaler.LabelOwner) and limits Containers to those it labelled and
	// those without an owner (started before the label existed, adopted).
	// Empty: no label, every slotscaler container is listed.
	Owner string
}

// New connects lazily to a Docker engine; the API version is negotiated on
// the first call, so Debian's 20.10 engine (API 1.41) works.
func New(host string, o Options) (*Engine, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("docker host %s: endpoint %q: %w", host, o.Endpoint, err)
	}
	switch u.Scheme {
	case "unix", "tcp":
		opts = append(opts, client.WithHost(o.Endpoint))
		if o.TLS != nil {
			opts = append(opts, client.WithTLSClientConfig(o.TLS.CA, o.TLS.Cert, o.TLS.Key))
		}
	case "ssh":
		// The engine's own stdio bridge over ssh, as the docker CLI does it.
		opts = append(opts, client.WithHost("http://docker.invalid"), client.WithDialContext(sshDialer(u)))
	default:
		return nil, fmt.Errorf("docker host %s: endpoint %q: want unix://, tcp:// or ssh://", host, o.Endpoint)
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker host %s: %w", host, err)
	}
	return &Engine{host: host, api: api, pull: o.Pull, owner: o.Owner, present: map[string]bool{}}, nil
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.api.Close() }

// Ping checks that the engine answers.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.api.Ping(ctx); err != nil {
		return fmt.Errorf("docker host %s: %w", e.host, tlsHint(err))
	}
	// Negotiated now, before the loop's goroutines share the client: its
	// lazy negotiation on a first request races with another request's
	// read of the version (the race detector caught it in an e2e test).
	e.api.NegotiateAPIVersion(ctx)
	return nil
}

// Containers lists every container carrying slotscaler's service label
// that is this Engine's owner's or has no owner.
func (e *Engine) Containers(ctx context.Context) ([]scaler.Container, error) {
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", scaler.LabelService))})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", e.host, tlsHint(err))
	}
	out := make([]scaler.Container, 0, len(list))
	for _, c := range list {
		// The engine's filters cannot say "this owner or none": done here.
		if owner := c.Labels[scaler.LabelOwner]; e.owner != "" && owner != "" && owner != e.owner {
			continue
		}
		sc := scaler.Container{
			ID:         c.ID,
			Service:    c.Labels[scaler.LabelService],
			Slot:       c.Labels[scaler.LabelSlot],
			Host:       e.host,
			Generation: c.Labels[scaler.LabelGeneration],
			Image:      c.Image,
			Running:    c.State == container.StateRunning,
			Created:    time.Unix(c.Created, 0),
		}
		if len(c.Names) > 0 {
			sc.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		if port, err := strconv.Atoi(c.Labels[labelPort]); err == nil {
			sc.Port = publicPort(c.Ports, port)
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// tlsHint says what an engine's TLS alert means for the tls block: Go
// does not even send a client certificate the engine's CA did not sign, and
// the engine's alert alone ("certificate required") does not say which
// side is wrong.
func tlsHint(err error) error {
	// crypto/tls reports the peer's alerts as a net.OpError "remote error".
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" {
		return err
	}
	return fmt.Errorf("%w (the engine refused this client: tls.cert must be signed by a CA the engine trusts, with tls.key its key)", err)
}

// labelPort records the service port inside the container, so listing can
// find its published port among others the image may expose.
const labelPort = "slotscaler.port"

func publicPort(ports []container.Port, private int) int {
	for _, p := range ports {
		if int(p.PrivatePort) == private && p.Type == "tcp" && p.PublicPort != 0 {
			return int(p.PublicPort)
		}
	}
	return 0
}

// Start creates and starts a container for spec and returns it with its
// published port. Whatever fails after create removes the container again.
func (e *Engine) Start(ctx context.Context, spec scaler.Spec) (scaler.Container, error) {
	if !e.known(spec.Image) {
		if err := e.ensureImage(ctx, spec.Image); err != nil {
			return scaler.Container{}, err
		}
	}
	port := nat.Port(fmt.Sprintf("%d/tcp", spec.Port))
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range map[string]string{
		scaler.LabelService: spec.Service, scaler.LabelSlot: spec.Slot, scaler.LabelHost: spec.Host,
		scaler.LabelGeneration: spec.Generation, labelPort: strconv.Itoa(spec.Port),
	} {
		labels[k] = v
	}
	if e.owner != "" {
		labels[scaler.LabelOwner] = e.owner
	} else {
		delete(labels, scaler.LabelOwner) // spec.Labels cannot claim another owner
	}
	env := make([]string, 0, len(spec.Env))
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          env,
		Labels:       labels,
		ExposedPorts: nat.PortSet{port: {}},
	}
	if len(spec.Command) > 0 {
		cfg.Cmd = spec.Command
	}
	hostCfg := &container.HostConfig{
		PortBindings:  nat.PortMap{port: {{HostIP: spec.PublishIP.String(), HostPort: ""}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Binds:         spec.Volumes,
		Resources: container.Resources{
			Memory:   spec.Memory,
			NanoCPUs: int64(spec.CPUs * 1e9),
		},
	}
	created, err := e.api.ContainerCreate(ctx, cfg, hostCfg, nil, nil, spec.Name)
	if cerrdefs.IsNotFound(err) && e.forget(spec.Image) {
		// Gone since it was found: look again, which pulls it or says
		// it is missing.
		if err := e.ensureImage(ctx, spec.Image); err != nil {
			return scaler.Container{}, err
		}
		created, err = e.api.ContainerCreate(ctx, cfg, hostCfg, nil, nil, spec.Name)
	}
	if err != nil {
		return scaler.Container{}, fmt.Errorf("create %s on %s: %w", spec.Name, e.host, err)
	}
	c, err := e.startCreated(ctx, created.ID, port)
	if err != nil {
		// A fresh context: the caller's may be what failed.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rmErr := e.api.ContainerRemove(cleanup, created.ID, container.RemoveOptions{Force: true}); rmErr != nil {
			err = fmt.Errorf("%w (and removing it: %v)", err, rmErr)
		}
		return scaler.Container{}, fmt.Errorf("start %s on %s: %w", spec.Name, e.host, err)
	}
	c.Name, c.Service, c.Slot, c.Host, c.Generation, c.Image = spec.Name, spec.Service, spec.Slot, e.host, spec.Generation, spec.Image
	return c, nil
}

func (e *Engine) startCreated(ctx context.Context, id string, port nat.Port) (scaler.Container, error) {
	if err := e.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return scaler.Container{}, err
	}
	info, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return scaler.Container{}, err
	}
	c := scaler.Container{ID: id, Running: info.State != nil && info.State.Running}
	if info.Created != "" {
		c.Created, _ = time.Parse(time.RFC3339Nano, info.Created)
	}
	if info.NetworkSettings != nil {
		for _, b := range info.NetworkSettings.Ports[port] {
			if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
				c.Port = p
				break
			}
		}
	}
	if !c.Running || c.Port == 0 {
		return scaler.Container{}, fmt.Errorf("container exited at once or has no published port for %s (state %+v)", port, info.State)
	}
	return c, nil
}

// known reports whether ref was found on the host before.
func (e *Engine) known(ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.present[ref]
}

// forget drops ref from the images found; false: it was not among them.
func (e *Engine) forget(ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	had := e.present[ref]
	delete(e.present, ref)
	return had
}

// ensureImage makes sure ref is on the host (pulling it when allowed) and
// records it as found.
func (e *Engine) ensureImage(ctx context.Context, ref string) error {
	if err := e.lookImage(ctx, ref); err != nil {
		return err
	}
	e.mu.Lock()
	e.present[ref] = true
	e.mu.Unlock()
	return nil
}

func (e *Engine) lookImage(ctx context.Context, ref string) error {
	_, err := e.api.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return nil
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("inspect image %s on %s: %w", ref, e.host, err)
	case !e.pull:
		return fmt.Errorf("image %s on host %s: %w (build or load it there, or set docker.pull: true when a registry is reachable)", ref, e.host, scaler.ErrImageNotFound)
	}
	rc, err := e.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s on %s: %w", ref, e.host, err)
	}
	defer rc.Close()
	if err := ReadProgress(rc); err != nil {
		return fmt.Errorf("pull %s on %s: %w", ref, e.host, err)
	}
	return nil
}

// ReadProgress reads an engine progress stream (pull, build) to its end:
// the operation ends with the stream, and its errors arrive inside it.
func ReadProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// Remove stops the container with SIGTERM, kills it after grace, and
// removes it. A container already gone is not an error.
func (e *Engine) Remove(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if err := e.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %.12s on %s: %w", id, e.host, err)
	}
	if err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %.12s on %s: %w", id, e.host, err)
	}
	return nil
}

// CPU reads one stats sample without waiting for the engine's second one.
func (e *Engine) CPU(ctx context.Context, id string) (scaler.CPUSample, error) {
	r, err := e.api.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return scaler.CPUSample{}, fmt.Errorf("stats %.12s on %s: %w", id, e.host, err)
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&st); err != nil {
		return scaler.CPUSample{}, fmt.Errorf("stats %.12s on %s: %w", id, e.host, err)
	}
	return scaler.CPUSample{
		ContainerNS: st.CPUStats.CPUUsage.TotalUsage,
		SystemNS:    st.CPUStats.SystemUsage,
		OnlineCPUs:  int(st.CPUStats.OnlineCPUs),
	}, nil
}
