// Package templates holds the embedded haproxy.cfg snippets slotscaler
// prints with "slotscaler render": one backend section per service, with
// server-template slots sized to max_replicas, health checks and timeouts.
package templates

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"text/template"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

//go:embed backend.cfg.tmpl
var backendText string

var backend = template.Must(template.New("backend").Funcs(template.FuncMap{
	// word writes a string as one word of haproxy.cfg and fails the render
	// on anything else, so no value can add a line or a directive even when
	// it never went through config validation.
	"word": func(s string) (string, error) { return s, config.HAProxyWord(s) },
	"ms":   func(d config.Duration) (string, error) { return timer(d.Duration) },
	"fast": func(d config.Duration) (string, error) {
		return timer(config.FastInter(d.Duration).Truncate(time.Millisecond))
	},
	"wakeServer": func() string { return config.WakeServer },
	// A request held by the wake listener waits up to wake.timeout before
	// its answer begins: HAProxy must wait longer than that.
	"serverTimeout": func(s config.Service) string {
		d := 30 * time.Second
		if s.Wake != nil {
			d = max(d, s.Wake.Timeout.Duration+5*time.Second)
		}
		return fmt.Sprintf("%ds", int((d+time.Second-1)/time.Second))
	},
}).Parse(backendText))

// RenderBackends writes a backend section for every service in cfg, or
// nothing when a value cannot be rendered safely.
func RenderBackends(w io.Writer, cfg *config.Config) error {
	var out bytes.Buffer
	if err := backend.Execute(&out, cfg); err != nil {
		return fmt.Errorf("render backends: %w", err)
	}
	_, err := out.WriteTo(w)
	return err
}

// timer writes d in milliseconds, HAProxy's unit, refusing what HAProxy
// would read differently (0ms: no timer) or not at all.
func timer(d time.Duration) (string, error) {
	if d < config.MinCheckInter || d > config.MaxCheckInter || d%time.Millisecond != 0 {
		return "", fmt.Errorf("timer %s outside %s to %s in whole milliseconds", d, config.MinCheckInter, config.MaxCheckInter)
	}
	return fmt.Sprintf("%dms", d.Milliseconds()), nil
}
