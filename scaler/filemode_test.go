package scaler_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/haproxy"
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
	lb := scaler.WithServerStateFile(haproxy.New(fake), dump, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := lb.Apply(context.Background(), []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminReady)})[0]; err != nil {
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

// helperDirEnv makes the test binary a writer of the server state file in
// that directory (see TestServerStateFileGroupRefused).
const helperDirEnv = "SLOTSCALER_TEST_SERVER_STATE_DIR"

// A slotscaler that is not a member of the directory's group cannot give
// the file to it: the write fails with an error saying what to change, and
// leaves nothing behind. The writer runs as nobody, in no group.
func TestServerStateFileGroupRefused(t *testing.T) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		writeServerState(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the writer as another user")
	}
	base, err := os.MkdirTemp("", "statefile-group")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin, dir := filepath.Join(base, "scaler.test"), filepath.Join(base, "haproxy")
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 0); err != nil { // nobody may write there; the group is root's
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestServerStateFileGroupRefused$", "-test.v")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("writer as nobody: %v\n%s", err, out)
	}
	t.Logf("writer as nobody:\n%s", out)
	for _, want := range []string{"give the file to group 0 of " + dir, "operation not permitted", "SupplementaryGroups="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("writer's log lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused write left %d files", len(entries))
	}
}

// writeServerState makes one slot change through WithServerStateFile and
// logs to stderr what went wrong with the file.
func writeServerState(t *testing.T, dir string) {
	fake := runtimeapi.NewFake()
	fake.DeclareBackend("web", "roundrobin")
	fake.DeclareTemplate("web", "slot", 1, netip.MustParseAddrPort("127.0.0.1:9"))
	dump := func(context.Context) ([]byte, error) { return []byte("1\n"), nil }
	lb := scaler.WithServerStateFile(haproxy.New(fake), dump, filepath.Join(dir, "server-state"), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := lb.Apply(context.Background(), []scaler.Change{scaler.SetState("web", "slot1", scaler.AdminReady)})[0]; err != nil {
		t.Fatal(err)
	}
}
