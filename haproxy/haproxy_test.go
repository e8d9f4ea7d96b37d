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
backend reports
  mode tcp
  server-template slot 1-2 127.0.0.1:9 check disabled
  server wake 127.0.0.1:9301 backup
backend nowake
  server-template slot 1-2 127.0.0.1:9 check disabled
backend wrongwake
  server-template slot 1-2 127.0.0.1:9 check disabled
  server wake 127.0.0.1:9399
`

func TestParse(t *testing.T) {
	cfg, err := haproxy.Parse(cfgText)
	if err != nil {
		t.Fatal(err)
	}
	slots2 := []haproxy.Template{{Prefix: "slot", From: 1, To: 2, Addr: "127.0.0.1", Port: 9, Check: true, Disabled: true}}
	want := []haproxy.Backend{
		{Name: "nocheck", Balance: "roundrobin", DefaultCheck: true, Mode: "http",
			Templates: []haproxy.Template{{Prefix: "slot", From: 1, To: 5, Addr: "127.0.0.1", Port: 9}}},
		{Name: "nowake", Balance: "leastconn", DefaultCheck: true, Mode: "http", Templates: slots2},
		{Name: "reports", Balance: "leastconn", DefaultCheck: true, Mode: "tcp", Templates: slots2,
			StaticServers: []string{"wake"}, Wake: &haproxy.Server{Name: "wake", Address: "127.0.0.1:9301", Backup: true}},
		{Name: "sticky", Balance: "source", DefaultCheck: true, Mode: "http"},
		{Name: "web", Balance: "leastconn", DefaultCheck: true, Mode: "http", StaticServers: []string{"static1"},
			Templates: []haproxy.Template{{Prefix: "slot", From: 1, To: 3, Addr: "127.0.0.1", Port: 9, Disabled: true}}},
		{Name: "wrongwake", Balance: "leastconn", DefaultCheck: true, Mode: "http", Templates: slots2,
			StaticServers: []string{"wake"}, Wake: &haproxy.Server{Name: "wake", Address: "127.0.0.1:9399"}},
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
	withWake := func(s config.Service) config.Service {
		s.Wake = &config.Wake{Listen: "127.0.0.1:9301"}
		return s
	}
	err = haproxy.Check(cfg, []config.Service{
		svc("web", config.ModeTemplate, 4),
		svc("nocheck", config.ModeTemplate, 2),
		svc("sticky", config.ModeDynamic, 2),
		svc("missing", config.ModeTemplate, 1),
		withWake(svc("reports", config.ModeTemplate, 2)),
		withWake(svc("nowake", config.ModeTemplate, 2)),
		withWake(svc("wrongwake", config.ModeDynamic, 2)),
		svc("wrongwake", config.ModeDynamic, 2),
	})
	want := []string{
		`services[0].max_replicas: 4, but backend "web" declares only 3 "slot" slots`,
		`services[0].slots: server-template slot in backend "web" needs "check": a slot serves only once HAProxy's health check passes`,
		`services[1].slots: server-template slot in backend "nocheck" must be declared "disabled" so free slots take no traffic`,
		`services[1].slots: server-template slot in backend "nocheck" needs "check": a slot serves only once HAProxy's health check passes`,
		`services[2].slots.mode: dynamic servers need a dynamic balance algorithm, backend "sticky" uses "source"`,
		`services[3].backend: backend "missing" not found in haproxy.cfg`,
		`services[5].wake: backend "nowake" lacks the line "server wake 127.0.0.1:9301 backup" (slotscaler render prints it): without it a service at zero answers 503`,
		`services[6].wake.listen: 127.0.0.1:9301, but backend "wrongwake" has "server wake 127.0.0.1:9399"`,
		`services[6].wake: server wake in backend "wrongwake" must be "backup": it is used only when no slot serves`,
		`services[7]: backend "wrongwake" has a server "wake" that is not "backup": it would take traffic beside the slots`,
	}
	if err == nil {
		t.Fatal("Check: want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}
