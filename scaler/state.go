package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// stateFile keeps, in state_dir, what HAProxy and the container labels
// cannot tell after a restart: which drains are slotscaler's scale-downs
// and which weights 0 its binds under way (the others are an operator's),
// pauses and pins, the image a rollout
// left running, and a rollout in progress.
const stateFile = "state.json"

// ErrNotSaved wraps a failure to write the state: the change it was for was
// not made (or, for a control, is kept in memory only); the API answers 503.
var ErrNotSaved = errors.New("state not saved")

// StateStore keeps the saved state. Save replaces it whole and atomically:
// a reader, or a restart, sees the old bytes or the new ones, never a part.
type StateStore interface {
	Load() ([]byte, error) // nil, nil when nothing was saved yet
	Save(ctx context.Context, data []byte) error
}

// FileStore is state.json in dir.
type FileStore string

// Load reads state.json; a missing file is a first start.
func (d FileStore) Load() ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(string(d), stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// Save writes state.json atomically.
func (d FileStore) Save(_ context.Context, data []byte) error {
	return writeAtomic(filepath.Join(string(d), stateFile), data, 0o600)
}

func (d FileStore) String() string { return filepath.Join(string(d), stateFile) }

type savedState struct {
	// Version counts the saves; a state never replaces a newer one.
	Version  int                     `json:"version"`
	Services map[string]savedService `json:"services"`
	// Rebuilding: per backend, the HAProxy instances whose rebuild was
	// begun and not completed (several instances only).
	Rebuilding map[string][]string `json:"rebuilding,omitempty"`
}

type savedService struct {
	Image    string               `json:"image,omitempty"`
	Base     string               `json:"base,omitempty"` // the container.image Image replaced: another one in the YAML wins
	Paused   bool                 `json:"paused,omitempty"`
	Pinned   *int                 `json:"pinned,omitempty"`
	Draining map[string]time.Time `json:"draining,omitempty"`
	Binding  map[string]time.Time `json:"binding,omitempty"`
	Held     []string             `json:"held,omitempty"`  // slots an operator set to maint
	Bound    map[string]string    `json:"bound,omitempty"` // where each slot last pointed at a container of ours (addr:port; a bad one is dropped)
	Rollout  *Rollout             `json:"rollout,omitempty"`
}

// persist saves the state. Snapshot and write happen under saveMu, so the
// file only ever moves forward: a snapshot taken later is written later.
// A failure is logged, makes the loop not ready until a save succeeds, and
// is returned wrapping ErrNotSaved.
func (l *Loop) persist() error {
	return l.persistChange(func() (func(), bool) { return nil, true })
}

// persistChange makes change in memory (under mu) and saves the state with
// it, all under saveMu; change reports whether it changed anything (if
// not, nothing is written). When the write fails, undo (if any) runs
// before saveMu is released: no other write can save a change whose own
// save failed and was undone (a drain command's restore of slotscaler's
// intent outside the lock let another writer save the slot as the
// operator's meanwhile: review).
func (l *Loop) persistChange(change func() (undo func(), changed bool)) error {
	if l.store == nil || l.dryRun {
		l.mu.Lock()
		change()
		l.mu.Unlock()
		return nil
	}
	lockOn(l.clock, &l.saveMu)
	defer l.saveMu.Unlock()
	var rebuilding map[string][]string
	if l.mirror != nil {
		rebuilding = l.mirror.Rebuilding()
	}
	l.mu.Lock()
	undo, changed := change()
	if !changed {
		l.mu.Unlock()
		return nil
	}
	l.version++
	st := savedState{Version: l.version, Services: map[string]savedService{}, Rebuilding: rebuilding}
	for _, s := range l.services {
		ss := savedService{Draining: maps.Clone(s.draining), Binding: maps.Clone(s.binding), Held: slices.Sorted(maps.Keys(s.held)), Bound: boundText(s.lastBound)}
		if s.image != s.cfg.Container.Image {
			ss.Image, ss.Base = s.image, s.cfg.Container.Image
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
		err = l.store.Save(context.Background(), append(data, '\n'))
	}
	l.mu.Lock()
	l.saveErr = err
	if err != nil && undo != nil {
		undo()
	}
	l.mu.Unlock()
	if err != nil {
		l.log.Error("state not saved: not ready until a save succeeds", "err", err)
		return fmt.Errorf("%w: %v", ErrNotSaved, err)
	}
	return nil
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

// restore reads the state a previous run left; nothing saved is a first
// start, an unreadable state an error (better stop than forget an intent).
func (l *Loop) restore() error {
	if l.store == nil {
		return nil
	}
	data, err := l.store.Load()
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	if data == nil {
		return nil
	}
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("state %v: %w (move it away to start afresh)", l.store, err)
	}
	l.version = st.Version
	if l.mirror != nil {
		l.mirror.restoreRebuilding(st.Rebuilding)
	}
	for _, s := range l.services {
		ss, ok := st.Services[s.cfg.Name]
		if !ok {
			continue
		}
		if ss.Image != "" && (ss.Base == "" || ss.Base == s.cfg.Container.Image) {
			s.image = ss.Image
		}
		if ss.Pinned != nil {
			s.hold = &hold{paused: ss.Paused, replicas: *ss.Pinned}
		}
		maps.Copy(s.draining, ss.Draining)
		maps.Copy(s.binding, ss.Binding)
		for slot, at := range ss.Bound {
			// A hint, not an intent: a bad one is dropped, never a reason
			// to refuse the state and its intents.
			if ap, err := netip.ParseAddrPort(at); err == nil {
				s.lastBound[slot] = ap
			} else {
				l.log.Warn("state: a slot's last bound address dropped", "service", s.cfg.Name, "slot", slot, "bound", at)
			}
		}
		for _, slot := range ss.Held {
			s.held[slot] = true
		}
		s.rollout = ss.Rollout
	}
	return nil
}

// boundText is lastBound as state.json keeps it.
func boundText(bound map[string]netip.AddrPort) map[string]string {
	if len(bound) == 0 {
		return nil
	}
	out := make(map[string]string, len(bound))
	for slot, at := range bound {
		out[slot] = at.String()
	}
	return out
}
