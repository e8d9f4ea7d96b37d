package scaler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// Reload applies a new, validated config to the running loop: services
// keep what the loop remembers (history, drains, holds, rollouts) and take
// the new rules; added services start at the next tick; a removed
// service's containers are left running, untouched, for the operator.
// Changes to HAProxy, Docker hosts or the interval need a restart. The
// config is applied by the tick goroutine at its next pass, as the services
// are its to change.
func (l *Loop) Reload(cfg *config.Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var restart []string
	if !slices.Equal(cfg.HAProxy.RuntimeAPI, l.cfg.HAProxy.RuntimeAPI) {
		restart = append(restart, "haproxy.runtime_api")
	}
	if !slices.EqualFunc(cfg.Docker.Hosts, l.cfg.Docker.Hosts, sameHost) {
		restart = append(restart, "docker.hosts")
	}
	if cfg.Interval != l.cfg.Interval {
		restart = append(restart, "interval")
	}
	if len(restart) > 0 {
		return fmt.Errorf("%s changed: that needs a restart of slotscaler: %w", strings.Join(restart, ", "), ErrConflict)
	}
	if err := wakeReloadable(l.cfg, cfg); err != nil { // wake (issue 13)
		return err
	}
	var fixed []string
	for _, sc := range cfg.Services {
		if s := l.serviceLocked(sc.Name); s != nil {
			// Containers are found by their slot names: another prefix,
			// mode or backend would make every live one a stray.
			if sc.Backend != s.cfg.Backend || sc.Slots.Mode != s.cfg.Slots.Mode || sc.Slots.Prefix != s.cfg.Slots.Prefix {
				fixed = append(fixed, "services."+sc.Name+" backend/slots")
			}
			if s.rollout != nil && s.rollout.active() && sc.Container.Image != s.cfg.Container.Image {
				return fmt.Errorf("service %s: container.image changed while rollout %d runs; reload again when it has ended: %w", sc.Name, s.rollout.ID, ErrConflict)
			}
		}
	}
	if len(fixed) > 0 {
		return fmt.Errorf("%s cannot change while containers run in its slots (drain the service, then restart slotscaler): %w", strings.Join(fixed, ", "), ErrConflict)
	}
	l.pending = cfg
	return nil
}

// applyPending swaps in a reloaded config; called by Tick. True when it
// did.
func (l *Loop) applyPending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg := l.pending
	if cfg == nil {
		return false
	}
	l.pending = nil
	var next []*service
	for _, sc := range cfg.Services {
		s := l.serviceLocked(sc.Name)
		if s == nil {
			next = append(next, newService(sc, l.interval, l.genKey, l.log))
			continue
		}
		// A new value: operations under way keep reading the old one's cfg.
		ns := *s
		if sc.Container.Image != s.cfg.Container.Image {
			ns.image = sc.Container.Image // the YAML's new image wins over an earlier rollout's
		}
		ns.cfg, ns.policy = sc, PolicyFor(sc, l.interval)
		ns.gen.label = "" // the generation depends on cfg
		next = append(next, &ns)
	}
	l.services, l.cfg = next, cfg
	l.log.Info("config reloaded", "services", len(next))
	return true
}

func sameHost(a, b config.Host) bool {
	return a.Name == b.Name && a.Endpoint == b.Endpoint && a.Address == b.Address && a.MaxContainers == b.MaxContainers && a.Preferred() == b.Preferred()
}
