package api

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// Secrets are what the API reads from files and the environment: the token
// values and the TLS certificate. LoadSecrets builds them at start, on
// every config reload and in `slotscaler check`.
type Secrets struct {
	Tokens []Token
	Cert   *tls.Certificate // nil without api.tls
}

// minTokenLen keeps guessable tokens out.
const minTokenLen = 16

// LoadSecrets reads every token of cfg from its file or environment
// variable, and api.tls's certificate and key. A token or key file that
// its group or others may read or write is refused, as ssh refuses such
// keys; so are short tokens and two tokens with one value (whose name
// would the log show?). Errors name the field path, never a value.
func LoadSecrets(cfg config.API) (Secrets, error) {
	var out Secrets
	seen := map[string]string{} // value -> field path of the token holding it
	for i, t := range cfg.Tokens {
		p := fmt.Sprintf("api.tokens[%d] (%s)", i, t.Name)
		role, err := ParseRole(t.Role)
		if err != nil {
			return Secrets{}, fmt.Errorf("%s.role: %w", p, err)
		}
		var value string
		if t.File != "" {
			data, err := readPrivate(t.File)
			if err != nil {
				return Secrets{}, fmt.Errorf("%s: token file: %w", p, err)
			}
			value = strings.TrimSpace(string(data))
		} else {
			value = os.Getenv(t.Env)
		}
		if len(value) < minTokenLen {
			return Secrets{}, fmt.Errorf("%s: token missing or shorter than %d characters (from %s)", p, minTokenLen, cmp.Or(t.File, "$"+t.Env))
		}
		if other, dup := seen[value]; dup {
			return Secrets{}, fmt.Errorf("%s: same token value as %s: give each token its own value", p, other)
		}
		seen[value] = p
		out.Tokens = append(out.Tokens, Token{Name: t.Name, Value: value, Role: role})
	}
	if t := cfg.TLS; t != nil {
		if _, err := readPrivate(t.Key); err != nil {
			return Secrets{}, fmt.Errorf("api.tls.key: %w", err)
		}
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return Secrets{}, fmt.Errorf("api.tls: %w", err)
		}
		out.Cert = &cert
	}
	return out, nil
}

// readPrivate reads a file only its owner may read and write.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %04o are too open: others than its owner may use it; chmod 600 %s", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
