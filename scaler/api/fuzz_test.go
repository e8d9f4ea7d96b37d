package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAPI sends arbitrary methods, paths, headers and bodies to the API
// handler, over a real loop (fake HAProxy and engine): it must never
// panic, and answer 5xx only for an unsaved state (503). The API answers
// 502 for what HAProxy or Docker refused, and these fakes refuse nothing:
// a 502 here would be an error of slotscaler's own passed off as theirs.
func FuzzAPI(f *testing.F) {
	fx := newFixture(f)
	handler := fx.api.Handler()
	for _, seed := range []struct{ method, path, auth, header, value, body string }{
		{"GET", "/v1/services", "Bearer " + viewerToken, "Accept", "application/json", ""},
		{"POST", "/v1/services/web/scale", "Bearer " + operatorToken, "Content-Type", "application/json", `{"replicas": 2}`},
		{"POST", "/v1/services/web/rollout", "bearer " + adminToken, "", "", `{"image": "web:2", "timeout": "1m"}`},
		{"POST", "/v1/services/web/rollout", "Bearer " + adminToken, "", "", `{"image": "../../../v1.41/containers/zzz"}`},
		{"POST", "/v1/slots/web/slot1/drain", "Bearer " + operatorToken, "", "", ""},
		{"POST", "/v1/slots/web/slot1/enable", "Bearer " + operatorToken, "", "", "{}"},
		{"GET", "/v1/events?service=web", "Bearer " + viewerToken, "", "", ""},
		{"POST", "/v1/config/reload", "Bearer " + adminToken, "", "", ""},
		{"DELETE", "/v1/services", "Bearer " + adminToken, "", "", ""},
		{"GET", "/v1/services/%2e%2e/config/reload", "Basic x", "Transfer-Encoding", "chunked", "\x00"},
		{"GET", "/readyz", "", "", "", ""},
		{"GET", "/metrics", "", "", "", ""},
	} {
		f.Add(seed.method, seed.path, seed.auth, seed.header, seed.value, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, path, auth, header, value, body string) {
		req, err := http.NewRequest(method, "http://api"+path, strings.NewReader(body))
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			return // net/http's server would not hand such a request over
		}
		req.Header.Set("Authorization", auth)
		if header != "" {
			req.Header.Set(header, value)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if code := w.Code; code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q: %d %s", method, path, code, w.Body)
		}
	})
}
