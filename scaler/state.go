package scaler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"
)

// stateFile keeps, in state_dir, what HAProxy and the container labels
// cannot tell after a restart: which drains are slotscaler's scale-downs
// and which weights 0 its binds under way (the others are an operator's),
// pauses and pins, the image a rollout
// left running, and a rollout in progress.
const stateFile = "state.json"

type savedState struct {
	Services map[string]savedService `json:"services"`
}

type savedService struct {
	Image    string               `json:"image,omitempty"`
	Paused   bool                 `json:"paused,omitempty"`
	Pinned   *int                 `json:"pinned,omitempty"`
	Draining map[string]time.Time `json:"draining,omitempty"`
	Binding  map[string]time.Time `json:"binding,omitempty"`
	Rollout  *Rollout             `json:"rollout,omitempty"`
}

// persist writes the state atomically (temp file, fsync, rename); a failure
// is logged and retried at the next change, it never stops the loop.
func (l *Loop) persist() {
	if l.stateDir == "" || l.dryRun {
		return
	}
	l.mu.Lock()
	st := savedState{Services: map[string]savedService{}}
	for _, s := range l.services {
		ss := savedService{Draining: maps.Clone(s.draining), Binding: maps.Clone(s.binding)}
		if s.image != s.cfg.Container.Image {
			ss.Image = s.image
		}
		if s.hold != nil {
			ss.Paused = s.hold.paused
			n := s.hold.replicas
			ss.Pinned = &n
		}
		if s.rollout != nil && s.rollout.active() {
			r := *s.rollout
			ss.Rollout = &r
		}
		st.Services[s.cfg.Name] = ss
	}
	l.mu.Unlock()
	data, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeAtomic(filepath.Join(l.stateDir, stateFile), append(data, '\n'), 0o600)
	}
	if err != nil {
		l.log.Error("state not saved; kept in memory and retried at the next change", "err", err)
	}
}

// writeAtomic replaces path with data so that a reader sees the old file or
// the new one, never a part: temp file in the same directory, fsync, rename.
// The file gets mode perm; when perm lets the group read, the group of its
// directory (see shareWithDirGroup).
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := shareWithDirGroup(tmp, perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// restore reads the state a previous run left; a missing file is a first
// start, an unreadable one an error (better stop than forget an intent).
func (l *Loop) restore() error {
	if l.stateDir == "" {
		return nil
	}
	path := filepath.Join(l.stateDir, stateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("state file %s: %w (move it away to start afresh)", path, err)
	}
	for _, s := range l.services {
		ss, ok := st.Services[s.cfg.Name]
		if !ok {
			continue
		}
		if ss.Image != "" {
			s.image = ss.Image
		}
		if ss.Pinned != nil {
			s.hold = &hold{paused: ss.Paused, replicas: *ss.Pinned}
		}
		maps.Copy(s.draining, ss.Draining)
		maps.Copy(s.binding, ss.Binding)
		s.rollout = ss.Rollout
	}
	return nil
}
