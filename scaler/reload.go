package scaler

import (
	"fmt"
	"slices"

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
	if !slices.Equal(cfg.HAProxy.RuntimeAPI, l.cfg.HAProxy.RuntimeAPI) || !slices.EqualFunc(cfg.Docker.Hosts, l.cfg.Docker.Hosts, sameHost) || cfg.Interval != l.cfg.Interval {
		return fmt.Errorf("haproxy, docker hosts and interval changes need a restart of slotscaler: %w", ErrConflict)
	}
	l.pending = cfg
	return nil
}

// applyPending swaps in a reloaded config; called by Tick.
func (l *Loop) applyPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg := l.pending
	if cfg == nil {
		return
	}
	l.pending = nil
	var next []*service
	for _, sc := range cfg.Services {
		s := l.serviceLocked(sc.Name)
		if s == nil {
			s = newService(sc, l.interval, l.genKey)
		} else {
			if s.image == s.cfg.Container.Image {
				s.image = sc.Container.Image
			}
			s.cfg, s.policy = sc, PolicyFor(sc, l.interval)
		}
		next = append(next, s)
	}
	l.services, l.cfg = next, cfg
	l.log.Info("config reloaded", "services", len(next))
}

func sameHost(a, b config.Host) bool {
	return a.Name == b.Name && a.Endpoint == b.Endpoint && a.Address == b.Address && a.MaxContainers == b.MaxContainers && a.Preferred() == b.Preferred()
}
