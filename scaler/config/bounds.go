package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Upper bounds and ranges, documented in the README's configuration
// reference. They keep a typo (max_replicas: 1000000000) from sizing
// memory, and every value inside what HAProxy and Docker accept.
const (
	MaxReplicasLimit   = 1000                             // max_replicas, max_scale_up (and so slots per service)
	MaxContainersLimit = 10000                            // docker.hosts[].max_containers
	MaxInterval        = time.Hour                        // interval
	MaxDuration        = 24 * time.Hour                   // drain_timeout, unhealthy_after, stabilization, cooldown, wake.timeout, wake.idle_after
	MinCheckInter      = time.Millisecond                 // HAProxy's timers count milliseconds
	MaxCheckInter      = math.MaxInt32 * time.Millisecond // HAProxy's largest timer (about 24.8 days)
	MaxRiseFall        = 1000                             // check.rise, check.fall
	MinCPUs, MaxCPUs   = 0.01, 1024                       // Docker's smallest CPU limit; a sane largest
	MinMemory          = 6 << 20                          // Docker's smallest memory limit
	MaxTarget          = 1e9                              // target.sessions_per_replica, queue_per_replica, cpu_percent
)

// validateBounds checks ranges, finite numbers and the shape of strings
// that reach haproxy.cfg, the Runtime API or Docker. A control character
// in a field that known (or a shape check here) already refused is not
// reported twice.
func (c *Config) validateBounds(known []error) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fieldErr(path, format, args...)) }
	durationAtMost(&errs, "interval", c.Interval, MaxInterval)
	for i, h := range c.Docker.Hosts {
		if h.MaxContainers > MaxContainersLimit {
			add(fmt.Sprintf("docker.hosts[%d].max_containers", i), "%d is above the limit of %d", h.MaxContainers, MaxContainersLimit)
		}
	}
	if _, port, err := net.SplitHostPort(c.API.Listen); err == nil {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
			add("api.listen", "port %q: want a number 0-65535", port)
		}
	}
	if f := c.HAProxy.ServerStateFile; f != "" {
		if err := HAProxyWord(f); err != nil {
			add("haproxy.server_state_file", "%v", err)
		}
	}
	for i, s := range c.Services {
		errs = append(errs, s.validateBounds(fmt.Sprintf("services[%d]", i))...)
	}
	refused := map[string]bool{}
	for _, err := range append(known, errs...) {
		if fe, ok := err.(*FieldError); ok {
			refused[fe.Path] = true
		}
	}
	for _, err := range controlChars(reflect.ValueOf(c).Elem(), "", false) {
		if !refused[err.(*FieldError).Path] {
			errs = append(errs, err)
		}
	}
	return errs
}

func (s *Service) validateBounds(p string) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fieldErr(path, format, args...)) }
	if s.MaxReplicas > MaxReplicasLimit {
		add(p+".max_replicas", "%d is above the limit of %d", s.MaxReplicas, MaxReplicasLimit)
	}
	if s.MaxScaleUp > MaxReplicasLimit {
		add(p+".max_scale_up", "%d is above the limit of %d", s.MaxScaleUp, MaxReplicasLimit)
	}
	for _, d := range []struct {
		key string
		val Duration
	}{
		{"drain_timeout", s.DrainTimeout}, {"unhealthy_after", s.UnhealthyAfter}, {"stabilization.scale_down", s.Stabilization.ScaleDown},
		{"cooldown.scale_up", s.Cooldown.ScaleUp}, {"cooldown.scale_down", s.Cooldown.ScaleDown},
	} {
		durationAtMost(&errs, p+"."+d.key, d.val, MaxDuration)
	}
	if w := s.Wake; w != nil {
		durationAtMost(&errs, p+".wake.timeout", w.Timeout, MaxDuration)
		durationAtMost(&errs, p+".wake.idle_after", w.IdleAfter, MaxDuration)
	}

	c := s.Check
	switch inter := c.Inter.Duration; {
	case inter < MinCheckInter || inter > MaxCheckInter:
		add(p+".check.inter", "%s is outside HAProxy's timer range %s to %s", inter, MinCheckInter, MaxCheckInter)
	case inter%time.Millisecond != 0:
		add(p+".check.inter", "%s is not a whole number of milliseconds (HAProxy's unit)", inter)
	}
	if c.Rise > MaxRiseFall || c.Fall > MaxRiseFall {
		add(p+".check", "rise and fall must be at most %d", MaxRiseFall)
	}
	if c.Path != "" {
		if err := HAProxyWord(c.Path); err != nil {
			add(p+".check.path", "%v", err)
		}
	}

	for _, f := range []struct {
		key string
		val float64
	}{
		{"target.sessions_per_replica", s.Target.SessionsPerReplica}, {"target.queue_per_replica", s.Target.QueuePerReplica},
		{"target.cpu_percent", s.Target.CPUPercent}, {"container.cpus", s.Container.CPUs},
	} {
		if math.IsNaN(f.val) || math.IsInf(f.val, 0) {
			add(p+"."+f.key, "must be a finite number, got %g", f.val)
		} else if f.val > MaxTarget {
			add(p+"."+f.key, "%g is above the limit of %g", f.val, MaxTarget)
		}
	}
	if math.IsNaN(s.Target.Tolerance) {
		add(p+".target.tolerance", "must be a finite number, got NaN")
	}

	ct := s.Container
	if cpus := ct.CPUs; cpus > 0 && cpus < MinCPUs || cpus > MaxCPUs && cpus <= MaxTarget {
		add(p+".container.cpus", "%g is outside %g to %d (0: no limit)", cpus, MinCPUs, MaxCPUs)
	}
	if ct.Memory != 0 && ct.Memory < MinMemory {
		add(p+".container.memory", "%d bytes is below Docker's smallest limit, 6m (0: no limit)", ct.Memory)
	}
	if ct.Image != "" {
		if _, err := ParseImage(ct.Image); err != nil {
			add(p+".container.image", "%v", err)
		}
	}
	for _, k := range sortedKeys(ct.Env) {
		if err := envKey(k); err != nil {
			add(mapPath(p+".container.env", k), "%v", err)
		}
	}
	for _, k := range sortedKeys(ct.Labels) {
		if k == "" {
			add(mapPath(p+".container.labels", k), "empty label key")
		}
	}
	return errs
}

func durationAtMost(errs *[]error, path string, d Duration, limit time.Duration) {
	if d.Duration > limit {
		*errs = append(*errs, fieldErr(path, "%s is above the limit of %s", d, limit))
	}
}

// envKey refuses environment variable names a process cannot receive:
// empty, with '=' (it would end the name) or with a NUL.
func envKey(k string) error {
	switch {
	case k == "":
		return errors.New("empty variable name")
	case strings.ContainsAny(k, "=\x00"):
		return fmt.Errorf("variable name %q contains '=' or NUL", k)
	}
	return nil
}

// haproxyWord is what HAProxy reads as one word of haproxy.cfg without
// quoting: printable ASCII except space, quotes, backslash and '#'.
var haproxyWord = regexp.MustCompile(`^[!$-&(-\[\]-~]+$`)

// HAProxyWord reports whether s can be written into haproxy.cfg as one
// word: a space would split it, '#' start a comment, a quote or backslash
// change how the rest of the line is read, a newline add a line.
func HAProxyWord(s string) error {
	if !haproxyWord.MatchString(s) {
		return fmt.Errorf("%q cannot be one word of haproxy.cfg: use printable ASCII without spaces, quotes, backslashes or '#'", s)
	}
	return nil
}

// multiline says whether a field of a struct may hold tabs and line breaks:
// container.env values and container.command arguments reach Docker as
// JSON strings (an environment value, one argument), where a newline is
// data, and a shell script in a command is common.
func multiline(t reflect.Type, field string) bool {
	return t == reflect.TypeFor[Container]() && (field == "env" || field == "command")
}

// controlChars walks every string of v (struct fields by their YAML path,
// list items, map keys and values) and refuses control characters: in
// haproxy.cfg or on the Runtime API a newline starts a new line or command.
func controlChars(v reflect.Value, path string, allowLines bool) []error {
	switch v.Kind() {
	case reflect.String:
		return controlIn(path, v.String(), allowLines)
	case reflect.Pointer:
		if !v.IsNil() {
			return controlChars(v.Elem(), path, allowLines)
		}
	case reflect.Slice:
		var errs []error
		for i := range v.Len() {
			errs = append(errs, controlChars(v.Index(i), fmt.Sprintf("%s[%d]", path, i), allowLines)...)
		}
		return errs
	case reflect.Map:
		var errs []error
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			p := mapPath(path, k.String())
			errs = append(errs, controlIn(p, k.String(), false)...)
			errs = append(errs, controlChars(v.MapIndex(k), p, allowLines)...)
		}
		return errs
	case reflect.Struct:
		var errs []error
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := join(path, name)
			errs = append(errs, controlChars(v.Field(i), p, allowLines || multiline(v.Type(), name))...)
		}
		return errs
	}
	return nil
}

func controlIn(path, s string, allowLines bool) []error {
	for i, r := range s {
		if unicode.IsControl(r) && !(allowLines && (r == '\n' || r == '\r' || r == '\t')) || r == unicode.ReplacementChar {
			return []error{fieldErr(path, "control or invalid character %q at byte %d", r, i)}
		}
	}
	return nil
}

// mapPath names a map entry: env.KEY, or env["A\n"] when the key is not
// printable as it is.
func mapPath(path, key string) string {
	if key != "" && validName(key) {
		return join(path, key)
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
