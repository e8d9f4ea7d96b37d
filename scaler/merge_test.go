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
			if got := mergeServer(tt.a, tt.b, true, tt.binding).Admin; got != tt.want {
				t.Errorf("merge of %s and %s (bind under way: %v) = %s, want %s", tt.a.Admin, tt.b.Admin, tt.binding, got, tt.want)
			}
		})
	}
}
