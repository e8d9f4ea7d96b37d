// Package tooltest finds the external programs tests run (nginx,
// prometheus, systemd-analyze, docker-compose, the docker CLI).
// scripts/setup.sh installs them, so on CI (CI=true) a missing one fails
// the test; on a developer's machine the test is skipped with the command
// that installs it.
package tooltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Path returns the path of the program name, looked up in PATH and then in
// /usr/sbin and /sbin (where Debian puts nginx, which a non-root PATH may
// lack). debianPackage names the package that ships it.
func Path(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " not installed (apt-get install -y " + debianPackage + "; scripts/setup.sh does it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
