// Package statedir owns the files in state_dir that are not the loop's
// intents: the lock that keeps one slotscaler per state_dir, and values
// generated once and kept for good (the owner ID that labels this
// instance's containers, the key of the generation label). The loop's
// state.json lives next to them but is written by package scaler.
package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Files in state_dir.
const (
	LockFile          = "lock"           // flock'ed by the running instance; holds its PID
	OwnerFile         = "owner"          // the owner ID on this instance's containers
	GenerationKeyFile = "generation.key" // the HMAC key of the generation label
)

// Lock is the held lock on a state_dir; it ends with Close or the process.
type Lock struct {
	f *os.File
}

// Acquire takes the state_dir lock without waiting and records this
// process's PID in it. When another process holds it, the error names that
// process's PID. The lock is an flock on an open file: the kernel drops it
// when the holder exits, however it exits, so a stale file never blocks.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state_dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state_dir %s is in use by another slotscaler (%s; lock %s): one instance per state_dir", dir, holder(f), path)
		}
		return nil, fmt.Errorf("state_dir lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state_dir lock %s: record pid: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// InUse reports whether a process holds the lock on dir, and names it,
// without taking the lock or writing anything (for check).
func InUse(dir string) (holderDesc string, inUse bool) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return "", false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return holder(f), true
	}
	return "", false // a shared lock, if taken, ends with Close
}

// holder describes the process named in a held lock file.
func holder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "pid not recorded yet"
}

// Close releases the lock. The file stays: removing it would let a third
// instance lock a new file while a second still waits on the old one.
func (l *Lock) Close() error { return l.f.Close() }

// Value returns the value kept in state_dir under name, generating it
// first (size random bytes, hex) when there is none. The file is created
// 0600 and never rewritten; two processes creating it at once agree on
// one value, because it is linked into place only if no file is there.
func Value(dir, name string, size int) (string, error) {
	path := filepath.Join(dir, name)
	v, err := read(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return v, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(b) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return read(path)
}

// CheckValues reads the values kept in state_dir as Value would, without
// generating a missing one (for check): one error per file Value would
// refuse.
func CheckValues(dir string) []error {
	var errs []error
	for _, name := range []string{OwnerFile, GenerationKeyFile} {
		if _, err := read(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}

func read(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s is empty (remove it to generate a new value)", path)
	}
	return v, nil
}
