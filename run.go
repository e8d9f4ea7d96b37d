package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// runLoop wires the runtime API and the Docker hosts into the control loop and
// runs it until ctx ends.
func runLoop(ctx context.Context, cfg *config.Config, dryRun bool, log *slog.Logger) error {
	if len(cfg.HAProxy.RuntimeAPI) > 1 {
		return fmt.Errorf("haproxy.runtime_api: %d sockets given; syncing several HAProxy instances is not supported yet, give one", len(cfg.HAProxy.RuntimeAPI))
	}
	lb, err := runtimeapi.New(cfg.HAProxy.RuntimeAPI[0])
	if err != nil {
		return err
	}
	var hosts []scaler.Host
	for _, h := range cfg.Docker.Hosts {
		e, err := docker.New(h.Name, docker.Options{Endpoint: h.Endpoint, TLS: h.TLS, Pull: cfg.Docker.Pull})
		if err != nil {
			return err
		}
		defer e.Close()
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := e.Ping(pingCtx); err != nil {
			log.Warn("docker host not answering yet; the loop keeps trying", "host", h.Name, "err", err)
		}
		cancel()
		hosts = append(hosts, scaler.Host{Name: h.Name, Addr: h.IP(), Capacity: h.MaxContainers, Preferred: h.Preferred(), Engine: e})
	}
	loop, err := scaler.New(scaler.Options{Config: cfg, LB: lb, Hosts: hosts, DryRun: dryRun, Log: log})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	log.Info("slotscaler running", "runtime_api", lb.String(), "services", strings.Join(names, ","), "interval", cfg.Interval.Duration, "dry_run", dryRun)
	err = loop.Run(ctx)
	log.Info("slotscaler stopped; containers keep running and are found again at the next start")
	return err
}
