// Package nginxtest runs the real nginx of this machine with
// examples/nginx/slotscaler-front.conf for tests: a certificate for the
// example's server name made on the spot, both listen ports moved to free
// loopback ports, the upstream pointed at the test's HAProxy, and every
// file nginx writes in a temp directory. The process is stopped by PID in
// t.Cleanup and its log printed only when the test failed.
package nginxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/tooltest"
)

// ServerName is the server_name of the example's TLS server.
const ServerName = "www.example.com"

// Front is the example front written for one test.
type Front struct {
	Dir       string // temp directory: config, certificate, pid, temp paths
	Config    string // the main nginx.conf including the example
	HTTPSAddr string // 127.0.0.1:PORT of the example's TLS server
	HTTPAddr  string // 127.0.0.1:PORT of the example's redirect to https
	TLS       *tls.Config
	bin       string
	cmd       *exec.Cmd
	log       *haproxytest.SyncBuffer
}

// Binary returns the nginx path (fails on CI, skips elsewhere when missing).
func Binary(t testing.TB) string { return tooltest.Path(t, "nginx", "nginx") }

// Write writes examples/nginx/slotscaler-front.conf with its upstream set
// to upstream (host:port of HAProxy's public frontend), inside a main
// config of its own, without starting nginx.
func Write(t testing.TB, upstream string) *Front {
	t.Helper()
	f := &Front{
		bin:       Binary(t),
		Dir:       t.TempDir(),
		HTTPSAddr: fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t)),
		HTTPAddr:  fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t)),
		log:       &haproxytest.SyncBuffer{},
	}
	// nginx's workers run as nobody when started by root: let them in.
	if err := os.Chmod(f.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key, pool := certificate(t)
	certPath, keyPath := filepath.Join(f.Dir, "front.pem"), filepath.Join(f.Dir, "front.key")
	writeFile(t, certPath, cert, 0o644)
	writeFile(t, keyPath, key, 0o600)
	f.TLS = &tls.Config{RootCAs: pool, ServerName: ServerName}

	_, file, _, _ := runtime.Caller(0)
	example, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "examples", "nginx", "slotscaler-front.conf"))
	if err != nil {
		t.Fatal(err)
	}
	front := string(example)
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:8088;", "server " + upstream + ";"},
		{"listen 80;", "listen " + f.HTTPAddr + ";"},
		{"listen 443 ssl http2;", "listen " + f.HTTPSAddr + " ssl http2;"},
		{"/etc/ssl/certs/www.example.com.pem", certPath},
		{"/etc/ssl/private/www.example.com.key", keyPath},
	} {
		if strings.Count(front, r.old) != 1 {
			t.Fatalf("examples/nginx/slotscaler-front.conf: want %q once (the test substitutes it)", r.old)
		}
		front = strings.Replace(front, r.old, r.new, 1)
	}
	frontPath := filepath.Join(f.Dir, "slotscaler-front.conf")
	writeFile(t, frontPath, []byte(front), 0o644)

	var temps strings.Builder
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "  %s_temp_path %s;\n", kind, filepath.Join(f.Dir, kind))
	}
	f.Config = filepath.Join(f.Dir, "nginx.conf")
	writeFile(t, f.Config, fmt.Appendf(nil, `# main config of the test; the example is included as from /etc/nginx/conf.d/
pid %s;
error_log stderr notice;
worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
%s  include %s;
}
`, filepath.Join(f.Dir, "nginx.pid"), temps.String(), frontPath), 0o644)
	return f
}

// Check runs "nginx -t" on the config and returns its output.
func (f *Front) Check(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(f.bin, "-t", "-p", f.Dir, "-c", f.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	return string(out)
}

// Start checks the config, starts nginx in the foreground and waits until
// its TLS port accepts connections.
func (f *Front) Start(t testing.TB) {
	t.Helper()
	f.Check(t)
	f.cmd = exec.Command(f.bin, "-p", f.Dir, "-c", f.Config, "-g", "daemon off;")
	f.cmd.Stdout, f.cmd.Stderr = f.log, f.log
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		// SIGQUIT: graceful stop; the workers leave with the master.
		haproxytest.StopProcess(f.cmd, syscall.SIGQUIT, 10*time.Second)
		if t.Failed() {
			t.Logf("nginx log:\n%s", f.log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", f.HTTPSAddr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s; log:\n%s", f.HTTPSAddr, f.log.String())
		}
	}
}

// URL is the https address of the front.
func (f *Front) URL() string { return "https://" + f.HTTPSAddr + "/" }

// certificate makes a self-signed certificate for ServerName and returns
// it, its key (both PEM) and a pool that trusts it.
func certificate(t testing.TB) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: ServerName},
		DNSNames:              []string{ServerName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pool
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}
