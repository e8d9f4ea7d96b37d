package api_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/internal/testcert"
	"github.com/slotscaler/slotscaler/scaler/api"
	"github.com/slotscaler/slotscaler/scaler/config"
)

func writeFile(t *testing.T, dir, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	return p
}

func TestLoadSecretsTokens(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good", adminToken+"\n", 0o600)
	readOnly := writeFile(t, dir, "ro", operatorToken, 0o400)
	groupReadable := writeFile(t, dir, "group", viewerToken, 0o640)
	worldReadable := writeFile(t, dir, "world", viewerToken, 0o644)
	short := writeFile(t, dir, "short", "abc", 0o600)
	sameAsGood := writeFile(t, dir, "same", adminToken, 0o600)
	t.Setenv("SLOTSCALER_TEST_TOKEN", viewerToken)
	for _, c := range []struct {
		name    string
		tokens  []config.Token
		errHas  string
		nTokens int
	}{
		{"file and env", []config.Token{{Name: "a", File: good, Role: "admin"}, {Name: "o", File: readOnly, Role: "operator"}, {Name: "v", Env: "SLOTSCALER_TEST_TOKEN", Role: "viewer"}}, "", 3},
		{"group may read", []config.Token{{Name: "v", File: groupReadable, Role: "viewer"}}, "api.tokens[0] (v): token file: " + groupReadable + ": permissions 0640 are too open", 0},
		{"others may read", []config.Token{{Name: "a", File: good, Role: "admin"}, {Name: "v", File: worldReadable, Role: "viewer"}}, "api.tokens[1] (v): token file: " + worldReadable + ": permissions 0644 are too open", 0},
		{"missing file", []config.Token{{Name: "v", File: filepath.Join(dir, "nope"), Role: "viewer"}}, "api.tokens[0] (v): token file: open", 0},
		{"short", []config.Token{{Name: "v", File: short, Role: "viewer"}}, "shorter than 16 characters", 0},
		{"empty env", []config.Token{{Name: "v", Env: "SLOTSCALER_TEST_UNSET", Role: "viewer"}}, "from $SLOTSCALER_TEST_UNSET", 0},
		{"duplicate value", []config.Token{{Name: "a", File: good, Role: "admin"}, {Name: "b", File: sameAsGood, Role: "viewer"}}, "api.tokens[1] (b): same token value as api.tokens[0] (a)", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := api.LoadSecrets(config.API{Tokens: c.tokens})
			switch {
			case c.errHas == "" && err != nil:
				t.Fatalf("LoadSecrets: %v", err)
			case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)):
				t.Fatalf("LoadSecrets: %v, want an error containing %q", err, c.errHas)
			case err != nil:
				for _, secret := range []string{adminToken, viewerToken, operatorToken} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error shows a token value: %v", err)
					}
				}
			}
			if len(s.Tokens) != c.nTokens {
				t.Errorf("%d tokens, want %d", len(s.Tokens), c.nTokens)
			}
		})
	}
}

func TestLoadSecretsTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testcert.SelfSigned(t, "127.0.0.1")
	cert := writeFile(t, dir, "api.crt", certPEM, 0o644)
	key := writeFile(t, dir, "api.key", keyPEM, 0o600)
	openKey := writeFile(t, dir, "open.key", keyPEM, 0o644)
	s, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: cert, Key: key}})
	if err != nil || s.Cert == nil {
		t.Fatalf("LoadSecrets: %v %v", s.Cert, err)
	}
	if _, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: cert, Key: openKey}}); err == nil || !strings.Contains(err.Error(), "api.tls.key: "+openKey+": permissions 0644 are too open") {
		t.Errorf("key readable by others: %v", err)
	}
	if _, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: filepath.Join(dir, "nope.crt"), Key: key}}); err == nil || !strings.Contains(err.Error(), "api.tls.cert: open") {
		t.Errorf("missing certificate: %v", err)
	}
	if _, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: key, Key: key}}); err == nil || !strings.Contains(err.Error(), "api.tls: ") {
		t.Errorf("key given as the certificate: %v", err)
	}
}

// Every unusable token and TLS file is reported, one line each, not only
// the first: check prints what run would refuse all at once.
func TestLoadSecretsReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good", adminToken, 0o600)
	twin := writeFile(t, dir, "twin", adminToken, 0o600)
	open := writeFile(t, dir, "open", operatorToken, 0o644)
	_, keyPEM := testcert.SelfSigned(t, "127.0.0.1")
	openKey := writeFile(t, dir, "open.key", keyPEM, 0o644)
	for _, c := range []struct {
		name string
		api  config.API
		want []string
	}{
		{"tokens", config.API{Tokens: []config.Token{
			{Name: "a", File: filepath.Join(dir, "nope1"), Role: "admin"},
			{Name: "b", File: filepath.Join(dir, "nope2"), Role: "viewer"},
			{Name: "c", File: good, Role: "admin"},
			{Name: "d", File: twin, Role: "viewer"},
			{Name: "e", File: open, Role: "operator"},
			{Name: "f", Env: "SLOTSCALER_TEST_UNSET", Role: "viewer"},
		}}, []string{
			"api.tokens[0] (a): token file: open " + dir + "/nope1: no such file or directory",
			"api.tokens[1] (b): token file: open " + dir + "/nope2: no such file or directory",
			"api.tokens[3] (d): same token value as api.tokens[2] (c): give each token its own value",
			"api.tokens[4] (e): token file: " + open + ": permissions 0644 are too open: others than its owner may use it; chmod 600 " + open,
			"api.tokens[5] (f): token missing or shorter than 16 characters (from $SLOTSCALER_TEST_UNSET)",
		}},
		{"tls files missing", config.API{TLS: &config.ServerTLS{Cert: filepath.Join(dir, "nope.crt"), Key: filepath.Join(dir, "nope.key")}}, []string{
			"api.tls.cert: open " + dir + "/nope.crt: no such file or directory",
			"api.tls.key: open " + dir + "/nope.key: no such file or directory",
		}},
		{"token and tls", config.API{Tokens: []config.Token{{Name: "a", File: filepath.Join(dir, "nope1"), Role: "admin"}}, TLS: &config.ServerTLS{Cert: filepath.Join(dir, "nope.crt"), Key: openKey}}, []string{
			"api.tokens[0] (a): token file: open " + dir + "/nope1: no such file or directory",
			"api.tls.key: " + openKey + ": permissions 0644 are too open: others than its owner may use it; chmod 600 " + openKey,
			"api.tls.cert: open " + dir + "/nope.crt: no such file or directory",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := api.LoadSecrets(c.api)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, c.want) {
				t.Errorf("error lines:\n%s\nwant:\n%s", err, strings.Join(c.want, "\n"))
			}
			if len(s.Tokens) != 0 || s.Cert != nil {
				t.Errorf("secrets returned with an error: %d tokens, certificate %v", len(s.Tokens), s.Cert != nil)
			}
		})
	}
}
