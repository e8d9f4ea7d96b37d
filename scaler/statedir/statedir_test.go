package statedir_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/slotscaler/slotscaler/scaler/statedir"
)

// A value is generated once, kept 0600, and the same for every caller,
// even callers racing to create it.
func TestValueGeneratedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = statedir.Value(dir, statedir.GenerationKeyFile, 32)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("racing callers got %q and %q", got[0], got[i])
		}
	}
	if len(got[0]) != 64 {
		t.Errorf("value %q: want 32 random bytes in hex", got[0])
	}
	fi, err := os.Stat(filepath.Join(dir, statedir.GenerationKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := statedir.Value(dir, statedir.GenerationKeyFile, 32)
	if err != nil || again != got[0] {
		t.Errorf("second read = %q, %v; want the kept %q", again, err, got[0])
	}
	other, _ := statedir.Value(dir, statedir.OwnerFile, 8)
	if other == got[0] || len(other) != 16 {
		t.Errorf("owner %q: want its own 8-byte value", other)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("state_dir holds %d files, want the two values and no temp file left", len(entries))
	}
	if err := os.WriteFile(filepath.Join(dir, statedir.OwnerFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := statedir.Value(dir, statedir.OwnerFile, 8); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty value file: err %v, want it refused", err)
	}
}

// In one process, a second Acquire on the same state_dir fails naming this
// process (flock locks belong to the open file, not the process), InUse
// says so without taking the lock; Close hands the lock over.
func TestAcquireTwice(t *testing.T) {
	dir := t.TempDir()
	first, err := statedir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = statedir.Acquire(dir)
	if err == nil || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Acquire: %v, want an error naming pid %d", err, os.Getpid())
	}
	if holder, inUse := statedir.InUse(dir); !inUse || holder != "pid "+strconv.Itoa(os.Getpid()) {
		t.Errorf("InUse while held = %q, %v; want this pid", holder, inUse)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if holder, inUse := statedir.InUse(dir); inUse {
		t.Errorf("InUse after Close = %q, true", holder)
	}
	second, err := statedir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	second.Close()
}
