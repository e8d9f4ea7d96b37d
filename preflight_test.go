package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/testcert"
)

// writeTestFile writes data to dir/name and returns the path.
func writeTestFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startupConfig writes a slotscaler.yaml whose file checks pass but whose
// start-up needs are broken as listed, each in its own way.
func startupConfig(t *testing.T, dir, tokens, tls, listen, stateDir string) string {
	t.Helper()
	return writeTestFile(t, dir, "slotscaler.yaml", `
haproxy: {runtime_api: unix://`+dir+`/admin.sock}
docker:
  hosts:
    - {name: a, endpoint: "tcp://127.0.0.1:2376", max_containers: 3`+tls+`}
api:
  listen: "`+listen+`"
  insecure_listen: true # TEST-NET addresses below: their bind must be what fails
  tokens:
`+tokens+`
state_dir: `+stateDir+`
services:
  - {name: web, container: {image: web:1, port: 80}, max_replicas: 2, target: {sessions_per_replica: 5}}
`)
}

// runRefuses runs "slotscaler run" and returns its error; it must fail
// before starting anything, well within the timeout.
func runRefuses(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, logs bytes.Buffer
	err := newApp(&out, &logs).RunContext(ctx, []string{"slotscaler", "run", "--config", path, "--log-format", "text"})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("run started (err %v); logs:\n%s", err, logs.String())
	}
	return err.Error()
}

// check finds, in one run and one line each, everything run refuses at
// start; run refuses each of them with the same words, because both call
// preflight.
func TestCheckFindsWhatRunRefuses(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.SelfSigned(t, "preflight")
	_, otherKey := testcert.SelfSigned(t, "preflight")
	certFile := writeTestFile(t, dir, "cert.pem", cert)
	wrongKey := writeTestFile(t, dir, "other-key.pem", otherKey)
	notPEM := writeTestFile(t, dir, "ca.pem", "not a certificate\n")
	good := writeTestFile(t, dir, "good", "0123456789abcdef-one\n")
	aFile := writeTestFile(t, dir, "a-file", "")

	path := startupConfig(t, dir, "    - {name: missing, file: "+dir+"/nope, role: viewer}\n    - {name: short, file: "+writeTestFile(t, dir, "short", "abc\n")+", role: admin}",
		", tls: {ca: "+notPEM+", cert: "+certFile+", key: "+wrongKey+"}",
		"192.0.2.1:9180", // TEST-NET-1: on no interface of this machine
		aFile+"/state")
	want := []string{
		"api.tokens[0] (missing): token file: open " + dir + "/nope: no such file or directory",
		"api.tokens[1] (short): token missing or shorter than 16 characters (from " + dir + "/short)",
		"docker.hosts[0].tls: cert " + certFile + " and key " + wrongKey + ": tls: private key does not match public key",
		"api.listen: listen tcp 192.0.2.1:9180: bind: cannot assign requested address",
		"state_dir: " + aFile + " is not a directory",
	}

	_, errOut, code := runApp(t, "check", "--config", path)
	if code != exitInvalidConfig {
		t.Errorf("check exit code %d, want %d", code, exitInvalidConfig)
	}
	var got []string
	for line := range strings.SplitSeq(strings.TrimSpace(errOut), "\n") {
		got = append(got, strings.TrimPrefix(line, path+": "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("check printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	runErr := runRefuses(t, path)
	for _, w := range want {
		if !strings.Contains(runErr, w) {
			t.Errorf("run's refusal lacks %q:\n%s", w, runErr)
		}
	}

	// The TLS key fixed, the CA that is not PEM shows next.
	path = startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}",
		", tls: {ca: "+notPEM+", cert: "+certFile+", key: "+writeTestFile(t, dir, "key.pem", key)+"}", "127.0.0.1:0", dir+"/state")
	_, errOut, code = runApp(t, "check", "--config", path)
	if w := "docker.hosts[0].tls.ca: no PEM certificate in " + notPEM; code != exitInvalidConfig || strings.TrimSpace(errOut) != path+": "+w {
		t.Errorf("check: code %d, stderr %q, want only %q", code, errOut, w)
	}
	if err := runRefuses(t, path); !strings.Contains(err, "no PEM certificate") {
		t.Errorf("run's refusal: %s", err)
	}

	// A state.json run cannot read fails check too.
	stateDir := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, stateDir, "state.json", "{not json")
	path = startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}", "", "127.0.0.1:0", stateDir)
	_, errOut, code = runApp(t, "check", "--config", path)
	if code != exitInvalidConfig || !strings.Contains(errOut, "state_dir: ") || !strings.Contains(errOut, stateDir+"/state.json: invalid character") {
		t.Errorf("check: code %d, stderr %q", code, errOut)
	}
	if err := runRefuses(t, path); !strings.Contains(err, "state.json: invalid character") {
		t.Errorf("run's refusal: %s", err)
	}

	// So do the owner ID and generation key run reads from state_dir.
	valuesDir := filepath.Join(dir, "values")
	if err := os.MkdirAll(valuesDir, 0o750); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, valuesDir, "owner", "")
	writeTestFile(t, valuesDir, "generation.key", "\n")
	path = startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}", "", "127.0.0.1:0", valuesDir)
	_, errOut, code = runApp(t, "check", "--config", path)
	wantOwner := "state_dir: " + valuesDir + "/owner is empty (remove it to generate a new value)"
	wantKey := "state_dir: " + valuesDir + "/generation.key is empty (remove it to generate a new value)"
	if code != exitInvalidConfig || errOut != path+": "+wantOwner+"\n"+path+": "+wantKey+"\n" {
		t.Errorf("check: code %d, stderr %q, want %q and %q", code, errOut, wantOwner, wantKey)
	}
	if err := runRefuses(t, path); !strings.Contains(err, wantOwner) {
		t.Errorf("run's refusal: %s", err)
	}

	// All fixed: check says ok, and creates nothing.
	fresh := filepath.Join(dir, "fresh", "state")
	path = startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}", "", "127.0.0.1:0", fresh)
	if out, errOut, code := runApp(t, "check", "--config", path); code != 0 || !strings.Contains(out, "ok (1 services)") {
		t.Errorf("check: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Dir(fresh)); !os.IsNotExist(err) {
		t.Errorf("check created state_dir's parent: %v", err)
	}
}

// A listen address in use is a warning for check (a running slotscaler
// holds it) and a refusal for run.
func TestCheckWarnsListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	good := writeTestFile(t, dir, "good", "0123456789abcdef-one\n")
	path := startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}", "", ln.Addr().String(), dir+"/state")
	out, errOut, code := runApp(t, "check", "--config", path)
	if code != 0 || !strings.Contains(out, "ok") || !strings.Contains(errOut, "warning: api.listen: "+ln.Addr().String()+" is in use now; run needs it free") {
		t.Errorf("check: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if err := runRefuses(t, path); !strings.Contains(err, "api.listen: ") || !strings.Contains(err, "address already in use") {
		t.Errorf("run's refusal: %s", err)
	}
}

// Every way a token's value can be unusable fails check and run alike.
func TestCheckTokenValues(t *testing.T) {
	dir := t.TempDir()
	good := writeTestFile(t, dir, "good", "0123456789abcdef-one\n")
	t.Setenv("PREFLIGHT_UNSET_TOKEN", "")
	for _, tt := range []struct {
		name, token string
		want        []string // each in the one line for the token
	}{
		{"file missing", "{name: bad, file: " + dir + "/nope, role: viewer}", []string{"api.tokens[1] (bad): ", "open " + dir + "/nope: no such file or directory"}},
		{"file empty", "{name: bad, file: " + writeTestFile(t, dir, "empty", "") + ", role: viewer}", []string{"api.tokens[1] (bad): token missing or shorter than 16 characters (from " + dir + "/empty)"}},
		{"file short", "{name: bad, file: " + writeTestFile(t, dir, "short", "abc\n") + ", role: viewer}", []string{"api.tokens[1] (bad): token missing or shorter than 16 characters (from " + dir + "/short)"}},
		{"env unset", "{name: bad, env: PREFLIGHT_UNSET_TOKEN, role: viewer}", []string{"api.tokens[1] (bad): token missing or shorter than 16 characters (from $PREFLIGHT_UNSET_TOKEN)"}},
		{"value shared", "{name: twin, file: " + writeTestFile(t, dir, "same", "0123456789abcdef-one") + ", role: viewer}", []string{"api.tokens[1] (twin): same ", "value as api.tokens[0] (good)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}\n    - "+tt.token, "", "127.0.0.1:0", dir+"/state")
			_, errOut, code := runApp(t, "check", "--config", path)
			runErr := runRefuses(t, path)
			for _, w := range tt.want {
				if code != exitInvalidConfig || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, w) {
					t.Errorf("check: code %d, stderr %q, want one line with %q", code, errOut, w)
				}
				if !strings.Contains(runErr, w) {
					t.Errorf("run's refusal %q lacks %q", runErr, w)
				}
			}
		})
	}
}

// One broken start-up need at a time, each written into an otherwise good
// config: check prints exactly want (one line each), run refuses with it.
func TestCheckStartupNeeds(t *testing.T) {
	t.Setenv("PREFLIGHT_UNSET_TOKEN_2", "")
	dir := t.TempDir()
	good := writeTestFile(t, dir, "good", "0123456789abcdef-one\n")
	for _, tt := range []struct {
		name, from, to string
		want           []string
	}{
		// The Docker library's own URL parsing, which validation's scheme
		// check does not do: preflight creates run's client.
		{"docker endpoint", "tcp://127.0.0.1:2376", "tcp://[::1", []string{`docker.hosts[0]: docker host a: endpoint "tcp://[::1": parse "tcp://[::1": missing ']' in host`}},
		{"docker tls files missing", "max_containers: 3", "max_containers: 3, tls: {ca: " + dir + "/ca, cert: " + dir + "/cert, key: " + dir + "/key}", []string{
			"docker.hosts[0].tls.cert: open " + dir + "/cert: no such file or directory",
			"docker.hosts[0].tls.key: open " + dir + "/key: no such file or directory",
		}},
		// api.tls goes through the API's own loader, which preflight calls.
		{"api tls files missing", "  insecure_listen: true", "  tls: {cert: " + dir + "/nope.crt, key: " + dir + "/nope.key}", []string{
			"api.tls.cert: open " + dir + "/nope.crt: no such file or directory",
			"api.tls.key: open " + dir + "/nope.key: no such file or directory",
		}},
		// wake listeners start with run too (TEST-NET-1: on no interface).
		{"wake listen cannot be bound", "max_replicas: 2,", "max_replicas: 2, wake: {listen: \"192.0.2.1:9301\"},", []string{"services[0].wake.listen: listen tcp 192.0.2.1:9301: bind: cannot assign requested address"}},
		// haproxy.cfg is named by its key, next to the start-up problems.
		{"haproxy.cfg missing and a token unset", "haproxy: {", "haproxy: {config_file: " + dir + "/haproxy.cfg, ", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := startupConfig(t, dir, "    - {name: good, file: "+good+", role: admin}", "", "127.0.0.1:0", dir+"/state")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeTestFile(t, dir, "slotscaler.yaml", strings.Replace(string(data), tt.from, tt.to, 1))
			want := tt.want
			if want == nil { // the haproxy.cfg case: its parse error's wording is the parser's
				writeTestFile(t, dir, "slotscaler.yaml", strings.Replace(strings.Replace(string(data), tt.from, tt.to, 1), "{name: good, file: "+good, "{name: good, env: PREFLIGHT_UNSET_TOKEN_2", 1))
				_, errOut, code := runApp(t, "check", "--config", path)
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				if code != exitInvalidConfig || len(lines) != 2 || !strings.HasPrefix(lines[0], path+": haproxy.config_file: parse "+dir+"/haproxy.cfg: ") ||
					lines[1] != path+": api.tokens[0] (good): token missing or shorter than 16 characters (from $PREFLIGHT_UNSET_TOKEN_2)" {
					t.Errorf("code %d, stderr:\n%s", code, errOut)
				}
				return
			}
			var wantOut strings.Builder
			for _, w := range want {
				wantOut.WriteString(path + ": " + w + "\n")
			}
			if _, errOut, code := runApp(t, "check", "--config", path); code != exitInvalidConfig || errOut != wantOut.String() {
				t.Errorf("check: code %d, stderr:\n%s\nwant:\n%s", code, errOut, wantOut.String())
			}
			runErr := runRefuses(t, path)
			for _, w := range want {
				if !strings.Contains(runErr, w) {
					t.Errorf("run's refusal lacks %q:\n%s", w, runErr)
				}
			}
		})
	}
}
