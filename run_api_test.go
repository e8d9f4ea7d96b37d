package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/testcert"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/templates"
)

// haproxyFor starts haproxy with the backends render makes for yaml, and
// writes yaml, {{DIR}} replaced by haproxy's directory, to a file there.
func haproxyFor(t *testing.T, yaml string) (*haproxytest.HAProxy, string) {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.ReplaceAll(yaml, "{{DIR}}", "/x")))
	if err != nil {
		t.Fatal(err)
	}
	var backends strings.Builder
	if err := templates.RenderBackends(&backends, cfg); err != nil {
		t.Fatal(err)
	}
	h := haproxytest.Start(t, backends.String())
	path := filepath.Join(h.Dir, "slotscaler.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "{{DIR}}", h.Dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return h, path
}

// TestRunReloadsAPISecrets runs "slotscaler run --dry-run" with api.tls
// against a real haproxy: a config reload re-reads the tokens (a removed
// one is refused at once) and the certificate, refuses with 409 the
// changes it cannot apply, and keeps the old tokens when a new token file
// is readable by others.
func TestRunReloadsAPISecrets(t *testing.T) {
	service := dockertest.ServiceName(t, "apisec")
	const adminToken, viewerToken = "admin-0123456789abcdef", "viewer-0123456789abcdef"
	yaml := func(dir, extra string, viewer bool) string {
		tokens := fmt.Sprintf(`[{name: root, file: %s/admin.token, role: admin}`, dir)
		if viewer {
			tokens += fmt.Sprintf(`, {name: dash, file: %s/viewer.token, role: viewer}`, dir)
		}
		return fmt.Sprintf(`
haproxy: {runtime_api: unix://%[1]s/admin.sock}
state_dir: %[1]s/state
api: {listen: "127.0.0.1:0", tls: {cert: %[1]s/api.crt, key: %[1]s/api.key}, tokens: %[2]s]}
docker: {hosts: [{name: local, endpoint: %[3]s, max_containers: 100}]%[5]s}
interval: 100ms
services:
  - {name: %[4]s, backend: %[4]s, container: {image: slotscaler-echo:test, port: 8080}, min_replicas: 1, max_replicas: 2, target: {sessions_per_replica: 5}}
`, dir, tokens, dockertest.Endpoint, service, extra)
	}
	h, path := haproxyFor(t, yaml("{{DIR}}", "", true))
	dir := h.Dir
	write := func(name, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("admin.token", adminToken+"\n", 0o600)
	write("viewer.token", viewerToken+"\n", 0o400)
	cert1, key1 := testcert.SelfSigned(t, "127.0.0.1")
	write("api.crt", cert1, 0o644)
	write("api.key", key1, 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	logs := &haproxytest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- newApp(io.Discard, logs).RunContext(ctx, []string{"slotscaler", "run", "--config", path, "--dry-run", "--log-format", "text"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	listening := regexp.MustCompile(`http api listening" addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the API did not start:\n%s", logs.String())
		}
	}

	// client trusts certPEM only, and reports the certificate it was shown.
	call := func(certPEM, method, path, token string) (int, string) {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(certPEM))
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		return resp.StatusCode, e.Error
	}
	reload := func(certPEM string) (int, string) { return call(certPEM, "POST", "/v1/config/reload", adminToken) }

	if code, msg := call(cert1, "GET", "/v1/services", viewerToken); code != 200 {
		t.Fatalf("viewer over TLS: %d %s", code, msg)
	}

	// A removed token is refused at once; a new certificate is served.
	cert2, key2 := testcert.SelfSigned(t, "127.0.0.1")
	write("api.crt", cert2, 0o644)
	write("api.key", key2, 0o600)
	write("slotscaler.yaml", yaml(dir, "", false), 0o644)
	if code, msg := reload(cert1); code != 200 {
		t.Fatalf("reload: %d %s", code, msg)
	}
	if code, msg := call(cert2, "GET", "/v1/services", viewerToken); code != 401 {
		t.Errorf("removed viewer token after reload: %d %s, want 401", code, msg)
	}
	if code, msg := call(cert1, "GET", "/v1/services", adminToken); code != 0 || !strings.Contains(msg, "certificate") {
		t.Errorf("old certificate still served after reload: %d %s", code, msg)
	}

	// Changes that need a restart are refused, each named; nothing applies.
	write("slotscaler.yaml", strings.Replace(yaml(dir, ", pull: true", true), dir+"/state", dir+"/elsewhere", 1), 0o644)
	if code, msg := reload(cert2); code != 409 || !strings.Contains(msg, "changes to docker.pull, state_dir need a restart") {
		t.Errorf("reload with restart-only changes: %d %s, want 409 naming docker.pull and state_dir", code, msg)
	}
	if code, _ := call(cert2, "GET", "/v1/services", viewerToken); code != 401 {
		t.Errorf("a refused reload applied its tokens: viewer answered %d", code)
	}

	// A token file others may read is refused; the tokens in force stay.
	write("viewer.token", viewerToken+"\n", 0o644)
	write("slotscaler.yaml", yaml(dir, "", true), 0o644)
	if code, msg := reload(cert2); code != 400 || !strings.Contains(msg, "permissions 0644 are too open") {
		t.Errorf("reload with a world-readable token file: %d %s, want 400", code, msg)
	}
	if code, msg := call(cert2, "GET", "/v1/services", adminToken); code != 200 {
		t.Errorf("admin after a refused reload: %d %s", code, msg)
	}
	if strings.Contains(logs.String(), adminToken) || strings.Contains(logs.String(), viewerToken) {
		t.Errorf("a token value reached the log:\n%s", logs.String())
	}
}
