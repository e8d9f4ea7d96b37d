package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/metrics"
)

// statusLoop serves one fixed service status; the rest of api.Loop is not
// called.
type statusLoop struct {
	api.Loop
	st scaler.ServiceStatus
}

func (l statusLoop) Service(string) (scaler.ServiceStatus, error) { return l.st, nil }
func (l statusLoop) Services() []scaler.ServiceStatus             { return []scaler.ServiceStatus{l.st} }

// namesFixture serves st through the API and its metrics, and returns the
// API's JSON of it, the /metrics text and lbctl status's output.
func namesFixture(t *testing.T, st scaler.ServiceStatus) (body map[string]any, metricsText, lbctlOut string) {
	t.Helper()
	m := metrics.New()
	m.Tick(0, []scaler.ServiceStatus{st}, nil)
	secrets := api.Secrets{Tokens: []api.Token{{Name: "v", Value: testToken, Role: api.Viewer}}}
	srv := httptest.NewServer(api.New(statusLoop{st: st}, nil, secrets, m.Handler(), nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	t.Cleanup(srv.Close)

	get := func(path string) []byte {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, data)
		}
		return data
	}
	if err := json.Unmarshal(get("/v1/services/web"), &body); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLOTSCALER_TOKEN", testToken)
	var out bytes.Buffer
	if err := newApp(&out).Run([]string{"lbctl", "--api", srv.URL, "status", "web"}); err != nil {
		t.Fatalf("lbctl status: %v", err)
	}
	return body, string(get("/metrics")), out.String()
}

// TestSlotStateNames: every slot state has one name, the same in the API's
// slots[].state and replicas, in service_replicas{state} and in lbctl
// status.
func TestSlotStateNames(t *testing.T) {
	seen := map[scaler.SlotState]bool{}
	for _, state := range scaler.SlotStates {
		t.Run(string(state), func(t *testing.T) {
			if seen[state] || !regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`).MatchString(string(state)) {
				t.Fatalf("slot state %q: a duplicate, or not a lower_snake_case name", state)
			}
			seen[state] = true
			// The replicas' JSON key is the state's name.
			var r scaler.Replicas
			if err := json.Unmarshal(fmt.Appendf(nil, `{%q: 1}`, state), &r); err != nil || r.Of(state) != 1 {
				t.Fatalf("replicas JSON has no key %q: %+v %v", state, r, err)
			}
			for _, other := range scaler.SlotStates {
				if other != state && r.Of(other) != 0 {
					t.Fatalf("replicas JSON key %q counts %s too", state, other)
				}
			}
			st := scaler.ServiceStatus{Name: "web", Backend: "web", Control: scaler.ControlAuto, Replicas: r,
				Slots: []scaler.SlotStatus{{Name: "slot1", State: state, Status: "MAINT"}}}
			body, metricsText, out := namesFixture(t, st)

			slots, _ := body["slots"].([]any)
			if len(slots) != 1 || slots[0].(map[string]any)["state"] != string(state) {
				t.Errorf("API slots: %v, want state %q", body["slots"], state)
			}
			if replicas, _ := body["replicas"].(map[string]any); replicas[string(state)] != 1.0 {
				t.Errorf("API replicas: %v, want %q: 1", body["replicas"], state)
			}

			series := regexp.MustCompile(`(?m)^slotscaler_service_replicas\{service="web",state="([a-z_]+)"\} (\d+)$`).FindAllStringSubmatch(metricsText, -1)
			if len(series) != len(scaler.SlotStates) {
				t.Errorf("service_replicas has %d series, want one per slot state (%d): %v", len(series), len(scaler.SlotStates), series)
			}
			labels := map[string]string{}
			for _, s := range series {
				labels[s[1]] = s[2]
			}
			for _, other := range scaler.SlotStates {
				if want := map[bool]string{true: "1", false: "0"}[other == state]; labels[string(other)] != want {
					t.Errorf("service_replicas{state=%q} = %q, want %s", other, labels[string(other)], want)
				}
			}

			if !strings.Contains(out, fmt.Sprintf(" 1 %s", state)) || !regexp.MustCompile(`(?m)^\s+slot1\s+`+string(state)+`\s`).MatchString(out) {
				t.Errorf("lbctl status does not name the slot %q:\n%s", state, out)
			}
		})
	}
}

// TestControlModeNames: a control mode has the same name in the API and in
// lbctl status.
func TestControlModeNames(t *testing.T) {
	for _, tc := range []struct {
		mode scaler.ControlMode
		want string
	}{
		{scaler.ControlAuto, "control auto"},
		{scaler.ControlPaused, "control paused at 2"},
		{scaler.ControlPinned, "control pinned at 2"},
		{scaler.ControlRollout, "control rollout"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			body, _, out := namesFixture(t, scaler.ServiceStatus{Name: "web", Backend: "web", Control: tc.mode, Pinned: 2})
			if body["control"] != string(tc.mode) {
				t.Errorf("API control %v, want %q", body["control"], tc.mode)
			}
			if !strings.Contains(out, tc.want+"\n") {
				t.Errorf("lbctl status lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
