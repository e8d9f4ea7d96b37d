package api_test

import (
	"os"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/scaler/api"
)

func TestAPIWrongMethodAnswers405WithAllow(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/services", "GET, HEAD"},
		{"PUT", "/v1/services/web", "GET, HEAD"},
		{"GET", "/v1/services/web/scale", "POST"},
		{"DELETE", "/v1/services/web/rollout", "GET, HEAD, POST"},
		{"GET", "/v1/config/reload", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		code, header, body := f.doHeader(c.method, c.path, "Bearer "+adminToken, "")
		if code != 405 || header.Get("Allow") != c.allow || !strings.Contains(body["error"].(string), "method not allowed") {
			t.Errorf("%s %s: %d Allow %q %v, want 405 Allow %q", c.method, c.path, code, header.Get("Allow"), body, c.allow)
		}
	}
	if code, _ := f.do("DELETE", "/v1/nothing", adminToken, ""); code != 404 {
		t.Errorf("DELETE on an unknown path: %d, want 404", code)
	}
}

func TestAPIBearerSchemeIsCaseInsensitive(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		header string
		want   int
	}{
		{"Bearer " + viewerToken, 200},
		{"bearer " + viewerToken, 200},
		{"BEARER " + viewerToken, 200},
		{"Bearer   " + viewerToken + " ", 200},
		{"Basic " + viewerToken, 401},
		{viewerToken, 401},
		{"Bearer", 401},
	} {
		if code, _, body := f.doHeader("GET", "/v1/services", c.header, ""); code != c.want {
			t.Errorf("Authorization %q: %d %v, want %d", c.header, code, body, c.want)
		}
	}
}

// An operator token must not become code execution with the service's
// secrets: a rollout may run only allowed_images, whatever the role.
func TestAPIRolloutImagePolicy(t *testing.T) {
	for _, c := range []struct {
		name, extra, token, image string
		want                      int
		errorHas                  string
	}{
		{"foreign image, operator", "", operatorToken, "elsewhere/miner:1", 403, `outside service web's allowed_images ["web:*" "web@*"]`},
		{"foreign image, admin", "", adminToken, "elsewhere/miner:1", 403, "whatever the token's role"},
		{"look-alike repository", "", adminToken, "web-evil:1", 403, "allowed_images"},
		{"same name on another registry", "", adminToken, "registry.local/web:2", 403, "allowed_images"},
		{"path, not a reference", "", adminToken, "../../../v1.41/containers/zzz", 400, "not a Docker image reference"},
		{"upper case", "", adminToken, "Web:2", 400, "not a Docker image reference"},
		{"viewer still needs operator", "", viewerToken, "web:2", 403, "needs operator"},
		{"default: same repository, new tag", "", operatorToken, "web:2", 200, ""},
		{"default: written in full", "", operatorToken, "docker.io/library/web:2", 200, ""},
		{"default: by digest", "", operatorToken, "web@sha256:" + strings.Repeat("ab", 32), 200, ""},
		{"pattern allows", `, allowed_images: ["registry.local/web:1.*"]`, operatorToken, "registry.local/web:1.4.3", 200, ""},
		{"pattern refuses another tag", `, allowed_images: ["registry.local/web:1.*"]`, operatorToken, "registry.local/web:2.0", 403, `["registry.local/web:1.*"]`},
		{"pattern replaces the default", `, allowed_images: ["registry.local/web:*"]`, operatorToken, "web:2", 403, "allowed_images"},
		{"star does not cross a slash", `, allowed_images: ["registry.local/*:1"]`, operatorToken, "registry.local/a/b:1", 403, "allowed_images"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, c.extra)
			code, body := f.do("POST", "/v1/services/web/rollout", c.token, `{"image": "`+c.image+`"}`)
			msg, _ := body["error"].(string)
			if code != c.want || !strings.Contains(msg, c.errorHas) {
				t.Fatalf("rollout %s: %d %v, want %d with error containing %q", c.image, code, body, c.want, c.errorHas)
			}
			if c.want == 200 && body["image"] != c.image {
				t.Errorf("rollout started with %v, want %s", body["image"], c.image)
			}
		})
	}
}

// Apply (what a config reload calls) replaces the tokens at once.
func TestAPIApplyReplacesTokens(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.do("GET", "/v1/services", viewerToken, ""); code != 200 {
		t.Fatalf("viewer before: %d", code)
	}
	f.api.Apply(f.cfg, api.Secrets{Tokens: []api.Token{{Name: "root", Value: adminToken, Role: api.Admin}}})
	if code, _ := f.do("GET", "/v1/services", viewerToken, ""); code != 401 {
		t.Errorf("removed viewer token: %d, want 401", code)
	}
	if code, _ := f.do("GET", "/v1/services", adminToken, ""); code != 200 {
		t.Errorf("kept admin token: %d, want 200", code)
	}
}

// A control whose state.json write failed answers 503 (and /readyz too)
// until a write succeeds again.
func TestAPIStateNotSavedAnswers503(t *testing.T) {
	f := newFixture(t)
	// A file where the state directory was: every write fails (ENOTDIR),
	// for root too.
	if err := os.RemoveAll(f.stateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := f.do("POST", "/v1/services/web/pause", operatorToken, "")
	if msg, _ := body["error"].(string); code != 503 || !strings.Contains(msg, "state not saved") || !strings.Contains(msg, "state.json could not be written") {
		t.Fatalf("pause with state.json unwritable: %d %v, want 503", code, body)
	}
	if code, body := f.do("GET", "/readyz", "", ""); code != 503 {
		t.Errorf("readyz with state.json unwritable: %d %v, want 503", code, body)
	}
	if err := os.Remove(f.stateDir); err != nil {
		t.Fatal(err)
	}
	if code, body := f.do("POST", "/v1/services/web/resume", operatorToken, ""); code != 200 {
		t.Errorf("resume once state.json is writable again: %d %v", code, body)
	}
	if code, body := f.do("GET", "/readyz", "", ""); code != 200 {
		t.Errorf("readyz after a successful write: %d %v", code, body)
	}
}

// Paths that need cleaning are refused, not redirected to another endpoint.
func TestAPIRefusesUncleanPaths(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/v1/services/../config/reload", "/v1/services/./web", "/v1//services", "/v1/services/", "/healthz/.."} {
		code, header, body := f.doHeader("POST", p, "Bearer "+adminToken, "")
		if code != 400 || header.Get("Location") != "" || !strings.Contains(body["error"].(string), "not canonical") {
			t.Errorf("POST %s: %d Location %q %v, want 400", p, code, header.Get("Location"), body)
		}
	}
}
