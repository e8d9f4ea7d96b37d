package config

import (
	"fmt"
	"strings"
	"testing"
)

const securityBase = `
haproxy: {runtime_api: unix:///run/haproxy/admin.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 4}]}
api: %s
services:
  - {name: web, container: {image: registry.local/web:1.4.2, port: 8080}, max_replicas: 2, target: {sessions_per_replica: 10}%s}
`

func TestAPIListenNeedsTLSOffLoopback(t *testing.T) {
	for _, c := range []struct{ api, errHas string }{
		{`{listen: "127.0.0.1:9180"}`, ""},
		{`{listen: "[::1]:9180"}`, ""},
		{`{listen: "localhost:9180"}`, ""},
		{`{listen: "0.0.0.0:9180"}`, `api.listen: "0.0.0.0:9180" is reachable from other machines: set api.tls`},
		{`{listen: ":9180"}`, `api.listen: ":9180" is reachable from other machines`},
		{`{listen: "10.0.0.5:9180"}`, `api.listen: "10.0.0.5:9180" is reachable from other machines`},
		{`{listen: "10.0.0.5:9180", tls: {cert: /etc/a.crt, key: /etc/a.key}}`, ""},
		{`{listen: "10.0.0.5:9180", insecure_listen: true}`, ""},
		{`{listen: "127.0.0.1:9180", tls: {cert: /etc/a.crt}}`, "api.tls.key: required with tls"},
		{`{listen: "0.0.0.0:9180", tls: {key: /etc/a.key}}`, "api.tls.cert: required with tls"},
	} {
		_, err := Parse(fmt.Appendf(nil, securityBase, c.api, ""))
		switch {
		case c.errHas == "" && err != nil:
			t.Errorf("api %s: %v", c.api, err)
		case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)):
			t.Errorf("api %s: %v, want an error containing %q", c.api, err, c.errHas)
		}
	}
}

func TestAllowedImages(t *testing.T) {
	cfg, err := Parse(fmt.Appendf(nil, securityBase, "{}", ""))
	if err != nil {
		t.Fatal(err)
	}
	def := cfg.Services[0]
	withList, err := Parse(fmt.Appendf(nil, securityBase, "{}", `, allowed_images: ["registry.local/web:1.*", "mirror.local/web:*"]`))
	if err != nil {
		t.Fatal(err)
	}
	list := withList.Services[0]
	for _, c := range []struct {
		svc   Service
		image string
		want  bool
	}{
		{def, "registry.local/web:1.5", true},
		{def, "registry.local/web@sha256:" + strings.Repeat("0", 64), true},
		{def, "registry.local/web-evil:1", false},
		{def, "registry.local/team/web:1", false},
		{def, "web:1", false},
		{list, "registry.local/web:1.9", true},
		{list, "registry.local/web:2.0", false},
		{list, "mirror.local/web:2.0", true},
	} {
		ref, err := ParseImage(c.image)
		if err != nil {
			t.Fatalf("%s: %v", c.image, err)
		}
		if got := c.svc.AllowsImage(ref); got != c.want {
			t.Errorf("%v allows %s: %v, want %v", c.svc.ImagePatterns(), c.image, got, c.want)
		}
	}
	for _, bad := range []string{"../../../v1.41/containers/zzz", "web:1 ", "Web:1", "", "web:1\n"} {
		if _, err := ParseImage(bad); err == nil {
			t.Errorf("ParseImage(%q) accepted", bad)
		}
	}
	_, err = Parse(fmt.Appendf(nil, securityBase, "{}", `, allowed_images: ["web:[", "", "web :*"]`))
	for _, want := range []string{`services[0].allowed_images[0]: "web:["`, `services[0].allowed_images[1]: ""`, `services[0].allowed_images[2]: "web :*"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad patterns: %v, want %q", err, want)
		}
	}
}
