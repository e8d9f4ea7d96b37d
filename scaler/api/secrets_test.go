package api_test

import (
	"os"
	"path/filepath"
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
	if _, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: filepath.Join(dir, "nope.crt"), Key: key}}); err == nil || !strings.Contains(err.Error(), "api.tls: open") {
		t.Errorf("missing certificate: %v", err)
	}
	if _, err := api.LoadSecrets(config.API{TLS: &config.ServerTLS{Cert: key, Key: key}}); err == nil || !strings.Contains(err.Error(), "api.tls: ") {
		t.Errorf("key given as the certificate: %v", err)
	}
}
