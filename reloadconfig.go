package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// reloadConfig reads the config file again for POST /v1/config/reload and
// refuses (409, naming each field) changes the running process cannot
// take: nothing of the new file is applied then.
func reloadConfig(path string, running *config.Config) (*config.Config, error) {
	next, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", path, err, scaler.ErrInvalid)
	}
	if fields := restartOnly(running, next); len(fields) > 0 {
		return nil, fmt.Errorf("%s: changes to %s need a restart of slotscaler; nothing was reloaded: %w", path, strings.Join(fields, ", "), scaler.ErrConflict)
	}
	return next, nil
}

// restartOnly names the fields that differ between a and b and are read
// only at start.
func restartOnly(a, b *config.Config) []string {
	var out []string
	for _, f := range []struct {
		path string
		a, b any
	}{
		{"haproxy.runtime_api", a.HAProxy.RuntimeAPI, b.HAProxy.RuntimeAPI},
		{"haproxy.config_file", a.HAProxy.ConfigFile, b.HAProxy.ConfigFile},
		{"haproxy.server_state_file", a.HAProxy.ServerStateFile, b.HAProxy.ServerStateFile},
		{"docker.hosts", a.Docker.Hosts, b.Docker.Hosts},
		{"docker.pull", a.Docker.Pull, b.Docker.Pull},
		{"api.listen", a.API.Listen, b.API.Listen},
		{"api.tls (on or off; new files at the same paths are read)", a.API.TLS == nil, b.API.TLS == nil},
		{"api.insecure_listen", a.API.InsecureListen, b.API.InsecureListen},
		{"state_dir", a.StateDir, b.StateDir},
		{"interval", a.Interval, b.Interval},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.path)
		}
	}
	return out
}
