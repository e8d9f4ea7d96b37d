// Package templates holds the embedded haproxy.cfg snippets slotscaler
// prints with "slotscaler render": one backend section per service, with
// server-template slots sized to max_replicas, health checks and timeouts.
package templates

import (
	_ "embed"
	"fmt"
	"io"
	"text/template"

	"github.com/slotscaler/slotscaler/scaler/config"
)

//go:embed backend.cfg.tmpl
var backendText string

var backend = template.Must(template.New("backend").Funcs(template.FuncMap{
	"ms": func(d config.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) },
	"fast": func(d config.Duration) string {
		return fmt.Sprintf("%dms", config.FastInter(d.Duration).Milliseconds())
	},
}).Parse(backendText))

// RenderBackends writes a backend section for every service in cfg.
func RenderBackends(w io.Writer, cfg *config.Config) error {
	if err := backend.Execute(w, cfg); err != nil {
		return fmt.Errorf("render backends: %w", err)
	}
	return nil
}
