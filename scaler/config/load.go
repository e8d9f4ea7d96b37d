package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slotscaler/slotscaler/internal/sockaddr"
)

// MaxFileSize is the largest config file accepted: far above any real
// config, and small enough that decoding stays well under a second.
const MaxFileSize = 1 << 20

// Load reads, decodes, defaults and validates a config file. The error
// joins every problem found, one per line, each with its field path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// One byte more than the limit is enough to refuse a larger file
	// without reading all of it.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data)
}

// Parse is Load on bytes. Decoding and validation problems are reported
// together; a validation problem of a field that failed to decode is left
// out, since the decoding error already names it.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("parse config: larger than %d bytes (1 MiB)", MaxFileSize)
	}
	var root, extra yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fmt.Errorf("parse config: a second YAML document (line %d): the file holds one config", documentLine(&extra))
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var cfg Config
	var d decoder
	errs := d.decodeStrict(&root, reflect.ValueOf(&cfg).Elem(), "")
	if d.visited > MaxValues {
		return nil, errTooManyValues
	}
	cfg.applyDefaults()
	cfg.defaultMinReplicas(&root) // wake (issue 13): an omitted min is 1 without a wake block
	errs = append(errs, notDecoded(errs, cfg.Validate())...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Interval.Duration == 0 {
		c.Interval.Duration = DefaultInterval
	}
	if c.API.Listen == "" {
		c.API.Listen = DefaultListen
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	for i := range c.Docker.Hosts {
		h := &c.Docker.Hosts[i]
		if h.Address == "" {
			h.Address = DefaultHostAddress
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.Backend == "" {
			s.Backend = s.Name
		}
		if s.Slots.Mode == "" {
			s.Slots.Mode = ModeTemplate
		}
		if s.Slots.Prefix == "" {
			s.Slots.Prefix = DefaultPrefix
		}
		if s.Target.Tolerance == 0 {
			s.Target.Tolerance = DefaultTolerance
		}
		if s.MaxScaleUp == 0 {
			s.MaxScaleUp = DefaultMaxScaleUp
		}
		if s.Stabilization.ScaleDown.Duration == 0 {
			s.Stabilization.ScaleDown.Duration = DefaultStabilization
		}
		if s.DrainTimeout.Duration == 0 {
			s.DrainTimeout.Duration = DefaultDrainTimeout
		}
		if s.UnhealthyAfter.Duration == 0 {
			s.UnhealthyAfter.Duration = DefaultUnhealthy
		}
		if s.Check.Inter.Duration == 0 {
			s.Check.Inter.Duration = DefaultCheckInter
		}
		if s.Check.Rise == 0 {
			s.Check.Rise = 2
		}
		if s.Check.Fall == 0 {
			s.Check.Fall = 3
		}
		if s.Wake != nil {
			s.Wake.applyDefaults()
		}
	}
}

// Validate checks a decoded config without changing it and returns every
// problem joined.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fieldErr(path, format, args...)) }

	if len(c.HAProxy.RuntimeAPI) == 0 {
		add("haproxy.runtime_api", "required: unix:///path/to/admin.sock or tcp://127.0.0.1:PORT")
	}
	for i, a := range c.HAProxy.RuntimeAPI {
		if _, _, err := sockaddr.Parse(a); err != nil {
			add(fmt.Sprintf("haproxy.runtime_api[%d]", i), "%v", err)
		}
	}
	if c.Interval.Duration < 100*time.Millisecond {
		add("interval", "must be at least 100ms, got %s", c.Interval)
	}

	if len(c.Docker.Hosts) == 0 {
		add("docker.hosts", "at least one host is required")
	}
	hostNames := map[string]bool{}
	for i, h := range c.Docker.Hosts {
		p := fmt.Sprintf("docker.hosts[%d]", i)
		if err := uniqueName(p+".name", "host", h.Name, hostNames); err != nil {
			errs = append(errs, err)
		}
		scheme, rest, _ := strings.Cut(h.Endpoint, "://")
		switch {
		case h.Endpoint == "":
			add(p+".endpoint", "required, e.g. unix:///var/run/docker.sock")
		case scheme != "unix" && scheme != "tcp" && scheme != "ssh" || rest == "":
			add(p+".endpoint", "%q: want unix://, tcp:// or ssh://", h.Endpoint)
		}
		if h.TLS != nil {
			if scheme != "tcp" {
				add(p+".tls", "only for tcp:// endpoints")
			}
			for _, f := range []struct{ key, val string }{{"ca", h.TLS.CA}, {"cert", h.TLS.Cert}, {"key", h.TLS.Key}} {
				if f.val == "" {
					add(p+".tls."+f.key, "required with tls")
				}
			}
		}
		if _, err := netip.ParseAddr(h.Address); err != nil {
			add(p+".address", "%q is not an IP address", h.Address)
		}
		if h.MaxContainers < 1 {
			add(p+".max_containers", "must be at least 1")
		}
	}

	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		add("api.listen", "%q: want host:port", c.API.Listen)
	}
	errs = append(errs, c.API.validateListen()...)
	tokenNames := map[string]bool{}
	for i, t := range c.API.Tokens {
		p := fmt.Sprintf("api.tokens[%d]", i)
		if err := uniqueName(p+".name", "token", t.Name, tokenNames); err != nil {
			errs = append(errs, err)
		}
		if (t.File == "") == (t.Env == "") {
			add(p, "set exactly one of file or env: token values never live in this file")
		}
		switch t.Role {
		case "viewer", "operator", "admin":
		default:
			add(p+".role", "%q: want viewer, operator or admin", t.Role)
		}
	}

	if len(c.Services) == 0 {
		add("services", "at least one service is required")
	}
	names, backends := map[string]bool{}, map[string]bool{}
	for i, s := range c.Services {
		errs = append(errs, s.validate(fmt.Sprintf("services[%d]", i), names, backends)...)
	}
	errs = append(errs, c.validateWakeListens()...)
	errs = append(errs, c.validateBounds(errs)...)
	return errors.Join(errs...)
}

func (s *Service) validate(p string, names, backends map[string]bool) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fieldErr(path, format, args...)) }
	if err := uniqueName(p+".name", "service", s.Name, names); err != nil {
		errs = append(errs, err)
	}
	if backends[s.Backend] {
		add(p+".backend", "backend %q is already used by another service", s.Backend)
	} else if !validName(s.Backend) {
		add(p+".backend", "%q is not a valid HAProxy backend name", s.Backend)
	}
	backends[s.Backend] = true
	if s.Slots.Mode != ModeTemplate && s.Slots.Mode != ModeDynamic {
		add(p+".slots.mode", "%q: want template or dynamic", s.Slots.Mode)
	}
	if !validName(s.Slots.Prefix) {
		add(p+".slots.prefix", "%q is not a valid server name prefix", s.Slots.Prefix)
	}
	if s.Container.Image == "" {
		add(p+".container.image", "required")
	}
	errs = append(errs, s.validateAllowedImages(p)...)
	if s.Container.Port < 1 || s.Container.Port > 65535 {
		add(p+".container.port", "must be 1-65535, got %d", s.Container.Port)
	}
	for j, v := range s.Container.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") || len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
			add(fmt.Sprintf("%s.container.volumes[%d]", p, j), "%q: want source:/target[:ro|rw]", v)
		}
	}
	if s.Container.CPUs < 0 {
		add(p+".container.cpus", "must not be negative")
	}
	if s.Check.Path != "" && !strings.HasPrefix(s.Check.Path, "/") {
		add(p+".check.path", "%q must start with /", s.Check.Path)
	}
	if s.Check.Rise < 1 || s.Check.Fall < 1 {
		add(p+".check", "rise and fall must be at least 1")
	} else if s.Check.Fall == 1 && s.Slots.Mode == ModeTemplate {
		// HAProxy 2.6 shows a template slot made ready again UP with its
		// last container's passed check (L7OK) until its first check of
		// the new one; with fall 1 nothing tells that apart from a pass,
		// and the new container would get traffic unchecked. With fall 2
		// or more the slot shows a transition (UP 1/2) until then.
		add(p+".check.fall", "must be at least 2 with template slots: with 1, a slot made ready for a new container shows the previous container's passed check until HAProxy checks the new one")
	}
	if s.MinReplicas < 0 {
		add(p+".min_replicas", "must not be negative")
	}
	if s.MaxReplicas < 1 {
		add(p+".max_replicas", "must be at least 1")
	} else if s.MinReplicas > s.MaxReplicas {
		add(p+".min_replicas", "%d is above max_replicas %d", s.MinReplicas, s.MaxReplicas)
	}
	t := s.Target
	if t.SessionsPerReplica <= 0 && t.QueuePerReplica <= 0 && t.CPUPercent <= 0 {
		add(p+".target", "set at least one of sessions_per_replica, queue_per_replica, cpu_percent")
	}
	if t.SessionsPerReplica < 0 || t.QueuePerReplica < 0 || t.CPUPercent < 0 {
		add(p+".target", "targets must not be negative")
	}
	if t.Tolerance < 0 || t.Tolerance >= 1 {
		add(p+".target.tolerance", "must be in [0, 1), got %g", t.Tolerance)
	}
	if s.MaxScaleUp < 1 {
		add(p+".max_scale_up", "must be at least 1")
	}
	if sc := s.Schedule; sc != nil {
		if sc.Timezone.Location == nil {
			add(p+".schedule.timezone", "required: an IANA name such as Asia/Dhaka")
		}
		for j, w := range sc.Windows {
			wp := fmt.Sprintf("%s.schedule.windows[%d]", p, j)
			if w.Days == (Days{}) {
				add(wp+".days", "required, e.g. Mon-Fri")
			}
			if w.Start == w.End {
				add(wp+".end", "equals start %s: a window needs a length", w.Start)
			}
			errs = append(errs, limits(wp, w.MinReplicas, w.MaxReplicas, s.MaxReplicas, s.Wake != nil)...)
		}
		errs = append(errs, limits(p+".schedule.outside", sc.Outside.MinReplicas, sc.Outside.MaxReplicas, s.MaxReplicas, s.Wake != nil)...)
	}
	errs = append(errs, s.validateWake(p)...)
	return errs
}

// limits checks a window's min/max against the service's ceiling, which
// sizes its slots. A max of 0 (closed: requests get 503 at once) needs a
// wake block.
func limits(p string, lo, hi, ceiling int, wake bool) []error {
	var errs []error
	if lo < 0 {
		errs = append(errs, fieldErr(p+".min_replicas", "must not be negative"))
	}
	if hi == 0 && wake {
		if lo > 0 {
			errs = append(errs, fieldErr(p+".min_replicas", "%d is above max_replicas 0", lo))
		}
		return errs // closed
	}
	if hi < 1 {
		errs = append(errs, fieldErr(p+".max_replicas", "must be at least 1"))
	} else if lo > hi {
		errs = append(errs, fieldErr(p+".min_replicas", "%d is above max_replicas %d", lo, hi))
	}
	if hi > ceiling {
		errs = append(errs, fieldErr(p+".max_replicas", "%d is above the service's max_replicas %d (which sizes its slots)", hi, ceiling))
	}
	return errs
}

// uniqueName reports a missing, repeated or malformed name, and records it
// as seen.
func uniqueName(path, kind, name string, seen map[string]bool) error {
	defer func() { seen[name] = true }()
	switch {
	case name == "":
		return fieldErr(path, "required")
	case seen[name]:
		return fieldErr(path, "duplicate %s name %q", kind, name)
	case !validName(name):
		return fieldErr(path, "%q: use letters, digits, '-', '_' and '.'", name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
