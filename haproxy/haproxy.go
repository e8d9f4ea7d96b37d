package haproxy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	parser "github.com/haproxytech/client-native/v5/config-parser"
	parsererrors "github.com/haproxytech/client-native/v5/config-parser/errors"
	"github.com/haproxytech/client-native/v5/config-parser/options"
	"github.com/haproxytech/client-native/v5/config-parser/params"
	"github.com/haproxytech/client-native/v5/config-parser/types"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// Config is what slotscaler needs to know of haproxy.cfg.
type Config struct {
	Backends []Backend
}

// Backend is one backend section.
type Backend struct {
	Name          string
	Balance       string // algorithm, inherited from defaults when not set
	DefaultCheck  bool   // default-server (backend or defaults) says "check"
	Templates     []Template
	StaticServers []string
	Mode          string  // http or tcp, inherited from defaults when not set (HAProxy's default: tcp)
	Wake          *Server // the "server wake ..." line, if any
}

// Server is one server line.
type Server struct {
	Name    string
	Address string // as written: ip:port
	Backup  bool
}

// Template is one server-template line: servers Prefix+From … Prefix+To.
type Template struct {
	Prefix   string
	From, To int
	Addr     string
	Port     int64
	Check    bool
	Disabled bool
}

// Count is how many servers the template declares.
func (t Template) Count() int { return t.To - t.From + 1 }

// Backend returns the named backend.
func (c *Config) Backend(name string) (Backend, bool) {
	for _, b := range c.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// Load parses a haproxy.cfg file.
func Load(path string) (*Config, error) {
	p, err := parser.New(options.Path(path))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return fromParser(p)
}

// Parse parses haproxy.cfg text.
func Parse(text string) (*Config, error) {
	p, err := parser.New(options.String(text))
	if err != nil {
		return nil, fmt.Errorf("parse haproxy config: %w", err)
	}
	return fromParser(p)
}

func fromParser(p parser.Parser) (*Config, error) {
	defBalance, defCheck, defMode := "", false, ""
	if names, err := p.SectionsGet(parser.Defaults); err == nil && len(names) > 0 {
		// Several defaults sections come back unordered; slotscaler's
		// checks assume one (the usual case) and take the first name.
		slices.Sort(names)
		d := names[0]
		defBalance = balance(p, parser.Defaults, d)
		defCheck = defaultServerCheck(p, parser.Defaults, d)
		defMode = mode(p, parser.Defaults, d)
	}
	names, err := p.SectionsGet(parser.Backends)
	if err != nil && !errors.Is(err, parsererrors.ErrSectionMissing) {
		return nil, fmt.Errorf("list backends: %w", err)
	}
	slices.Sort(names) // the parser keeps sections in a map
	cfg := &Config{}
	for _, name := range names {
		b := Backend{Name: name, Balance: balance(p, parser.Backends, name), DefaultCheck: defaultServerCheck(p, parser.Backends, name)}
		if b.Balance == "" {
			b.Balance = defBalance
		}
		if b.Balance == "" {
			b.Balance = "roundrobin"
		}
		b.DefaultCheck = b.DefaultCheck || defCheck
		b.Mode = cmp.Or(mode(p, parser.Backends, name), defMode, "tcp")
		if data, err := p.Get(parser.Backends, name, "server-template"); err == nil {
			for _, st := range data.([]types.ServerTemplate) {
				t, err := template(st)
				if err != nil {
					return nil, fmt.Errorf("backend %s: %w", name, err)
				}
				b.Templates = append(b.Templates, t)
			}
		}
		if data, err := p.Get(parser.Backends, name, "server"); err == nil {
			for _, s := range data.([]types.Server) {
				b.StaticServers = append(b.StaticServers, s.Name)
				if s.Name == config.WakeServer {
					b.Wake = &Server{Name: s.Name, Address: s.Address, Backup: hasWord(s.Params, "backup")}
				}
			}
		}
		cfg.Backends = append(cfg.Backends, b)
	}
	return cfg, nil
}

func balance(p parser.Parser, section parser.Section, name string) string {
	return keyword(p, section, name, "balance", func(b *types.Balance) string { return b.Algorithm })
}

func mode(p parser.Parser, section parser.Section, name string) string {
	return keyword(p, section, name, "mode", func(m *types.StringC) string { return m.Value })
}

// keyword reads a one-line keyword of a section as text; "" when absent.
func keyword[T any](p parser.Parser, section parser.Section, name, key string, text func(T) string) string {
	data, err := p.Get(section, name, key)
	if err != nil {
		return ""
	}
	if v, ok := data.(T); ok {
		return text(v)
	}
	return ""
}

func defaultServerCheck(p parser.Parser, section parser.Section, name string) bool {
	data, err := p.Get(section, name, "default-server")
	if err != nil {
		return false
	}
	for _, ds := range data.([]types.DefaultServer) {
		if hasWord(ds.Params, "check") {
			return true
		}
	}
	return false
}

func hasWord(opts []params.ServerOption, word string) bool {
	for _, o := range opts {
		if w, ok := o.(*params.ServerOptionWord); ok && w.Name == word {
			return true
		}
	}
	return false
}

func template(st types.ServerTemplate) (Template, error) {
	t := Template{Prefix: st.Prefix, Addr: st.Fqdn, Port: st.Port, Check: hasWord(st.Params, "check"), Disabled: hasWord(st.Params, "disabled")}
	from, to, isRange := strings.Cut(st.NumOrRange, "-")
	var err1, err2 error
	if isRange {
		t.From, err1 = strconv.Atoi(from)
		t.To, err2 = strconv.Atoi(to)
	} else {
		t.From = 1
		t.To, err1 = strconv.Atoi(from)
	}
	if err1 != nil || err2 != nil || t.From < 1 || t.To < t.From {
		return Template{}, fmt.Errorf("server-template %s: bad range %q", st.Prefix, st.NumOrRange)
	}
	return t, nil
}

// Check reports every mismatch between the services and haproxy.cfg.
func Check(cfg *Config, services []config.Service) error {
	var errs []error
	for i, s := range services {
		p := fmt.Sprintf("services[%d]", i)
		b, ok := cfg.Backend(s.Backend)
		if !ok {
			errs = append(errs, fmt.Errorf("%s.backend: backend %q not found in haproxy.cfg", p, s.Backend))
			continue
		}
		errs = append(errs, checkWake(p, s, b)...)
		if s.Slots.Mode == config.ModeDynamic {
			if b.Balance == "source" || b.Balance == "static-rr" {
				errs = append(errs, fmt.Errorf("%s.slots.mode: dynamic servers need a dynamic balance algorithm, backend %q uses %q", p, s.Backend, b.Balance))
			}
			continue
		}
		var t *Template
		for j := range b.Templates {
			if b.Templates[j].Prefix == s.Slots.Prefix {
				t = &b.Templates[j]
			}
		}
		if t == nil {
			errs = append(errs, fmt.Errorf("%s.slots.prefix: backend %q has no server-template %q (slotscaler render prints one)", p, s.Backend, s.Slots.Prefix))
			continue
		}
		if t.Count() < s.MaxReplicas {
			errs = append(errs, fmt.Errorf("%s.max_replicas: %d, but backend %q declares only %d %q slots", p, s.MaxReplicas, s.Backend, t.Count(), s.Slots.Prefix))
		}
		if !t.Disabled {
			errs = append(errs, fmt.Errorf("%s.slots: server-template %s in backend %q must be declared \"disabled\" so free slots take no traffic", p, s.Slots.Prefix, s.Backend))
		}
		if !t.Check && !b.DefaultCheck {
			errs = append(errs, fmt.Errorf("%s.slots: server-template %s in backend %q needs \"check\": a slot serves only once HAProxy's health check passes", p, s.Slots.Prefix, s.Backend))
		}
	}
	return errors.Join(errs...)
}

// checkWake requires the backup server line of a service with wake, and
// refuses one that would take traffic from the slots.
func checkWake(p string, s config.Service, b Backend) []error {
	want := fmt.Sprintf("server %s %s backup", config.WakeServer, "<wake.listen>")
	switch {
	case s.Wake == nil && b.Wake != nil && !b.Wake.Backup:
		return []error{fmt.Errorf("%s: backend %q has a server %q that is not \"backup\": it would take traffic beside the slots", p, s.Backend, config.WakeServer)}
	case s.Wake == nil:
		return nil
	case b.Wake == nil:
		return []error{fmt.Errorf("%s.wake: backend %q lacks the line %q (slotscaler render prints it): without it a service at zero answers 503", p, s.Backend, strings.Replace(want, "<wake.listen>", s.Wake.Listen, 1))}
	}
	var errs []error
	if a, err := netip.ParseAddrPort(b.Wake.Address); err != nil || a != s.Wake.ListenAddr() {
		errs = append(errs, fmt.Errorf("%s.wake.listen: %s, but backend %q has \"server %s %s\"", p, s.Wake.Listen, s.Backend, config.WakeServer, b.Wake.Address))
	}
	if !b.Wake.Backup {
		errs = append(errs, fmt.Errorf("%s.wake: server %s in backend %q must be \"backup\": it is used only when no slot serves", p, config.WakeServer, s.Backend))
	}
	return errs
}
