package config

import (
	"fmt"
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Wake lets a service scale to zero: HAProxy sends requests that find no
// slot to the backend's backup server "wake", which is slotscaler's wake
// listener at Listen; it starts a replica and holds the requests until a
// slot serves.
type Wake struct {
	Listen     string   `yaml:"listen"`      // ip:port of the backend's "server wake <listen> backup"
	Timeout    Duration `yaml:"timeout"`     // a held request gets 503 after this long (default 30s)
	MaxPending int      `yaml:"max_pending"` // held requests at most; more get 503 with Retry-After (default 1000)
	IdleAfter  Duration `yaml:"idle_after"`  // the last replica goes after this long without sessions, queue or held requests (default 10m)
}

// Wake defaults.
const (
	DefaultWakeTimeout    = 30 * time.Second
	DefaultWakeMaxPending = 1000
	DefaultWakeIdleAfter  = 10 * time.Minute
)

// WakeServer is the backup server's name in the backend.
const WakeServer = "wake"

// ListenAddr is the validated address of the wake listener.
func (w Wake) ListenAddr() netip.AddrPort {
	a, _ := netip.ParseAddrPort(w.Listen)
	return a
}

func (w *Wake) applyDefaults() {
	if w.Timeout.Duration == 0 {
		w.Timeout.Duration = DefaultWakeTimeout
	}
	if w.MaxPending == 0 {
		w.MaxPending = DefaultWakeMaxPending
	}
	if w.IdleAfter.Duration == 0 {
		w.IdleAfter.Duration = DefaultWakeIdleAfter
	}
}

// defaultMinReplicas gives a service whose min_replicas the file omits a
// min of 1, or of 0 when it has a wake block: only a service that can wake
// goes to zero by default. root is the decoded file.
func (c *Config) defaultMinReplicas(root *yaml.Node) {
	services := mappingValue(root, "services")
	if services == nil || services.Kind != yaml.SequenceNode {
		return
	}
	for i, item := range services.Content {
		if i >= len(c.Services) || item.Kind != yaml.MappingNode || mappingValue(item, "min_replicas") != nil {
			continue
		}
		if c.Services[i].Wake == nil {
			c.Services[i].MinReplicas = 1
		}
	}
}

// mappingValue is the value of key in a mapping node (or a document
// holding one); nil when absent.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// validateWake checks a service's wake block, and that a min of 0 (or a
// max of 0 in a schedule) comes with one: without a wake listener a
// service at zero answers every request with HAProxy's instant 503.
func (s *Service) validateWake(p string) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fieldErr(path, format, args...)) }
	if s.Wake == nil {
		const why = "0 needs a wake block (wake: {listen: 127.0.0.1:PORT}) so that requests to a service at zero are held, not refused"
		if s.MinReplicas == 0 {
			add(p+".min_replicas", why)
		}
		if sc := s.Schedule; sc != nil {
			for j, w := range sc.Windows {
				if w.MinReplicas == 0 {
					add(fmt.Sprintf("%s.schedule.windows[%d].min_replicas", p, j), why)
				}
			}
			if sc.Outside.MinReplicas == 0 {
				add(p+".schedule.outside.min_replicas", why)
			}
		}
		return errs
	}
	w := s.Wake
	if a, err := netip.ParseAddrPort(w.Listen); err != nil || a.Port() == 0 {
		add(p+".wake.listen", "%q: want ip:port, e.g. 127.0.0.1:9301 (HAProxy's \"server wake\" line points there)", w.Listen)
	}
	if w.Timeout.Duration < 100*time.Millisecond {
		add(p+".wake.timeout", "must be at least 100ms, got %s", w.Timeout)
	}
	if w.MaxPending < 1 {
		add(p+".wake.max_pending", "must be at least 1, got %d", w.MaxPending)
	}
	if w.IdleAfter.Duration < time.Second {
		add(p+".wake.idle_after", "must be at least 1s, got %s", w.IdleAfter)
	}
	return errs
}

// validateWakeListens reports a wake listen address used twice, or the
// API's.
func (c *Config) validateWakeListens() []error {
	var errs []error
	seen := map[netip.AddrPort]string{}
	if a, err := netip.ParseAddrPort(c.API.Listen); err == nil {
		seen[a] = "api.listen"
	}
	for i, s := range c.Services {
		if s.Wake == nil {
			continue
		}
		a, err := netip.ParseAddrPort(s.Wake.Listen)
		if err != nil {
			continue // reported by validateWake
		}
		p := fmt.Sprintf("services[%d].wake.listen", i)
		if other, dup := seen[a]; dup {
			errs = append(errs, fieldErr(p, "%s is already used by %s", a, other))
			continue
		}
		seen[a] = p
	}
	return errs
}
