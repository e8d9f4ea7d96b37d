package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/metrics"
)

const (
	viewerToken   = "v-3f9c1e0a-viewer-secret"
	operatorToken = "o-7d2b44e1-operator-secret"
	adminToken    = "a-c0ffee00-admin-secret"
)

type fixture struct {
	t        testing.TB
	srv      *httptest.Server
	api      *api.Server
	cfg      *config.Config
	stateDir string
	loop     *scaler.Loop
	logs     *bytes.Buffer
}

// fixtureYAML is one service, web, running web:1; extra is added to its
// line (e.g. allowed_images).
const fixtureYAML = `
haproxy: {runtime_api: unix:///unused.sock}
docker: {hosts: [{name: local, endpoint: unix:///var/run/docker.sock, max_containers: 8}]}
services:
  - {name: web, backend: web, container: {image: web:1, port: 8080}, min_replicas: 1, max_replicas: 4, target: {sessions_per_replica: 10}%s}
`

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, "") }

func newFixtureWith(t testing.TB, extra string) *fixture {
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	m := metrics.New()
	fx := scalertest.New(t, fmt.Sprintf(fixtureYAML, extra), scalertest.Options{Observer: m, Log: log})
	loop, cfg := fx.Loop, fx.Config
	loop.Tick(context.Background())
	loop.Wait()
	loop.Tick(context.Background())
	tokens := []api.Token{{"dash", viewerToken, api.Viewer}, {"ci", operatorToken, api.Operator}, {"root", adminToken, api.Admin}}
	reload := func() error { return nil }
	server := api.New(loop, cfg, api.Secrets{Tokens: tokens}, m.Handler(), reload, log)
	srv := httptest.NewServer(server.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: server, cfg: cfg, stateDir: fx.StateDir, loop: loop, logs: logs}
}

func (f *fixture) do(method, path, token, body string) (int, map[string]any) {
	f.t.Helper()
	code, _, out := f.doHeader(method, path, "Bearer "+token, body)
	return code, out
}

// doHeader sends authorization as the Authorization header (none when it
// is "Bearer ") and returns the status, the headers and the JSON answer.
func (f *fixture) doHeader(method, path, authorization, body string) (int, http.Header, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if authorization != "Bearer " {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if json.Unmarshal(data, &out) != nil {
		out = map[string]any{"raw": string(data)}
	}
	return resp.StatusCode, resp.Header, out
}

func TestAPIStatusCodes(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
		errorHas                        string
	}{
		{"no token", "GET", "/v1/services", "", "", 401, "bearer token"},
		{"wrong token", "GET", "/v1/services", "nope", "", 401, "bearer token"},
		{"viewer reads", "GET", "/v1/services/web", viewerToken, "", 200, ""},
		{"viewer may not post", "POST", "/v1/services/web/pause", viewerToken, "", 403, "needs operator"},
		{"operator may not reload", "POST", "/v1/config/reload", operatorToken, "", 403, "needs admin"},
		{"admin reloads", "POST", "/v1/config/reload", adminToken, "", 200, ""},
		{"malformed JSON", "POST", "/v1/services/web/scale", operatorToken, `{"replicas": `, 400, "malformed JSON"},
		{"unknown field", "POST", "/v1/services/web/scale", operatorToken, `{"replica": 2}`, 400, "unknown field"},
		{"empty body", "POST", "/v1/services/web/scale", operatorToken, ``, 400, "empty"},
		{"replicas above max", "POST", "/v1/services/web/scale", operatorToken, `{"replicas": 9}`, 400, "want 0 to 4"},
		{"huge body", "POST", "/v1/services/web/scale", operatorToken, `{"replicas": 1, "x": "` + strings.Repeat("a", 70<<10) + `"}`, 413, "too large"},
		{"unknown service", "GET", "/v1/services/nope", viewerToken, "", 404, "not found"},
		{"unknown service scale", "POST", "/v1/services/nope/scale", operatorToken, `{"replicas": 1}`, 404, "not found"},
		{"unknown slot", "POST", "/v1/slots/web/slot9/drain", operatorToken, "", 404, "slot web/slot9"},
		{"unknown backend", "POST", "/v1/slots/nope/slot1/drain", operatorToken, "", 404, "not managed"},
		{"drain a free slot", "POST", "/v1/slots/web/slot4/drain", operatorToken, "", 409, "nothing to drain"},
		{"rollout without image", "POST", "/v1/services/web/rollout", operatorToken, `{}`, 400, "image is required"},
		{"rollout bad timeout", "POST", "/v1/services/web/rollout", operatorToken, `{"image": "web:2", "timeout": "soon"}`, 400, "timeout"},
		{"no rollout yet", "GET", "/v1/services/web/rollout", operatorToken, "", 404, "no rollout"},
		{"unknown path", "GET", "/v2/nothing", "", "", 404, "no such endpoint"},
		{"healthz open", "GET", "/healthz", "", "", 200, ""},
		{"readyz open", "GET", "/readyz", "", "", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.do(c.method, c.path, c.token, c.body)
			msg, _ := body["error"].(string)
			if code != c.want || !strings.Contains(msg, c.errorHas) {
				t.Errorf("%s %s: %d %v, want %d with error containing %q", c.method, c.path, code, body, c.want, c.errorHas)
			}
		})
	}
}

func TestAPIRolloutConflict(t *testing.T) {
	f := newFixture(t)
	code, body := f.do("POST", "/v1/services/web/rollout", operatorToken, `{"image": "web:2", "timeout": "5m"}`)
	if code != 200 || body["state"] != "running" || body["image"] != "web:2" {
		t.Fatalf("first rollout: %d %v", code, body)
	}
	code, body = f.do("POST", "/v1/services/web/rollout", operatorToken, `{"image": "web:3"}`)
	if code != 409 || !strings.Contains(body["error"].(string), "in progress") {
		t.Fatalf("second rollout: %d %v, want 409", code, body)
	}
	code, body = f.do("GET", "/v1/services/web/rollout", operatorToken, "")
	if code != 200 || body["image"] != "web:2" {
		t.Fatalf("rollout status: %d %v", code, body)
	}
}

func TestAPIControls(t *testing.T) {
	f := newFixture(t)
	code, body := f.do("POST", "/v1/services/web/scale", operatorToken, `{"replicas": 3}`)
	if code != 200 || body["control"] != "pinned" || body["pinned"] != 3.0 {
		t.Fatalf("scale: %d %v", code, body)
	}
	if code, body = f.do("POST", "/v1/services/web/resume", operatorToken, ""); code != 200 || body["control"] != "auto" {
		t.Fatalf("resume: %d %v", code, body)
	}
	if code, body = f.do("POST", "/v1/services/web/pause", operatorToken, ""); code != 200 || body["control"] != "paused" {
		t.Fatalf("pause: %d %v", code, body)
	}
	if code, body = f.do("POST", "/v1/slots/web/slot1/drain", operatorToken, ""); code != 200 {
		t.Fatalf("drain: %d %v", code, body)
	}
	if code, body = f.do("POST", "/v1/slots/web/slot1/enable", operatorToken, ""); code != 200 {
		t.Fatalf("enable: %d %v", code, body)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/events?service=web", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []scaler.Event
	if err := json.NewDecoder(resp.Body).Decode(&events); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, string(e.Kind)+"/"+e.Reason)
	}
	for _, want := range []string{"scale_up/min", "control/pinned", "control/resumed", "control/paused", "control/operator_drain", "control/operator_enable"} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("events %v lack %s", kinds, want)
		}
	}
}

func TestAPIMetricsOpenAndTokensNeverLogged(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/v1/services/web/pause", operatorToken, "")
	f.do("POST", "/v1/services/web/pause", viewerToken, "")
	f.do("GET", "/v1/services", "wrong-"+adminToken, "")
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(data), `slotscaler_service_replicas{service="web",state="serving"} 1`) {
		t.Errorf("/metrics: %d\n%.2000s", resp.StatusCode, data)
	}
	for _, secret := range []string{viewerToken, operatorToken, adminToken} {
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("a token value reached the log:\n%s", f.logs.String())
		}
	}
	if !strings.Contains(f.logs.String(), `"token":"ci"`) {
		t.Errorf("API changes should be logged with the token's name:\n%s", f.logs.String())
	}
}
