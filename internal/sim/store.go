package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
)

// store is state_dir: one file, replaced whole (as the real one is, by
// rename). A write takes time, so two writers of one process can overlap;
// a write may fail (disk full) while faults are on.
type store struct {
	w       *world
	data    []byte
	version int // of data
	failP   float64
}

// procStore is one slotscaler process's scaler.StateStore.
type procStore struct {
	s    *store
	proc int
}

var _ scaler.StateStore = procStore{}

func (p procStore) Load() ([]byte, error) { return p.s.data, nil }

func (p procStore) Save(_ context.Context, data []byte) error {
	w := p.s.w
	if !w.sched.park(p.proc, w.sched.between(100*time.Microsecond, 20*time.Millisecond)) {
		return errKilled
	}
	if w.faults && w.sched.chance(p.s.failP) {
		return fmt.Errorf("write state: no space left on device")
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		w.violate("state_dir parses", "a save wrote unparsable state: %v", err)
	}
	if v.Version <= p.s.version {
		w.violate("intents never go back in time", "state version %d written over version %d", v.Version, p.s.version)
	}
	p.s.data, p.s.version = data, v.Version
	return nil
}
