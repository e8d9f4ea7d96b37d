// Package tlsfiles loads the TLS files named in slotscaler.yaml, with
// errors that name their YAML field.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Load loads a certificate and its key and, when ca is set, a CA bundle,
// naming the field below path (docker.hosts[0].tls, api.tls) that is
// missing, unreadable or not PEM. It is the one loader of TLS files, so
// check and run cannot disagree about them.
func Load(path, ca, cert, key string) (*tls.Config, error) {
	read := func(field, file string) ([]byte, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", path, field, err)
		}
		return data, nil
	}
	certPEM, certErr := read("cert", cert)
	keyPEM, keyErr := read("key", key)
	if err := errors.Join(certErr, keyErr); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: cert %s and key %s: %w", path, cert, key, err)
	}
	out := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if ca != "" {
		caPEM, err := read("ca", ca)
		if err != nil {
			return nil, err
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%s.ca: no PEM certificate in %s", path, ca)
		}
	}
	return out, nil
}
