// Package sockaddr parses the address of HAProxy's Runtime API as users
// write it (haproxy.runtime_api, lbctl --socket). It stands apart from
// runtimeapi, the client that dials it, so that the config can check the
// address without depending on the client.
package sockaddr

import (
	"fmt"
	"net"
	"strings"
)

// Parse splits a runtime API address into a network and an address.
func Parse(addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		network, address = "unix", strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "tcp://"):
		network, address = "tcp", strings.TrimPrefix(addr, "tcp://")
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("runtime api address %q: %w", addr, err)
		}
	case strings.HasPrefix(addr, "/"):
		network, address = "unix", addr
	default:
		return "", "", fmt.Errorf("runtime api address %q: want unix:///path, /path or tcp://host:port", addr)
	}
	if address == "" {
		return "", "", fmt.Errorf("runtime api address %q: empty path", addr)
	}
	return network, address, nil
}
