package runtimeapi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// runtimeAPI is what the contract test drives on both Client and Fake.
type runtimeAPI interface {
	Backend(ctx context.Context, name string) (runtimeapi.Backend, error)
	SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error
	SetState(ctx context.Context, backend, server string, state runtimeapi.AdminState) error
	EnableHealth(ctx context.Context, backend, server string) error
	SetWeight(ctx context.Context, backend, server string, percent int) error
	AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts runtimeapi.ServerOptions) error
	DelServer(ctx context.Context, backend, server string) error
}

var (
	_ runtimeAPI = (*runtimeapi.Client)(nil)
	_ runtimeAPI = (*runtimeapi.Fake)(nil)
)

const contractBackend = `
backend web
  balance roundrobin
  default-server inter 100ms rise 1 fall 1
  server-template slot 1-3 127.0.0.1:9 check disabled
  server static1 127.0.0.1:9
`

// listen accepts and closes TCP connections until the test ends, so a TCP
// health check passes.
func listen(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// observation is what must match between HAProxy and the fake.
type observation struct {
	Server string
	Health string
	Admin  string
	Addr   string
	Weight int
}

func observe(ctx context.Context, api runtimeAPI) ([]observation, bool, error) {
	b, err := api.Backend(ctx, "web")
	if err != nil {
		return nil, false, err
	}
	settled := true
	var obs []observation
	for _, s := range b.Servers {
		if s.Transition || strings.HasPrefix(s.CheckStatus, "*") || s.CheckStatus == "INI" {
			settled = false
		}
		obs = append(obs, observation{s.Name, s.Health.String(), s.Admin.String(), netip.AddrPortFrom(s.Addr, uint16(s.Port)).String(), s.Weight})
	}
	return obs, settled, nil
}

// errName names the sentinel an error wraps, so errors compare across
// implementations.
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	for _, s := range []error{runtimeapi.ErrNoSuchBackend, runtimeapi.ErrNoSuchServer, runtimeapi.ErrNotInMaint,
		runtimeapi.ErrHasConnections, runtimeapi.ErrAlreadyExists, runtimeapi.ErrNoHealthCheck, runtimeapi.ErrInvalidName} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other: " + err.Error()
}

// scenario runs the same steps on api and returns every observation and
// error; settle waits for HAProxy's checks to finish between steps.
func scenario(t *testing.T, api runtimeAPI, up, down int, settle bool) []string {
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	var log []string
	look := func(step string) {
		deadline := time.Now().Add(3 * time.Second)
		for {
			obs, settled, err := observe(ctx, api)
			if err != nil {
				t.Fatalf("%s: observe: %v", step, err)
			}
			// Checks run every 100 ms: wait for settled states, then one
			// more interval so a pending transition shows.
			if !settle || (settled && time.Now().After(deadline.Add(-2700*time.Millisecond))) || time.Now().After(deadline) {
				log = append(log, fmt.Sprintf("%s: %+v", step, obs))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	do := func(step string, err error) { log = append(log, step+": "+errName(err)) }

	look("initial")
	do("bind slot1", api.SetAddr(ctx, "web", "slot1", lo, up))
	do("weight 0 slot1", api.SetWeight(ctx, "web", "slot1", 0))
	do("ready slot1", api.SetState(ctx, "web", "slot1", runtimeapi.AdminReady))
	look("slot1 ready at weight 0")
	do("weight 100% slot1", api.SetWeight(ctx, "web", "slot1", 100))
	do("weight 101% slot1", api.SetWeight(ctx, "web", "slot1", 101))
	look("slot1 ready")
	do("bind slot2", api.SetAddr(ctx, "web", "slot2", lo, down))
	do("ready slot2", api.SetState(ctx, "web", "slot2", runtimeapi.AdminReady))
	look("slot2 ready on a closed port")
	do("drain slot1", api.SetState(ctx, "web", "slot1", runtimeapi.AdminDrain))
	do("drain slot2", api.SetState(ctx, "web", "slot2", runtimeapi.AdminDrain))
	look("both drained")
	do("maint slot1", api.SetState(ctx, "web", "slot1", runtimeapi.AdminMaint))
	look("slot1 maint")
	do("unknown server", api.SetState(ctx, "web", "nope", runtimeapi.AdminReady))
	do("unknown backend", api.SetState(ctx, "nope", "slot1", runtimeapi.AdminReady))
	_, err := api.Backend(ctx, "nope")
	do("read unknown backend", err)
	do("bad name", api.SetState(ctx, "web", "slot1;shutdown", runtimeapi.AdminReady))
	do("health without check", api.EnableHealth(ctx, "web", "static1"))
	do("delete drained slot", api.DelServer(ctx, "web", "slot2"))
	do("add dyn1", api.AddServer(ctx, "web", "dyn1", lo, up, runtimeapi.ServerOptions{Check: true, Inter: "100ms", Rise: 1, Fall: 1}))
	do("add dyn1 again", api.AddServer(ctx, "web", "dyn1", lo, up, runtimeapi.ServerOptions{}))
	look("dyn1 added")
	do("enable health dyn1", api.EnableHealth(ctx, "web", "dyn1"))
	do("ready dyn1", api.SetState(ctx, "web", "dyn1", runtimeapi.AdminReady))
	look("dyn1 ready")
	do("delete ready dyn1", api.DelServer(ctx, "web", "dyn1"))
	do("maint dyn1", api.SetState(ctx, "web", "dyn1", runtimeapi.AdminMaint))
	do("delete dyn1", api.DelServer(ctx, "web", "dyn1"))
	do("maint slot2", api.SetState(ctx, "web", "slot2", runtimeapi.AdminMaint))
	do("delete template slot3", api.DelServer(ctx, "web", "slot3"))
	look("end")
	return log
}

func TestContractFakeMatchesHAProxy(t *testing.T) {
	up, down := listen(t), haproxytest.FreePort(t)
	h := haproxytest.Start(t, contractBackend)
	client, err := runtimeapi.New("unix://" + h.Socket)
	if err != nil {
		t.Fatal(err)
	}
	real := scenario(t, client, up, down, true)
	t.Log(strings.Join(real, "\n"))

	faked := scenario(t, contractFake(up), up, down, false)

	if diff := cmp.Diff(real, faked); diff != "" {
		t.Errorf("fake differs from haproxy (-haproxy +fake):\n%s", diff)
	}
}

// contractFake is contractBackend in the fake, where only port up passes
// health checks.
func contractFake(up int) *runtimeapi.Fake {
	fake := runtimeapi.NewFake()
	fake.DeclareBackend("web", "roundrobin")
	fake.DeclareTemplate("web", "slot", 3, netip.MustParseAddrPort("127.0.0.1:9"))
	fake.DeclareServer("web", "static1", netip.MustParseAddrPort("127.0.0.1:9"), false, false)
	fake.SetChecker(func(_ netip.Addr, port int) bool { return port == up })
	return fake
}

// A template slot made ready again for another address shows its last
// check until HAProxy checks the new address (within one inter): with fall
// 1 as a plain pass (UP, L4OK), with fall 2 as a transition (UP 1/2). So
// config refuses fall 1 with template slots: slotscaler waits for a pass
// without a transition, and with fall 1 it would have weighted an
// unchecked container.
func TestReusedTemplateSlotShowsItsLastCheck(t *testing.T) {
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	up, down := listen(t), haproxytest.FreePort(t)
	for _, fall := range []int{1, 2} {
		h := haproxytest.Start(t, fmt.Sprintf(`
backend web
  balance roundrobin
  default-server inter 2s fastinter 2s downinter 2s rise 1 fall %d
  server-template slot 1-1 127.0.0.1:9 check disabled
`, fall))
		c, err := runtimeapi.New("unix://" + h.Socket)
		if err != nil {
			t.Fatal(err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		slot := func() runtimeapi.Server {
			t.Helper()
			b, err := c.Backend(ctx, "web")
			must(err)
			return b.Servers[0]
		}
		must(c.SetAddr(ctx, "web", "slot1", lo, up))
		must(c.EnableHealth(ctx, "web", "slot1"))
		must(c.SetState(ctx, "web", "slot1", runtimeapi.AdminReady))
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(slot().CheckStatus, "OK"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("fall %d: no passed check of the first address: %+v", fall, slot())
			}
		}
		// Another container, on a closed port, in the same slot.
		must(c.SetState(ctx, "web", "slot1", runtimeapi.AdminMaint))
		must(c.SetAddr(ctx, "web", "slot1", lo, down))
		must(c.SetState(ctx, "web", "slot1", runtimeapi.AdminReady))
		s := slot()
		t.Logf("fall %d, right after ready at a closed port: status %q, check %q, transition %v", fall, s.Status, s.CheckStatus, s.Transition)
		looksPassed := s.Health == runtimeapi.HealthUp && strings.Contains(s.CheckStatus, "OK") && !s.Transition
		if looksPassed != (fall == 1) {
			t.Errorf("fall %d: looks passed %v (status %q, check %q); want it only with fall 1", fall, looksPassed, s.Status, s.CheckStatus)
		}
	}
}
