// Package scalertest builds a real scaler.Loop over the in-memory HAProxy
// (runtimeapi.Fake, through scaler/haproxy) and Docker host (fakeengine),
// for the tests of what sits on top of the loop: the API, the metrics,
// lbctl.
package scalertest

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/fakeengine"
	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
)

// Fixture is a loop and its fakes.
type Fixture struct {
	Loop     *scaler.Loop
	LB       *runtimeapi.Fake
	Engine   *fakeengine.Engine
	Config   *config.Config
	StateDir string // where the loop keeps state.json
}

// Options adjust the loop; every field is optional.
type Options struct {
	Observer   scaler.Observer
	Log        *slog.Logger // default: discard
	WrapLB     func(scaler.LB) scaler.LB
	WrapEngine func(scaler.Engine) scaler.Engine
	State      scaler.StateStore // default: state.json in StateDir
	Now        func() time.Time  // the loop's clock (default: time.Now)
}

// New builds a loop for the config in yaml, whose one service "web" has
// backend "web" with template slots slot1..slotN (N = its max_replicas) on
// one host "local" of capacity 8.
func New(t testing.TB, yaml string, o Options) *Fixture {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{LB: runtimeapi.NewFake(), Engine: fakeengine.New("local", 30000), Config: cfg, StateDir: t.TempDir()}
	f.LB.SetChecker(func(_ netip.Addr, port int) bool { return f.Engine.RunningOn(port) })
	f.LB.DeclareBackend("web", "roundrobin")
	f.LB.DeclareTemplate("web", "slot", cfg.Services[0].MaxReplicas, netip.MustParseAddrPort("127.0.0.1:9"))
	var lb scaler.LB = haproxy.New(f.LB)
	var engine scaler.Engine = f.Engine
	if o.WrapLB != nil {
		lb = o.WrapLB(lb)
	}
	if o.WrapEngine != nil {
		engine = o.WrapEngine(engine)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f.Loop, err = scaler.New(scaler.Options{Config: cfg, LB: lb, StateDir: f.StateDir, State: o.State, Observer: o.Observer, Log: o.Log, Now: o.Now,
		Hosts: []scaler.Host{{Name: "local", Addr: netip.MustParseAddr("127.0.0.1"), Capacity: 8, Preferred: true, Engine: engine}}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
