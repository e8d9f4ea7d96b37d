package main

import (
	"context"
	"log/slog"

	"github.com/slotscaler/slotscaler/haproxy"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/metrics"
	"github.com/slotscaler/slotscaler/scaler/wake"
)

var _ wake.Observer = (*metrics.Metrics)(nil)

// startWake starts the wake listeners of the services that scale to zero.
// A backend's mode (http or tcp) comes from haproxy.config_file; without
// one, http is assumed.
func startWake(ctx context.Context, cfg *config.Config, loop *scaler.Loop, m *metrics.Metrics, log *slog.Logger) (wait func(), err error) {
	var hc *haproxy.Config
	if f := cfg.HAProxy.ConfigFile; f != "" {
		if hc, err = haproxy.Load(f); err != nil {
			return nil, err
		}
	}
	mode := func(backend string) string {
		if hc != nil {
			if b, ok := hc.Backend(backend); ok && b.Mode == wake.ModeTCP {
				return wake.ModeTCP
			}
		}
		return wake.ModeHTTP
	}
	return wake.Start(ctx, cfg.Services, mode, loop, m, log)
}
