package scaler

import (
	"net/netip"
	"testing"
)

// The admin state two instances' views of one slot merge to.
func TestMergeServerAdmin(t *testing.T) {
	at := func(admin AdminState, addr string) Server {
		return Server{Name: "slot1", Admin: admin, Addr: netip.MustParseAddr(addr), Port: 8080, Weight: 100}
	}
	tests := []struct {
		name    string
		a, b    Server
		binding bool
		want    AdminState
	}{
		{"more restrictive wins", at(AdminReady, "10.0.0.1"), at(AdminDrain, "10.0.0.1"), false, AdminDrain},
		{"maint wins over drain without a bind", at(AdminDrain, "10.0.0.1"), at(AdminMaint, "10.0.0.1"), false, AdminMaint},
		{"maint wins over ready with a bind (a bind cut short)", at(AdminReady, "10.0.0.1"), at(AdminMaint, "10.0.0.1"), true, AdminMaint},
		{"an operator's drain wins over a bind's maint", at(AdminDrain, "10.0.0.1"), at(AdminMaint, "10.0.0.1"), true, AdminDrain},
		{"either order", at(AdminMaint, "10.0.0.1"), at(AdminDrain, "10.0.0.1"), true, AdminDrain},
		{"not at another address", at(AdminDrain, "10.0.0.1"), at(AdminMaint, "10.0.0.2"), true, AdminMaint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeServer(tt.a, tt.b, allFields, tt.binding, netip.AddrPort{}).Admin; got != tt.want {
				t.Errorf("merge of %s and %s (bind under way: %v) = %s, want %s", tt.a.Admin, tt.b.Admin, tt.binding, got, tt.want)
			}
		})
	}
}

// Of two maints at different addresses, the one at the slot's last bound
// address wins, in either order (sim seed 3996).
func TestMergeServerMaintAtLastBound(t *testing.T) {
	placeholder := Server{Name: "slot1", Admin: AdminMaint, Addr: netip.MustParseAddr("127.0.0.1"), Port: 9, Weight: 100}
	theirs := Server{Name: "slot1", Admin: AdminMaint, Addr: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 100}
	bound := netip.MustParseAddrPort("10.0.0.1:8080")
	for _, pair := range [][2]Server{{placeholder, theirs}, {theirs, placeholder}} {
		got := mergeServer(pair[0], pair[1], allFields, false, bound)
		if at := netip.AddrPortFrom(got.Addr, uint16(got.Port)); at != bound || got.Admin != AdminMaint {
			t.Errorf("merge of maint at %s:%d and at %s:%d = %s at %s, want maint at %s", pair[0].Addr, pair[0].Port, pair[1].Addr, pair[1].Port, got.Admin, at, bound)
		}
	}
	if got := mergeServer(placeholder, theirs, allFields, false, netip.AddrPort{}); got.Addr != placeholder.Addr {
		t.Errorf("without a last bound address, the first view's address stays: got %s", got.Addr)
	}
}
