package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/slotscaler/slotscaler/internal/tlsfiles"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
	"github.com/slotscaler/slotscaler/scaler/statedir"
)

// preflighted is what preflight loaded for run.
type preflighted struct {
	secrets  api.Secrets
	warnings []string // not refused, but worth a line: e.g. api.listen in use
}

// preflight checks what run needs beyond a valid config file: token values,
// TLS files, the API and wake listen addresses, a writable state_dir, a
// readable state.json, owner ID and generation key. check and run both call it, so check says ok only when run
// can start; every problem is returned, one line each, with its YAML path.
func preflight(cfg *config.Config) (preflighted, error) {
	var out preflighted
	var errs []error
	secrets, err := api.LoadSecrets(cfg.API) // token values, api.tls
	if err != nil {
		errs = append(errs, err)
	}
	out.secrets = secrets
	for i, h := range cfg.Docker.Hosts {
		if h.TLS != nil {
			if _, err := tlsfiles.Load(fmt.Sprintf("docker.hosts[%d].tls", i), h.TLS.CA, h.TLS.Cert, h.TLS.Key); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		// The client run creates (it connects only when used): it refuses
		// an endpoint the Docker library cannot read.
		e, err := docker.New(h.Name, docker.Options{Endpoint: h.Endpoint, TLS: h.TLS, Pull: cfg.Docker.Pull})
		if err != nil {
			errs = append(errs, fmt.Errorf("docker.hosts[%d]: %w", i, err))
			continue
		}
		e.Close()
	}
	for _, l := range listens(cfg) {
		switch ln, err := listen(l.path, l.addr); {
		case errors.Is(err, syscall.EADDRINUSE):
			// Refusing would fail every check next to a running slotscaler;
			// run itself still refuses it.
			out.warnings = append(out.warnings, fmt.Sprintf("%s: %s is in use now; run needs it free", l.path, l.addr))
		case err != nil:
			errs = append(errs, err)
		default:
			ln.Close()
		}
	}
	if holder, inUse := statedir.InUse(cfg.StateDir); inUse {
		// As with api.listen: next to a running slotscaler, check still passes.
		out.warnings = append(out.warnings, fmt.Sprintf("state_dir: %s is in use now by another slotscaler (%s); run needs it free", cfg.StateDir, holder))
	}
	if err := writableDir(cfg.StateDir); err != nil {
		errs = append(errs, fmt.Errorf("state_dir: %w", err))
	} else {
		for _, err := range append(statedir.CheckValues(cfg.StateDir), restoreState(cfg)) {
			if err != nil {
				errs = append(errs, fmt.Errorf("state_dir: %w", err))
			}
		}
	}
	return out, errors.Join(errs...)
}

// listenAddr is an address run listens on, and the field that sets it.
type listenAddr struct{ path, addr string }

// listens are the addresses run listens on: the HTTP API's and each wake
// listener's.
func listens(cfg *config.Config) []listenAddr {
	out := []listenAddr{{"api.listen", cfg.API.Listen}}
	for i, s := range cfg.Services {
		if s.Wake != nil {
			out = append(out, listenAddr{fmt.Sprintf("services[%d].wake.listen", i), s.Wake.Listen})
		}
	}
	return out
}

// listen opens a listener at addr, set by the field path; preflight probes
// each address with it, and run serves the HTTP API on it.
func listen(path, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ln, nil
}

// writableDir reports whether dir is, or can be created as, a directory
// slotscaler may write to, without creating anything.
func writableDir(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		switch {
		case (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && d != filepath.Dir(d):
			continue // MkdirAll creates it if its parent is a writable directory
		case err != nil:
			return err
		case !info.IsDir():
			return fmt.Errorf("%s is not a directory", d)
		}
		// access(2) also answers EROFS for a read-only file system.
		if err := syscall.Access(d, 0x2|0x1); err != nil { // W_OK|X_OK
			return fmt.Errorf("%s is not writable: %w", d, err)
		}
		return nil
	}
}

// restoreState reads state.json as run's loop does at start (nothing is
// connected or written), so a state file run would refuse fails check.
func restoreState(cfg *config.Config) error {
	if len(cfg.HAProxy.RuntimeAPI) == 0 || len(cfg.Docker.Hosts) == 0 {
		return nil
	}
	lb, err := runtimeapi.New(cfg.HAProxy.RuntimeAPI[0])
	if err != nil {
		return err
	}
	hosts := make([]scaler.Host, 0, len(cfg.Docker.Hosts))
	for _, h := range cfg.Docker.Hosts {
		hosts = append(hosts, scaler.Host{Name: h.Name, Addr: h.IP(), Capacity: h.MaxContainers, Preferred: h.Preferred()})
	}
	_, err = scaler.New(scaler.Options{Config: cfg, LB: haproxy.New(lb), Hosts: hosts, DryRun: true, Log: slog.New(slog.DiscardHandler)})
	return err
}
