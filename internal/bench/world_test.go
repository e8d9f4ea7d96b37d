package bench

import (
	"fmt"
	"net"
	"strings"
)

// The tick and RSS figures use 200 services of 20 template slots each:
// 4,000 servers, about 945 KB of "show stat".
const (
	benchServices = 200
	benchSlots    = 20
)

// backendName is service i's backend.
func backendName(i int) string { return fmt.Sprintf("be%03d", i) }

// haproxyBackends is the haproxy.cfg part: one backend per service with
// its template slots free (maint, placeholder address).
func haproxyBackends(services, slots int) string {
	var b strings.Builder
	for i := range services {
		fmt.Fprintf(&b, "backend %s\n  balance roundrobin\n  server-template slot 1-%d 127.0.0.1:9 check disabled\n", backendName(i), slots)
	}
	return b.String()
}

// scalerYAML is slotscaler.yaml for those backends. Every service may go
// down to 0 replicas (so it has a wake block, on a free loopback port) and
// no service has load, so with no container running a tick has nothing to
// do but observe and decide.
func scalerYAML(prefix, runtimeAPI, stateDir, apiListen string, services, slots int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `haproxy: {runtime_api: %s}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 100}]}
state_dir: %s
api: {listen: %s}
interval: 1s
services:
`, runtimeAPI, stateDir, apiListen)
	wakes := freeLoopbacks(services, apiListen)
	for i := range services {
		fmt.Fprintf(&b, "  - {name: %s%03d, backend: %s, slots: {mode: template, prefix: slot}, container: {image: \"slotscaler-bench-none:1\", port: 8080}, min_replicas: 0, max_replicas: %d, target: {sessions_per_replica: 50}, wake: {listen: \"%s\"}}\n",
			prefix, i, backendName(i), slots, wakes[i])
	}
	return b.String()
}

// freeLoopbacks are n distinct loopback addresses no one listens on right
// now, none of them taken: all are held open until all are chosen.
func freeLoopbacks(n int, taken string) []string {
	var addrs []string
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for len(addrs) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(fmt.Sprintf("no free loopback port: %v", err))
		}
		held = append(held, ln)
		if a := ln.Addr().String(); a != taken {
			addrs = append(addrs, a)
		}
	}
	return addrs
}
