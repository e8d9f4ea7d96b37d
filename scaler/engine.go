package scaler

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Labels every managed container carries; they, and HAProxy's slot state,
// are all slotscaler needs to find its containers again after a restart.
const (
	LabelService    = "slotscaler.service"
	LabelSlot       = "slotscaler.slot"
	LabelHost       = "slotscaler.host"
	LabelGeneration = "slotscaler.generation"
	// LabelOwner names the slotscaler instance (its state_dir's owner ID)
	// that started the container; another instance leaves it alone.
	LabelOwner = "slotscaler.owner"
)

// ErrImageNotFound means the image is not on the host and may not be pulled.
var ErrImageNotFound = errors.New("image not found on the host")

// Container is a managed container as an Engine lists it.
type Container struct {
	ID         string
	Name       string
	Service    string
	Slot       string
	Host       string
	Generation string
	Image      string
	Running    bool
	Port       int // host port the service port is published on; 0 when not running
	Created    time.Time
}

// Spec is what an Engine starts.
type Spec struct {
	Name       string
	Service    string
	Slot       string
	Host       string
	Generation string
	Image      string
	Port       int        // the service's port inside the container
	PublishIP  netip.Addr // host address the port is published on
	Env        map[string]string
	Volumes    []string
	Labels     map[string]string
	Command    []string
	Memory     int64   // bytes, 0: no limit
	CPUs       float64 // 0: no limit
}

// CPUSample is a container's cumulative CPU use; two samples give a percent.
type CPUSample struct {
	ContainerNS uint64 // CPU time the container used
	SystemNS    uint64 // CPU time the whole host used
	OnlineCPUs  int
}

// Percent is the CPU the container used between prev and s, in percent of
// one CPU (as docker stats shows it); negative when it cannot be told.
func (s CPUSample) Percent(prev CPUSample) float64 {
	if prev.SystemNS == 0 || s.SystemNS <= prev.SystemNS || s.ContainerNS < prev.ContainerNS {
		return -1
	}
	return float64(s.ContainerNS-prev.ContainerNS) / float64(s.SystemNS-prev.SystemNS) * float64(max(s.OnlineCPUs, 1)) * 100
}

// Engine is one Docker host. Implementations must be safe for concurrent use.
type Engine interface {
	// Containers lists every managed container on the host, all services,
	// running or not.
	Containers(ctx context.Context) ([]Container, error)
	// Start creates and starts a container and returns it with its
	// published port; on error nothing is left behind.
	Start(ctx context.Context, spec Spec) (Container, error)
	// Remove stops a container (SIGTERM, SIGKILL after grace) and removes it.
	Remove(ctx context.Context, id string, grace time.Duration) error
	// CPU samples a running container's CPU use.
	CPU(ctx context.Context, id string) (CPUSample, error)
}
