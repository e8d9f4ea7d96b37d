package scaler

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ServerStateFileMode is the mode of HAProxy's server state file: HAProxy
// may run as another user than slotscaler, so the file's group may read it.
// The group is the one of the file's directory, chosen by the operator
// (chgrp haproxy /var/lib/haproxy): no config key, and the same rule as a
// setgid directory, which many distributions use for such shared paths.
const ServerStateFileMode os.FileMode = 0o640

// shareWithDirGroup gives f mode perm and, when perm lets the group in,
// the group of f's directory. A process may only give a file to a group
// it is a member of: the error says so.
func shareWithDirGroup(f *os.File, perm os.FileMode) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if perm&0o070 == 0 {
		return nil
	}
	dir := filepath.Dir(f.Name())
	dirInfo, err := os.Stat(dir)
	if err != nil {
		return err
	}
	fileInfo, err := f.Stat()
	if err != nil {
		return err
	}
	want, ok1 := dirInfo.Sys().(*syscall.Stat_t)
	have, ok2 := fileInfo.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || want.Gid == have.Gid {
		return nil
	}
	if err := f.Chown(-1, int(want.Gid)); err != nil {
		return fmt.Errorf("give the file to group %d of %s: %w (run slotscaler with that group among its groups, e.g. SupplementaryGroups= in its unit)", want.Gid, dir, err)
	}
	return nil
}
