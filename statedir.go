package main

import (
	"fmt"

	"github.com/slotscaler/slotscaler/scaler/statedir"
)

// instance is what this slotscaler keeps in state_dir besides the loop's
// intents: the lock that makes it the only one there, its owner ID, and the
// key of the generation label.
type instance struct {
	lock          *statedir.Lock // nil for a dry run
	owner         string
	generationKey []byte
}

// openStateDir locks state_dir (a second instance fails naming the first
// one's PID) and reads or creates the owner ID and generation key. A dry
// run changes nothing, so it takes no lock and may run next to the real
// instance, seeing the containers it sees.
func openStateDir(dir string, dryRun bool) (*instance, error) {
	in := &instance{}
	if !dryRun {
		lock, err := statedir.Acquire(dir)
		if err != nil {
			return nil, err
		}
		in.lock = lock
	}
	owner, err := statedir.Value(dir, statedir.OwnerFile, 8)
	if err == nil {
		in.owner = owner
		var key string
		key, err = statedir.Value(dir, statedir.GenerationKeyFile, 32)
		in.generationKey = []byte(key)
	}
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	return in, nil
}

// Close releases the lock.
func (in *instance) Close() {
	if in.lock != nil {
		in.lock.Close()
	}
}
