package api

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/slotscaler/slotscaler/internal/tlsfiles"
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
// would the log show?). Every problem is reported, one line each, so that
// check lists them all at once; errors name the field path, never a value.
func LoadSecrets(cfg config.API) (Secrets, error) {
	var out Secrets
	var errs []error
	seen := map[string]string{} // value -> field path of the token holding it
	for i, t := range cfg.Tokens {
		p := fmt.Sprintf("api.tokens[%d] (%s)", i, t.Name)
		role, err := ParseRole(t.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.role: %w", p, err))
			continue
		}
		var value string
		if t.File != "" {
			data, err := readPrivate(t.File)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: token file: %w", p, err))
				continue
			}
			value = strings.TrimSpace(string(data))
		} else {
			value = os.Getenv(t.Env)
		}
		if len(value) < minTokenLen {
			errs = append(errs, fmt.Errorf("%s: token missing or shorter than %d characters (from %s)", p, minTokenLen, cmp.Or(t.File, "$"+t.Env)))
			continue
		}
		if other, dup := seen[value]; dup {
			errs = append(errs, fmt.Errorf("%s: same token value as %s: give each token its own value", p, other))
			continue
		}
		seen[value] = p
		out.Tokens = append(out.Tokens, Token{Name: t.Name, Value: value, Role: role})
	}
	if t := cfg.TLS; t != nil {
		// A key that does not exist is left to the loader to name, next
		// to the certificate.
		if info, err := os.Stat(t.Key); err == nil {
			if err := private(t.Key, info); err != nil {
				errs = append(errs, fmt.Errorf("api.tls.key: %w", err))
			}
		}
		loaded, err := tlsfiles.Load("api.tls", "", t.Cert, t.Key)
		if err != nil {
			errs = append(errs, err)
		} else {
			out.Cert = &loaded.Certificates[0]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Secrets{}, err
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
	if err := private(path, info); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// private refuses a file its group or others may use.
func private(path string, info fs.FileInfo) error {
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: permissions %04o are too open: others than its owner may use it; chmod 600 %s", path, perm, path)
	}
	return nil
}
