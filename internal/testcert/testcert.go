// Package testcert makes throwaway certificates for tests: self-signed
// ones, and a CA that issues server and client certificates.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// SelfSigned returns a fresh certificate for host (a name or an IP
// address), valid for an hour, and its key, both in PEM.
func SelfSigned(t testing.TB, host string) (certPEM, keyPEM string) {
	t.Helper()
	return sign(t, leaf(host), Pair{}).PEM(t)
}

// Pair is a certificate and its key.
type Pair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA returns a fresh self-signed CA named name, valid for an hour.
func NewCA(t testing.TB, name string) Pair {
	t.Helper()
	return sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, Pair{})
}

// Issue signs a certificate for host (a name or an IP address) for usage
// (x509.ExtKeyUsageServerAuth or ExtKeyUsageClientAuth) with ca.
func (ca Pair) Issue(t testing.TB, host string, usage x509.ExtKeyUsage) Pair {
	t.Helper()
	tmpl := leaf(host)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	return sign(t, tmpl, ca)
}

// PEM returns the certificate and the key (PKCS #8) in PEM.
func (p Pair) PEM(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func leaf(host string) *x509.Certificate {
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: host}}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	return tmpl
}

// sign gives tmpl a fresh key, a serial and an hour of validity, and signs
// it with parent (itself when parent is zero).
func sign(t testing.TB, tmpl *x509.Certificate, parent Pair) Pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	parentCert, parentKey := tmpl, key
	if parent.Cert != nil {
		parentCert, parentKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{Cert: cert, Key: key}
}
