package runtimeapi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const statHeader = "# pxname,svname,qcur,qmax,scur,smax,status,weight,lastchg,check_status,addr,algo,last_chk,\n"

func TestParseStats(t *testing.T) {
	in := statHeader +
		"fe,FRONTEND,,,3,5,OPEN,,,,,,,\n" +
		"web,slot1,0,0,4,9,UP 1/3,1,12,INI,127.0.0.1:8001,,,\n" +
		// A check reason with a comma makes HAProxy quote the field;
		// client-native's GetStats drops such rows.
		"web,slot2,2,0,7,9,DOWN,1,3,L7STS,127.0.0.1:8002,,\"HTTP status check returned code <503>, bad\",\n" +
		"web,slot3,0,0,0,0,MAINT,1,40,,127.0.0.1:9,,,\n" +
		"web,BACKEND,5,0,11,20,UP,2,50,,,roundrobin,,\n\n"
	got, err := ParseStats(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	want := []Backend{{
		Name: "web", Algo: "roundrobin", Sessions: 11, Queue: 5,
		Servers: []Server{
			{Name: "slot1", Status: "UP 1/3", Health: HealthUp, Transition: true, CheckStatus: "INI", Weight: 1, Addr: lo, Port: 8001, Sessions: 4, LastChange: 12, AdminBits: -1},
			{Name: "slot2", Status: "DOWN", Health: HealthDown, CheckStatus: "L7STS", Weight: 1, Addr: lo, Port: 8002, Sessions: 7, Queue: 2, LastChange: 3, AdminBits: -1},
			{Name: "slot3", Status: "MAINT", Health: HealthMaint, Weight: 1, Addr: lo, Port: 9, LastChange: 40, Admin: AdminMaint, AdminBits: -1},
		},
	}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("ParseStats (-want +got):\n%s", diff)
	}
}

// The columns are found by name wherever they are; here the last one kept
// ends the row.
func TestParseStatsColumnOrder(t *testing.T) {
	in := "# algo,pxname,qcur,scur,status,weight,lastchg,check_status,svname,addr\n" +
		",web,1,2,UP,1,3,L4OK,slot1,10.0.0.1:8080\n" +
		"leastconn,web,0,2,UP,1,3,,BACKEND,\n\n"
	got, err := ParseStats(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Backend{{Name: "web", Algo: "leastconn", Sessions: 2, Servers: []Server{
		{Name: "slot1", Status: "UP", Health: HealthUp, CheckStatus: "L4OK", Weight: 1, Addr: netip.MustParseAddr("10.0.0.1"), Port: 8080, Sessions: 2, Queue: 1, LastChange: 3, AdminBits: -1},
	}}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("ParseStats (-want +got):\n%s", diff)
	}
}

func TestParseStatsRejectsPartialReads(t *testing.T) {
	for _, tt := range []struct {
		name, in string
	}{
		{"empty", ""},
		{"header only missing columns", "# pxname,svname\n"},
		{"truncated row", statHeader + "web,slot1,0,0,4\n"},
		{"garbage number", statHeader + "web,slot1,x,0,4,9,UP,1,12,INI,127.0.0.1:8001,,,\n"},
		{"bad address", statHeader + "web,slot1,0,0,4,9,UP,1,12,INI,nonsense,,,\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseStats(strings.NewReader(tt.in)); err == nil {
				t.Errorf("ParseStats(%q) = %+v, want error", tt.in, got)
			}
		})
	}
}

const stateSample = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 slot1 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 9 - 0 0 - - 0
3 web 2 slot2 127.0.0.1 2 12 1 1 0 8 2 0 6 0 0 0 - 8000 - 0 0 - - 0
3 web 4 static1 127.0.0.1 2 0 1 1 1 1 0 1 0 0 0 0 - 9 - 0 0 - - 0

`

func TestParseServersState(t *testing.T) {
	got, err := ParseServersState(strings.NewReader(stateSample))
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	want := []ServerState{
		{Backend: "web", Name: "slot1", Addr: lo, Port: 9, AdminBits: 5, Admin: AdminMaint, Weight: 1},
		// 12 = forced drain + config-disabled marker: drain, not maint
		// (client-native reads it as hex and says maint).
		{Backend: "web", Name: "slot2", Addr: lo, Port: 8000, AdminBits: 12, Admin: AdminDrain, Weight: 1},
		{Backend: "web", Name: "static1", Addr: lo, Port: 9, AdminBits: 0, Admin: AdminReady, Weight: 1},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("ParseServersState (-want +got):\n%s", diff)
	}
	if _, err := ParseServersState(strings.NewReader(stateSample[:len(stateSample)-30])); err == nil {
		t.Error("truncated servers state parsed without error")
	}
}

// JoinState gives servers their admin state whether the two replies list
// them side by side (HAProxy's order) or not, and leaves out a server one
// of them lacks (added or deleted between the reads).
func TestJoinState(t *testing.T) {
	lo, other := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.2")
	stats := func(names ...string) []Backend {
		b := Backend{Name: "web"}
		for _, n := range names {
			b.Servers = append(b.Servers, Server{Name: n, Addr: lo, Port: 9, AdminBits: -1})
		}
		return []Backend{b}
	}
	state := func(name string, bits int, addr netip.Addr) ServerState {
		return ServerState{Backend: "web", Name: name, Addr: addr, Port: 8000, AdminBits: bits, Admin: adminFromBits(bits)}
	}
	joined := func(name string, bits int, addr netip.Addr, port int) Server {
		return Server{Name: name, Addr: addr, Port: port, AdminBits: bits, Admin: adminFromBits(bits)}
	}
	for _, tt := range []struct {
		name   string
		stats  []Backend
		states []ServerState
		want   []Server
	}{
		{"side by side", stats("s1", "s2"), []ServerState{state("s1", 1, other), state("s2", 8, netip.Addr{})},
			[]Server{joined("s1", 1, other, 8000), joined("s2", 8, lo, 9)}},
		{"other order", stats("s1", "s2"), []ServerState{state("s2", 8, other), state("s1", 0, other)},
			[]Server{joined("s1", 0, other, 8000), joined("s2", 8, other, 8000)}},
		{"added between the reads", stats("s1", "s2"), []ServerState{state("s1", 0, other)},
			[]Server{joined("s1", 0, other, 8000)}},
		{"deleted between the reads", stats("s2"), []ServerState{state("s1", 0, other), state("s2", 1, other)},
			[]Server{joined("s2", 1, other, 8000)}},
		{"other backend", stats("s1"), []ServerState{{Backend: "api", Name: "s1", AdminBits: 1}},
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := JoinState(tt.stats, tt.states)
			if diff := cmp.Diff(tt.want, got[0].Servers, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("JoinState (-want +got):\n%s", diff)
			}
		})
	}
}

const infoSample = "Name: HAProxy\nVersion: 2.6.12-1\nPid: 5862\nUptime_sec: 2\nStart_time_sec: 1795791545\n\n"

// TestRepliesCutAtARowBoundary: HAProxy ends each of these replies with an
// empty line; a reply cut after any complete row (the connection closed
// early) parses as an error, never as data with rows missing.
func TestRepliesCutAtARowBoundary(t *testing.T) {
	stats := statHeader + "web,slot1,0,0,4,9,UP,1,12,L7OK,127.0.0.1:8001,,,\nweb,slot2,0,0,4,9,UP,1,12,L7OK,127.0.0.1:8002,,,\nweb,BACKEND,0,0,8,20,UP,2,50,,,roundrobin,,\n\n"
	for _, tt := range []struct {
		name  string
		reply string
		parse func(string) error
	}{
		{"show stat", stats, func(in string) error { _, err := ParseStats(strings.NewReader(in)); return err }},
		{"show servers state", stateSample, func(in string) error { _, err := ParseServersState(strings.NewReader(in)); return err }},
		{"show info", infoSample, func(in string) error { _, err := ParseInfo(strings.NewReader(in)); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.reply); err != nil {
				t.Fatalf("whole reply: %v", err)
			}
			requireCutsRefused(t, tt.reply, tt.parse)
		})
	}
}

// requireCutsRefused fails when a prefix of a good reply that ends at a
// line boundary before the closing empty line parses without error.
func requireCutsRefused(t *testing.T, reply string, parse func(string) error) {
	t.Helper()
	end := strings.Index(reply, "\n\n") // the first empty line closes the reply
	for i := 0; i < end; i++ {
		if reply[i] == '\n' && parse(reply[:i+1]) == nil {
			t.Fatalf("reply cut after %d bytes parsed without error: %q", i+1, reply[:i+1])
		}
	}
}

func TestParseInfo(t *testing.T) {
	got, err := ParseInfo(strings.NewReader(infoSample))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Info{Version: "2.6.12-1", PID: 5862, StartTime: 1795791545, Uptime: 2}); got != want {
		t.Errorf("ParseInfo = %+v, want %+v", got, want)
	}
	if _, err := ParseInfo(strings.NewReader("Name: HAProxy\n")); err == nil {
		t.Error("ParseInfo without Pid: want error")
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name, reply string
		want        error
	}{
		{"silent success", "\n\n", nil},
		{"notice", "\n[6]: Server deleted.\n", nil},
		{"addr changed", "\n[4]: no need to change the addr, port changed from '9' to '8000' by 'stats socket command'\n", nil},
		{"invalid addr is severity 4", "\n[4]: Invalid addr '1.2.3' by 'stats socket command'\n", ErrInvalidAddress},
		{"no such server", "\n[3]: No such server.\n", ErrNoSuchServer},
		{"no such proxy", "[3]: No such proxy.", ErrNoSuchBackend},
		{"in use", "[3]: Server still has connections attached to it, cannot remove it.", ErrHasConnections},
		{"unknown error text", "[3]: something new", ErrUnexpectedReply},
		{"unknown command without severity", "Unknown command, but maybe one of the following", ErrUnknownCommand},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("cmd", tt.reply)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("classify(%q) = %v, want %v", tt.reply, err, tt.want)
			}
		})
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add(statHeader + "web,slot1,0,0,4,9,UP 1/3,1,12,INI,127.0.0.1:8001,,,\nweb,BACKEND,5,0,11,20,UP,2,50,,,roundrobin,,\n\n")
	f.Add("# pxname,svname\n\"unterminated")
	parse := func(in string) error { _, err := ParseStats(strings.NewReader(in)); return err }
	f.Fuzz(func(t *testing.T, in string) {
		bs, err := ParseStats(strings.NewReader(in))
		if err != nil && bs != nil {
			t.Fatalf("error with data: %v", err)
		}
		if err == nil {
			requireCutsRefused(t, in, parse)
		}
	})
}

func FuzzParseServersState(f *testing.F) {
	f.Add(stateSample)
	f.Add("1\n# be_name srv_name\nweb")
	parse := func(in string) error { _, err := ParseServersState(strings.NewReader(in)); return err }
	f.Fuzz(func(t *testing.T, in string) {
		st, err := ParseServersState(strings.NewReader(in))
		if err != nil && st != nil {
			t.Fatalf("error with data: %v", err)
		}
		if err == nil {
			requireCutsRefused(t, in, parse)
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add("Pid: 1\nStart_time_sec: 2\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		if info, err := ParseInfo(strings.NewReader(in)); err != nil && info != (Info{}) {
			t.Fatalf("error with data: %v", err)
		}
	})
}
