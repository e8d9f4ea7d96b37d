package config

import "testing"

// An omitted min_replicas is 1, or 0 for a service with a wake block; one
// written is kept.
func TestDefaultMinReplicas(t *testing.T) {
	for _, tt := range []struct {
		name, keys string
		want       int
	}{
		{"omitted", "", 1},
		{"omitted with wake", "wake: {listen: 127.0.0.1:9301}, ", 0},
		{"written", "min_replicas: 2, ", 2},
		{"written 0 with wake", "min_replicas: 0, wake: {listen: 127.0.0.1:9301}, ", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(`
haproxy: {runtime_api: /run/haproxy.sock}
docker: {hosts: [{name: a, endpoint: unix:///var/run/docker.sock, max_containers: 3}]}
services:
  - {name: web, container: {image: web, port: 80}, ` + tt.keys + `max_replicas: 3, target: {sessions_per_replica: 10}}
`))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Services[0].MinReplicas; got != tt.want {
				t.Errorf("min_replicas = %d, want %d", got, tt.want)
			}
		})
	}
}
