package haproxy_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// TestBackend: every state the loop tells apart comes through, converted.
func TestBackend(t *testing.T) {
	ctx := context.Background()
	down := netip.MustParseAddrPort("127.0.0.1:2")
	fake := runtimeapi.NewFake()
	fake.SetChecker(func(_ netip.Addr, port int) bool { return port != int(down.Port()) })
	fake.DeclareBackend("web", "roundrobin")
	fake.DeclareServer("web", "up", netip.MustParseAddrPort("127.0.0.1:1"), true, false)
	fake.DeclareServer("web", "down", down, true, false)
	fake.DeclareServer("web", "nocheck", netip.MustParseAddrPort("127.0.0.1:3"), false, false)
	fake.DeclareServer("web", "drained", netip.MustParseAddrPort("127.0.0.1:4"), true, false)
	fake.DeclareServer("web", "parked", netip.MustParseAddrPort("127.0.0.1:9"), true, true)
	if err := fake.SetState(ctx, "web", "drained", runtimeapi.AdminDrain); err != nil {
		t.Fatal(err)
	}
	if err := fake.SetLoad("web", "up", 7, 2); err != nil {
		t.Fatal(err)
	}
	if err := fake.SetBackendQueue("web", 3); err != nil {
		t.Fatal(err)
	}
	lb := haproxy.New(fake)
	b, err := lb.Backend(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	want := scaler.Backend{Name: "web", Queue: 3, Servers: []scaler.Server{
		{Name: "up", Status: "UP", Health: scaler.HealthUp, CheckStatus: "L4OK", Weight: 1, Addr: lo, Port: 1, Sessions: 7, Queue: 2, Admin: scaler.AdminReady},
		{Name: "down", Status: "DOWN", Health: scaler.HealthDown, CheckStatus: "L4CON", Weight: 1, Addr: lo, Port: 2, Admin: scaler.AdminReady},
		{Name: "nocheck", Status: "no check", Health: scaler.HealthNoCheck, Weight: 1, Addr: lo, Port: 3, Admin: scaler.AdminReady},
		{Name: "drained", Status: "DRAIN", Health: scaler.HealthOther, Weight: 1, Addr: lo, Port: 4, Admin: scaler.AdminDrain},
		{Name: "parked", Status: "MAINT", Health: scaler.HealthOther, Weight: 1, Addr: lo, Port: 9, Admin: scaler.AdminMaint},
	}}
	if diff := cmp.Diff(want, b, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Backend (-want +got):\n%s", diff)
	}

	raw, _ := fake.Info(ctx)
	info, err := lb.Info(ctx)
	// Uptime in whole seconds: a second may begin between the two reads.
	if err != nil || info.PID != raw.PID || info.StartTime != raw.StartTime || info.Uptime < raw.Uptime || info.Uptime > raw.Uptime+1 {
		t.Errorf("Info = %+v, %v; want the fake's PID, start time and uptime %+v", info, err, raw)
	}
}

// TestRefusals: HAProxy's refusals match scaler's sentinels and keep
// runtimeapi's error, message and all.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	fake := runtimeapi.NewFake()
	fake.DeclareBackend("web", "roundrobin")
	fake.DeclareTemplate("web", "slot", 1, netip.MustParseAddrPort("127.0.0.1:9"))
	if err := fake.SetLoad("web", "slot1", 1, 0); err != nil {
		t.Fatal(err)
	}
	lb := haproxy.New(fake)
	for _, tt := range []struct {
		name      string
		call      func() error
		raw       func() error // the same call on the fake itself
		sentinel  error
		runtimeIs error
	}{
		{"no such server", func() error {
			return lb.Apply(ctx, []scaler.Change{scaler.SetState("web", "nope", scaler.AdminDrain)})[0]
		},
			func() error { return fake.SetState(ctx, "web", "nope", runtimeapi.AdminDrain) },
			scaler.ErrNoSuchServer, runtimeapi.ErrNoSuchServer},
		{"already exists", func() error {
			return lb.Apply(ctx, []scaler.Change{scaler.AddServer("web", "slot1", netip.MustParseAddr("127.0.0.1"), 80, scaler.ServerOptions{Check: true})})[0]
		}, func() error {
			return fake.AddServer(ctx, "web", "slot1", netip.MustParseAddr("127.0.0.1"), 80, runtimeapi.ServerOptions{Check: true})
		}, scaler.ErrAlreadyExists, runtimeapi.ErrAlreadyExists},
		{"has connections", func() error { return lb.Apply(ctx, []scaler.Change{scaler.DelServer("web", "slot1")})[0] },
			func() error { return fake.DelServer(ctx, "web", "slot1") },
			scaler.ErrHasConnections, runtimeapi.ErrHasConnections},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err, raw := tt.call(), tt.raw()
			var ce *runtimeapi.CommandError
			if !errors.Is(err, tt.sentinel) || !errors.Is(err, tt.runtimeIs) || !errors.As(err, &ce) {
				t.Errorf("error %v: want it to match %v, %v and a *runtimeapi.CommandError", err, tt.sentinel, tt.runtimeIs)
			}
			if err == nil || raw == nil || err.Error() != raw.Error() {
				t.Errorf("message %q, want runtimeapi's %q", err, raw)
			}
		})
	}

	err := lb.Apply(ctx, []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminState(7))})[0]
	if err == nil || errors.Is(err, scaler.ErrNoSuchServer) {
		t.Errorf("unknown admin state: got %v, want an error of its own", err)
	}
	if b, _ := lb.Backend(ctx, "web"); b.Servers[0].Admin != scaler.AdminMaint {
		t.Errorf("unknown admin state changed the slot: %+v", b.Servers[0])
	}
}

// TestLoads: the named backends' own counters, converted; others left out.
func TestLoads(t *testing.T) {
	fake := runtimeapi.NewFake()
	for _, name := range []string{"web", "api"} {
		fake.DeclareBackend(name, "roundrobin")
		fake.DeclareServer(name, "s1", netip.MustParseAddrPort("127.0.0.1:1"), false, false)
	}
	if err := fake.SetLoad("web", "s1", 4, 0); err != nil {
		t.Fatal(err)
	}
	if err := fake.SetBackendQueue("web", 2); err != nil {
		t.Fatal(err)
	}
	got, err := haproxy.New(fake).Loads(context.Background(), []string{"web", "gone"})
	want := map[string]scaler.BackendLoad{"web": {Sessions: 6, Queue: 2}}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("Loads: %v (-want +got):\n%s", err, diff)
	}
}
