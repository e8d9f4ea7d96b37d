package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// Membership churn: 64 keep-alive clients through a real haproxy while the
// backend goes from 2 to 6 servers and back, churnRounds times.
const (
	churnClients = 64
	churnRounds  = 10
	churnLow     = 2
	churnHigh    = 6
	// churnQuiet is how long a removed server must see no request before a
	// scale-down counts as done.
	churnQuiet = 500 * time.Millisecond
	// churnCheck is the servers' health check: the same for every method.
	churnCheck = "check inter 100ms fastinter 100ms downinter 100ms rise 1 fall 2"
)

// churnMethod applies a membership change to haproxy: the servers of
// want (indexes into the backends) take traffic, the others none. It
// returns once the change is made as the method makes it.
type churnMethod struct {
	name  string
	setup func(b *testing.B, w *churnWorld) // initial haproxy with the first churnLow servers
	apply func(b *testing.B, w *churnWorld, want int)
}

// churnWorld is one method's haproxy, backends and frontend URL.
type churnWorld struct {
	h        *haproxytest.HAProxy
	backends []*churnBackend
	front    int
	lb       *runtimeapi.Client
}

// churnBackend is a small HTTP server in the test process that notes when
// requests arrive.
type churnBackend struct {
	name  string
	port  int
	first atomic.Int64 // unix ns of the first request since the last reset
	last  atomic.Int64 // unix ns of the latest request
}

func startBackends(b *testing.B, n int) []*churnBackend {
	var out []*churnBackend
	for i := range n {
		be := &churnBackend{name: fmt.Sprintf("s%d", i+1)}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		be.port = l.Addr().(*net.TCPAddr).Port
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			now := time.Now().UnixNano()
			be.first.CompareAndSwap(0, now)
			be.last.Store(now)
			time.Sleep(time.Millisecond) // a request takes a moment: some are in flight at every change
			fmt.Fprintln(w, be.name)
		})}
		go func() { _ = srv.Serve(l) }()
		b.Cleanup(func() { _ = srv.Close() })
		out = append(out, be)
	}
	return out
}

func (w *churnWorld) frontend() string {
	return fmt.Sprintf("frontend fe\n  bind 127.0.0.1:%d\n  default_backend churn\n\n", w.front)
}

// staticBackend is the churn backend with n server lines, as an operator
// who rewrites haproxy.cfg has it.
func (w *churnWorld) staticBackend(n int) string {
	var s strings.Builder
	s.WriteString("backend churn\n  balance roundrobin\n")
	for _, be := range w.backends[:n] {
		fmt.Fprintf(&s, "  server %s 127.0.0.1:%d %s\n", be.name, be.port, churnCheck)
	}
	return s.String()
}

// rewrite replaces the churn backend of the running config file.
func (w *churnWorld) rewrite(b *testing.B, n int) {
	cfg, err := os.ReadFile(w.h.Config)
	if err != nil {
		b.Fatal(err)
	}
	head, _, ok := strings.Cut(string(cfg), "\nbackend churn\n")
	if !ok {
		b.Fatal("haproxy.cfg has no churn backend")
	}
	if err := os.WriteFile(w.h.Config, []byte(head+"\n"+w.staticBackend(n)), 0o644); err != nil {
		b.Fatal(err)
	}
}

func reloadMethod(name string, reload func(*haproxytest.HAProxy, testing.TB)) churnMethod {
	return churnMethod{
		name: name,
		setup: func(b *testing.B, w *churnWorld) {
			w.h = haproxytest.Start(b, w.frontend()+w.staticBackend(churnLow))
		},
		apply: func(b *testing.B, w *churnWorld, want int) {
			w.rewrite(b, want)
			reload(w.h, b)
		},
	}
}

// slotName is the template slot a backend server is bound to.
func slotName(i int) string { return fmt.Sprintf("slot%d", i+1) }

// runtimeMethod changes membership with the Runtime API commands the
// control loop sends, batched on one connection per step: bind at weight
// 0 and wait for a passed check before giving weight; drain, wait for no
// session and queue, then maint. The loop's decision interval is not in
// it (BenchmarkReactionTime in e2e times that).
func runtimeMethod() churnMethod {
	return churnMethod{
		name: "slotscaler (Runtime API: bind/ready, drain -> maint)",
		setup: func(b *testing.B, w *churnWorld) {
			w.h = haproxytest.Start(b, w.frontend()+fmt.Sprintf("backend churn\n  balance roundrobin\n  server-template slot 1-%d 127.0.0.1:9 %s disabled\n", churnHigh, churnCheck))
			var err error
			if w.lb, err = runtimeapi.New(w.h.Socket); err != nil {
				b.Fatal(err)
			}
			bindSlots(b, w, 0, churnLow)
		},
		apply: func(b *testing.B, w *churnWorld, want int) {
			b.Helper()
			current := w.serving(b)
			switch {
			case want > current:
				bindSlots(b, w, current, want)
			case want < current:
				drainSlots(b, w, want, current)
			}
		},
	}
}

// batch runs commands on one connection and fails on any refusal.
func (w *churnWorld) batch(b *testing.B, cmds []runtimeapi.Command) {
	b.Helper()
	results, err := w.lb.Batch(context.Background(), cmds)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

// serving counts the slots in ready state.
func (w *churnWorld) serving(b *testing.B) int {
	be, err := w.lb.Backend(context.Background(), "churn")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, s := range be.Servers {
		if s.Admin == runtimeapi.AdminReady {
			n++
		}
	}
	return n
}

// waitSlots polls the churn backend until done holds for every slot in
// [from, to), then runs then on those slots in one batch.
func (w *churnWorld) waitSlots(b *testing.B, from, to int, done func(runtimeapi.Server) bool, then func(slot string) runtimeapi.Command) {
	b.Helper()
	pending := map[string]bool{}
	for i := from; i < to; i++ {
		pending[slotName(i)] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(pending) > 0 {
		be, err := w.lb.Backend(context.Background(), "churn")
		if err != nil {
			b.Fatal(err)
		}
		var cmds []runtimeapi.Command
		for _, s := range be.Servers {
			if pending[s.Name] && done(s) {
				delete(pending, s.Name)
				cmds = append(cmds, then(s.Name))
			}
		}
		if len(cmds) > 0 {
			w.batch(b, cmds)
		}
		if len(pending) > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("slots %v did not settle within 10s: %+v", pending, be.Servers)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func bindSlots(b *testing.B, w *churnWorld, from, to int) {
	b.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	var cmds []runtimeapi.Command
	for i := from; i < to; i++ {
		slot := slotName(i)
		cmds = append(cmds,
			runtimeapi.SetAddrCommand("churn", slot, lo, w.backends[i].port),
			runtimeapi.SetWeightCommand("churn", slot, 0),
			runtimeapi.EnableHealthCommand("churn", slot),
			runtimeapi.SetStateCommand("churn", slot, runtimeapi.AdminReady))
	}
	w.batch(b, cmds)
	passed := func(s runtimeapi.Server) bool {
		return s.Health == runtimeapi.HealthUp && !s.Transition && strings.Contains(s.CheckStatus, "OK")
	}
	w.waitSlots(b, from, to, passed, func(slot string) runtimeapi.Command { return runtimeapi.SetWeightCommand("churn", slot, 100) })
}

func drainSlots(b *testing.B, w *churnWorld, from, to int) {
	b.Helper()
	var cmds []runtimeapi.Command
	for i := from; i < to; i++ {
		cmds = append(cmds, runtimeapi.SetStateCommand("churn", slotName(i), runtimeapi.AdminDrain))
	}
	w.batch(b, cmds)
	idle := func(s runtimeapi.Server) bool { return s.Sessions == 0 && s.Queue == 0 }
	w.waitSlots(b, from, to, idle, func(slot string) runtimeapi.Command {
		return runtimeapi.SetStateCommand("churn", slot, runtimeapi.AdminMaint)
	})
}

// churnRow is one method's line of the table.
type churnRow struct {
	method     string
	requests   int
	failed     [2]int          // GET, POST
	up, down   []time.Duration // per change: until traffic follows the new membership
	applyTimes []time.Duration // per change: until the method's own step returned
}

// BenchmarkMembershipChurn prints one table: for each way of changing
// membership, the requests failed under churnClients keep-alive clients
// and how long each change took to take effect. A scale-up takes effect
// when every added server has answered a request; a scale-down when the
// removed servers have seen no request for churnQuiet (the time is that
// of their last request, or of the step's return if later).
func BenchmarkMembershipChurn(b *testing.B) {
	methods := []churnMethod{
		reloadMethod("rewrite haproxy.cfg + reload -sf", (*haproxytest.HAProxy).ReloadClassic),
		reloadMethod("rewrite haproxy.cfg + seamless reload -x -sf", (*haproxytest.HAProxy).Reload),
		runtimeMethod(),
	}
	for range b.N {
		var rows []churnRow
		for _, m := range methods {
			rows = append(rows, churn(b, m))
		}
		fmt.Println(churnTable(rows))
		// Runtime API changes close no connection: any failure is a regression.
		if r := rows[len(rows)-1]; r.failed != [2]int{} {
			b.Errorf("%s: %d GET and %d POST requests failed, want none", r.method, r.failed[0], r.failed[1])
		}
	}
}

func churn(b *testing.B, m churnMethod) churnRow {
	w := &churnWorld{backends: startBackends(b, churnHigh), front: haproxytest.FreePort(b)}
	m.setup(b, w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/", w.front)
	loads := []*loadgen.Run{loadgen.StartMethod(ctx, url, churnClients/2, http.MethodGet), loadgen.StartMethod(ctx, url, churnClients/2, http.MethodPost)}
	time.Sleep(time.Second) // every client connected and warm
	row := churnRow{method: m.name}
	for range churnRounds {
		for _, want := range []int{churnHigh, churnLow} {
			before := len(servingNow(w, want))
			for _, be := range w.backends {
				be.first.Store(0)
			}
			t0 := time.Now()
			m.apply(b, w, want)
			applied := time.Since(t0)
			row.applyTimes = append(row.applyTimes, applied)
			if want > before {
				row.up = append(row.up, waitFirst(b, w.backends[before:want], t0))
			} else {
				row.down = append(row.down, max(applied, waitQuiet(w.backends[want:], t0)))
			}
		}
	}
	for i, load := range loads {
		res := load.Stop()
		row.requests += res.OK + res.Failed
		row.failed[i] = res.Failed
		for _, e := range res.Errors {
			b.Logf("%s, %s: %s", m.name, []string{"GET", "POST"}[i], e)
		}
	}
	return row
}

// servingNow is the backends serving before a change to want: the other
// end of the churn.
func servingNow(w *churnWorld, want int) []*churnBackend {
	if want == churnHigh {
		return w.backends[:churnLow]
	}
	return w.backends[:churnHigh]
}

// waitFirst waits until every added backend has answered since t0 and
// returns how long the last of them took.
func waitFirst(b *testing.B, added []*churnBackend, t0 time.Time) time.Duration {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var latest int64
		all := true
		for _, be := range added {
			f := be.first.Load()
			all = all && f != 0
			latest = max(latest, f)
		}
		if all {
			return time.Unix(0, latest).Sub(t0)
		}
		if time.Now().After(deadline) {
			b.Fatalf("added servers got no request within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQuiet waits until the removed backends have seen no request for
// churnQuiet and returns when their last request came, after t0.
func waitQuiet(removed []*churnBackend, t0 time.Time) time.Duration {
	for {
		var last int64
		for _, be := range removed {
			last = max(last, be.last.Load())
		}
		if time.Since(time.Unix(0, last)) >= churnQuiet {
			return max(0, time.Unix(0, last).Sub(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func churnTable(rows []churnRow) string {
	pct := func(ds []time.Duration, p int) string {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[(len(s)-1)*p/100].Round(time.Millisecond).String()
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\nmembership churn: %d keep-alive clients (half GET, which Go's client resends on a closed keep-alive connection, half POST, never resent), %d -> %d -> %d servers, %d rounds\n\n", churnClients, churnLow, churnHigh, churnLow, churnRounds)
	t.WriteString("| method | requests | failed GET / POST | scale-up takes effect p50 / max | scale-down takes effect p50 / max | step returns p50 |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&t, "| %s | %d | %d / %d | %s / %s | %s / %s | %s |\n", r.method, r.requests, r.failed[0], r.failed[1],
			pct(r.up, 50), pct(r.up, 100), pct(r.down, 50), pct(r.down, 100), pct(r.applyTimes, 50))
	}
	return t.String()
}
