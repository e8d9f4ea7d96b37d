package sockaddr_test

import (
	"testing"

	"github.com/slotscaler/slotscaler/internal/sockaddr"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in, network, address string
		ok                   bool
	}{
		{"unix:///run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock", true},
		{"/run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock", true},
		{"tcp://127.0.0.1:9999", "tcp", "127.0.0.1:9999", true},
		{"tcp://127.0.0.1", "", "", false},
		{"http://x", "", "", false},
		{"unix://", "", "", false},
	} {
		n, a, err := sockaddr.Parse(tt.in)
		if (err == nil) != tt.ok || n != tt.network || a != tt.address {
			t.Errorf("Parse(%q) = %q, %q, %v", tt.in, n, a, err)
		}
	}
}
