package haproxy_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slotscaler/slotscaler/haproxy"
	"github.com/slotscaler/slotscaler/scaler/config"
)

const cfgText = `
defaults
  mode http
  balance leastconn
  default-server check inter 1s
backend web
  server-template slot 1-3 127.0.0.1:9 disabled
  server static1 127.0.0.1:8080
backend nocheck
  balance roundrobin
  server-template slot 1-5 127.0.0.1:9
backend sticky
  balance source
`

func TestParse(t *testing.T) {
	cfg, err := haproxy.Parse(cfgText)
	if err != nil {
		t.Fatal(err)
	}
	want := []haproxy.Backend{
		{Name: "nocheck", Balance: "roundrobin", DefaultCheck: true,
			Templates: []haproxy.Template{{Prefix: "slot", From: 1, To: 5, Addr: "127.0.0.1", Port: 9}}},
		{Name: "sticky", Balance: "source", DefaultCheck: true},
		{Name: "web", Balance: "leastconn", DefaultCheck: true, StaticServers: []string{"static1"},
			Templates: []haproxy.Template{{Prefix: "slot", From: 1, To: 3, Addr: "127.0.0.1", Port: 9, Disabled: true}}},
	}
	if diff := cmp.Diff(want, cfg.Backends); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	cfg, err := haproxy.Parse(strings.Replace(cfgText, "default-server check inter 1s", "default-server inter 1s", 1))
	if err != nil {
		t.Fatal(err)
	}
	svc := func(backend, mode string, max int) config.Service {
		return config.Service{Name: backend, Backend: backend, Slots: config.Slots{Mode: mode, Prefix: "slot"}, MaxReplicas: max}
	}
	err = haproxy.Check(cfg, []config.Service{
		svc("web", config.ModeTemplate, 4),
		svc("nocheck", config.ModeTemplate, 2),
		svc("sticky", config.ModeDynamic, 2),
		svc("missing", config.ModeTemplate, 1),
	})
	want := []string{
		`services[0].max_replicas: 4, but backend "web" declares only 3 "slot" slots`,
		`services[0].slots: server-template slot in backend "web" needs "check": a slot serves only once HAProxy's health check passes`,
		`services[1].slots: server-template slot in backend "nocheck" must be declared "disabled" so free slots take no traffic`,
		`services[1].slots: server-template slot in backend "nocheck" needs "check": a slot serves only once HAProxy's health check passes`,
		`services[2].slots.mode: dynamic servers need a dynamic balance algorithm, backend "sticky" uses "source"`,
		`services[3].backend: backend "missing" not found in haproxy.cfg`,
	}
	if err == nil {
		t.Fatal("Check: want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}
