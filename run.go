package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
	"github.com/slotscaler/slotscaler/scaler/metrics"
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

// runLoop wires the runtime API, the Docker hosts, the metrics and the HTTP
// API into the control loop and runs it until ctx ends. With a plan writer
// it is a dry run: each tick's plan is written there, nothing applied.
func runLoop(ctx context.Context, path string, cfg *config.Config, plan io.Writer, log *slog.Logger) error {
	dryRun := plan != nil
	pre, err := preflight(cfg)
	if err != nil {
		return err
	}
	secrets := pre.secrets
	state, err := openStateDir(cfg.StateDir, dryRun)
	if err != nil {
		return err
	}
	defer state.Close()
	m := metrics.New()
	var current atomic.Pointer[config.Config] // what a reload installed
	current.Store(cfg)
	lb, mirror, stateFile, err := runtimeAPI(cfg, m, &current, log)
	if err != nil {
		return err
	}
	var observer scaler.Observer = m
	if stateFile != nil {
		observer = stateFile.AtTickEnd(m)
	}
	var hosts []scaler.Host
	for _, h := range cfg.Docker.Hosts {
		e, err := docker.New(h.Name, docker.Options{Endpoint: h.Endpoint, TLS: h.TLS, Pull: cfg.Docker.Pull, Owner: state.owner})
		if err != nil {
			return err
		}
		defer e.Close()
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := e.Ping(pingCtx); err != nil {
			log.Warn("docker host not answering yet; the loop keeps trying", "host", h.Name, "err", err)
		}
		cancel()
		hosts = append(hosts, scaler.Host{Name: h.Name, Addr: h.IP(), Capacity: h.MaxContainers, Preferred: h.Preferred(), Engine: m.Engine(e, h.Name)})
	}
	loop, err := scaler.New(scaler.Options{Config: cfg, LB: lb, Mirror: mirror, Hosts: hosts, DryRun: dryRun, PlanOut: plan, Observer: observer, Log: log, GenerationKey: state.generationKey,
		State: m.StateStore(scaler.FileStore(cfg.StateDir))})
	if err != nil {
		return err
	}
	var server *api.Server
	reload := func() error {
		next, err := reloadConfig(path, current.Load())
		if err != nil {
			return err
		}
		secrets, err := api.LoadSecrets(next.API)
		if err != nil {
			return fmt.Errorf("%s: %v: %w", path, err, scaler.ErrInvalid)
		}
		if err := loop.Reload(next); err != nil {
			return err
		}
		current.Store(next)
		server.Apply(next, secrets)
		return nil
	}
	server = api.New(loop, cfg, secrets, m.Handler(), reload, log)
	ln, err := listen("api.listen", cfg.API.Listen)
	if err != nil {
		return err
	}
	srv := server.Serve(ln, api.DefaultLimits)
	defer func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("http api listening", "addr", ln.Addr().String(), "tokens", len(secrets.Tokens), "tls", secrets.Cert != nil)
	names := make([]string, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	waitWake, err := startWake(ctx, cfg, loop, m, log) // wake (issue 13): listeners of services that scale to zero
	if err != nil {
		return err
	}
	defer waitWake()
	log.Info("slotscaler running", "runtime_api", strings.Join(cfg.HAProxy.RuntimeAPI, ","), "services", strings.Join(names, ","), "interval", cfg.Interval.Duration, "dry_run", dryRun)
	err = loop.Run(ctx)
	if stateFile != nil {
		// Changes since the last tick's end (operations finished since):
		// an operator's reload while slotscaler is stopped restores them.
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		stateFile.Flush(flush)
		cancel()
	}
	log.Info("slotscaler stopped; containers keep running and are found again at the next start")
	return err
}

// runtimeAPI connects to the HAProxy instances of haproxy.runtime_api,
// each counted in the metrics; several are kept in step by a Mirror (no
// primary), returned too. The server state file follows the first; it is
// returned too (nil without one), for the loop to write at each tick's end.
func runtimeAPI(cfg *config.Config, m *metrics.Metrics, current *atomic.Pointer[config.Config], log *slog.Logger) (scaler.LB, *scaler.Mirror, *scaler.ServerStateFile, error) {
	var (
		lbs       []scaler.LB
		stateFile *scaler.ServerStateFile
	)
	for i, addr := range cfg.HAProxy.RuntimeAPI {
		client, err := runtimeapi.New(addr)
		if err != nil {
			return nil, nil, nil, err
		}
		lb := m.LB(haproxy.New(client), client.String())
		if path := cfg.HAProxy.ServerStateFile; path != "" && i == 0 {
			stateFile = scaler.WithServerStateFile(lb, client.DumpServersState, path, log)
			lb = stateFile
		}
		lbs = append(lbs, lb)
	}
	if len(lbs) == 1 {
		return lbs[0], nil, stateFile, nil
	}
	opts := func(backend string) (scaler.ServerOptions, bool) {
		for _, s := range current.Load().Services {
			if s.Backend == backend {
				return scaler.DynamicServerOptions(s), s.Slots.Mode == config.ModeDynamic
			}
		}
		return scaler.ServerOptions{}, false
	}
	mirror := scaler.NewMirror(lbs, cfg.HAProxy.RuntimeAPI, opts, scaler.WallClock{}, log)
	return mirror, mirror, stateFile, nil
}
