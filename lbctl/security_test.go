package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

// A name is one escaped path segment: it cannot reach another endpoint.
func TestNamesAreEscaped(t *testing.T) {
	f := newAPIFixture(t, scalertest.Options{})
	for _, c := range []struct {
		args []string
		path string
	}{
		{[]string{"pause", "../../v1/config/reload#"}, "POST /v1/services/..%2F..%2Fv1%2Fconfig%2Freload%23/pause"},
		{[]string{"resume", "web/../../../v1/config/reload?x="}, "POST /v1/services/web%2F..%2F..%2F..%2Fv1%2Fconfig%2Freload%3Fx=/resume"},
		{[]string{"status", "a b"}, "GET /v1/services/a%20b"},
		{[]string{"events", "web&service=x"}, "GET /v1/events"},
		{[]string{"rollout", "../config/reload#", "--image", "web:2"}, "POST /v1/services/..%2Fconfig%2Freload%23/rollout"},
	} {
		f.mu.Lock()
		f.reached = nil
		f.mu.Unlock()
		_, err := f.run(c.args...)
		f.mu.Lock()
		reached := slices.Clone(f.reached)
		f.mu.Unlock()
		if !slices.Contains(reached, c.path) {
			t.Errorf("lbctl %q sent %q, want %q", c.args, reached, c.path)
		}
		if c.args[0] != "events" && exitCode(err) != exitFailed {
			t.Errorf("lbctl %q: %v, want exit 1 from the API", c.args, err)
		}
	}
	if n := f.reloads.Load(); n != 0 {
		t.Errorf("a name triggered %d config reloads", n)
	}
}

// A name "." or ".." escapes to itself and would be a step of the path to
// a server or proxy that resolves dot segments: refused as a usage error,
// before anything is sent.
func TestDotNamesRefused(t *testing.T) {
	f := newAPIFixture(t, scalertest.Options{})
	for _, args := range [][]string{
		{"scale", "..", "1"},
		{"pause", "."},
		{"status", ".."},
		{"drain", "../slot1"},
		{"enable", "web/.."},
		{"rollout", "..", "--image", "web:2"},
	} {
		f.mu.Lock()
		f.reached = nil
		f.mu.Unlock()
		_, err := f.run(args...)
		f.mu.Lock()
		reached := slices.Clone(f.reached)
		f.mu.Unlock()
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "cannot be '.' or '..'") || len(reached) > 0 {
			t.Errorf("lbctl %q: exit %d (%v), sent %q; want exit %d and nothing sent", args, exitCode(err), err, reached, exitUsage)
		}
	}
}

// The global flags work after the command too, as the README writes them.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	f := newAPIFixture(t, scalertest.Options{})
	for _, args := range [][]string{
		{"status", "web", "-o", "json"},
		{"status", "-o", "json", "web"},
		{"status", "web", "--output=json"},
		{"-o", "json", "status", "web"},
	} {
		out, err := f.run(args...)
		if err != nil || !strings.HasPrefix(out, "[") || !strings.Contains(out, `"backend": "web"`) {
			t.Errorf("lbctl %q: %v\n%s", args, err, out)
		}
	}
	if out, err := f.run("rollout", "web", "--image", "web:2", "-o", "json", "--timeout", "1m"); err != nil || !strings.Contains(out, "rollout 1 of web") {
		t.Errorf("rollout with -o after it: %v\n%s", err, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"nope"},
		{"status", "--bogus"},
		{"--bogus", "status"},
		{"status", "a", "b"},
		{"pause", "web", "extra"},
		{"pause"},
		{"scale", "web"},
		{"scale", "web", "x"},
		{"rollout", "web"},
		{"drain", "web"},
		{"enable", "web/slot1", "web/slot2"},
		{"status", "-o", "yaml"},
		{"status", "--request-timeout", "soon"},
	} {
		// A valid token and an API that is not there: any further than the
		// usage check, lbctl would exit 3.
		var out bytes.Buffer
		app := newApp(&out)
		err := app.Run(interspersed(app, append([]string{"lbctl", "--api", "http://127.0.0.1:1", "--token-file", tokenFile}, args...)))
		if exitCode(err) != exitUsage {
			t.Errorf("lbctl %q: exit %d (%v), want %d", args, exitCode(err), err, exitUsage)
		}
	}
}

// drain --wait compares the server's status stamps with each other, never
// with the client's clock: with the server an hour behind, it still ends.
func TestDrainWaitUsesServerClock(t *testing.T) {
	f := newAPIFixture(t, scalertest.Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	start := time.Now()
	out, err := f.run("drain", "web/slot1", "--wait", "--timeout", "10s")
	if err != nil || !strings.Contains(out, "web/slot1: drained") {
		t.Fatalf("drain --wait with the server's clock an hour behind: %v\n%s", err, out)
	}
	t.Logf("drained after %s", time.Since(start).Round(time.Millisecond))
}

// The README's "lbctl --socket … status web -o json", against real haproxy.
func TestSocketStatusOutputFlagAfterCommand(t *testing.T) {
	h := haproxytest.Start(t, `
backend web
  server-template slot 1-2 127.0.0.1:9 check disabled
`)
	var out bytes.Buffer
	app := newApp(&out)
	if err := app.Run(interspersed(app, []string{"lbctl", "--socket", h.Socket, "status", "web", "-o", "json"})); err != nil {
		t.Fatalf("lbctl --socket … status web -o json: %v", err)
	}
	var backends []runtimeapi.Backend
	if err := json.Unmarshal(out.Bytes(), &backends); err != nil || len(backends) != 1 || backends[0].Name != "web" {
		t.Errorf("want web's JSON: %v\n%s", err, out.String())
	}
}

// A redirect (from a proxy in front of the API, say) is reported, never
// followed: following it would resend the token, or turn a POST into a GET.
func TestRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var reached []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, "/v1/config/reload", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	t.Setenv("SLOTSCALER_TOKEN", testToken)
	var out bytes.Buffer
	app := newApp(&out)
	err := app.Run(interspersed(app, []string{"lbctl", "--api", srv.URL, "pause", "web"}))
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), `307 Temporary Redirect to "/v1/config/reload": lbctl follows no redirect`) {
		t.Errorf("redirected pause: exit %d %v", exitCode(err), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reached, []string{"/v1/services/web/pause"}) {
		t.Errorf("requests: %q, want only the pause", reached)
	}
}
