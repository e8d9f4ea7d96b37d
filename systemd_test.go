package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// The unit's ReadWritePaths cover every directory slotscaler writes: the
// default state_dir and each directory its install steps create for it
// (the server state file's). ProtectSystem=strict makes anything else
// read-only, where a write fails only at run time.
func TestSystemdUnitWritablePaths(t *testing.T) {
	f, err := os.Open("examples/systemd/slotscaler.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var writable, created []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "ReadWritePaths="); ok {
			for _, p := range strings.Fields(v) {
				writable = append(writable, strings.TrimPrefix(p, "-"))
			}
		}
		if _, v, ok := strings.Cut(line, "install -d "); ok && strings.HasPrefix(line, "#") {
			fields := strings.Fields(v)
			created = append(created, fields[len(fields)-1])
		}
	}
	covered := func(path string) bool {
		for _, w := range writable {
			if rel, err := filepath.Rel(w, path); err == nil && !strings.HasPrefix(rel, "..") {
				return true
			}
		}
		return false
	}
	if len(created) < 2 {
		t.Fatalf("install steps create %v; want state_dir and the server state file's directory", created)
	}
	for _, dir := range append(created, config.DefaultStateDir) {
		if !covered(dir) {
			t.Errorf("%s is not under ReadWritePaths %v", dir, writable)
		}
	}
}
