package scaler_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
)

// otherGroup is a group this process may give files to that is not its
// own primary group.
func otherGroup(t *testing.T) int {
	if os.Geteuid() == 0 {
		return 65534 // nogroup
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getgid() {
			return g
		}
	}
	t.Skip("not root and in no supplementary group: no second group to give the file to")
	return -1
}

// The server state file is written 0640 and given to the group of its
// directory, so an HAProxy running as another user of that group can read
// it.
func TestServerStateFileReadableByDirGroup(t *testing.T) {
	gid := otherGroup(t)
	dir := filepath.Join(t.TempDir(), "haproxy")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, -1, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "server-state")
	fake := runtimeapi.NewFake()
	fake.DeclareBackend("web", "roundrobin")
	fake.DeclareTemplate("web", "slot", 2, netip.MustParseAddrPort("127.0.0.1:9"))
	dump := func(context.Context) ([]byte, error) { return []byte("1\n# be_id be_name ...\n"), nil }
	lb := scaler.WithServerStateFile(fake, dump, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := lb.SetState(context.Background(), "web", "slot1", runtimeapi.AdminReady); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("server state file not written: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || int(st.Gid) != gid {
		t.Errorf("server state file mode %v group %d, want 0640 and the directory's group %d", fi.Mode().Perm(), st.Gid, gid)
	}
	entries, _ := os.ReadDir(dir)
	if names := len(entries); names != 1 || !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "server-state" }) {
		t.Errorf("directory holds %d entries, want only the state file", names)
	}
}
