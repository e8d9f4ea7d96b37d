package scaler

import (
	"net/netip"
	"time"
)

// What slotscaler intends for its slots (its own drains and maints, binds
// under way, where each slot last pointed at its container), kept in
// memory and saved in state_dir: after a restart, a drain, maint or weight
// 0 not recorded is an operator's.

// retired ends a maint of slotscaler's whose containers are gone: its
// draining and binding intents go, and first the slot's last bound
// address, so that a maint found there later is not taken for an
// operator's.
func (l *Loop) retired(s *service, slot string) {
	l.mu.Lock()
	delete(s.lastBound, slot)
	l.mu.Unlock()
	l.changeIntents([]intentChange{{s.draining, slot, time.Time{}}, {s.binding, slot, time.Time{}}})
}

// boundTo records where a slot points at its container. It is saved with
// the next write of the state: a restarted slotscaler still tells an
// operator's maint there from a free slot after the container died.
func (l *Loop) boundTo(s *service, slot string, at netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.lastBound[slot] = at
}

// bindIntents are the intents of the slots of backend's service that the
// Mirror's merge uses, asked once per backend and read: a bind under way
// that may not have got to state ready on every instance (the merge takes
// a maint beside a drain there for the bind's step not taken yet), and
// where each slot last pointed at a container of slotscaler's.
//
// Invariant: operator intents kept. A bind's address is noted only once
// its state ready took on every instance (start deletes it before the
// bind, and the tick notes it only for a slot out of maint in the merged
// view): with it noted, the bind has no maint left to lift anywhere, and a
// maint beside a drain is an operator's. Counted as a bind's step, an
// operator's maint made on one instance over their lbctl drain of a bind
// that a kill cut short after its ready was brought back to the drain
// (sim seed 5490, TestScenarioOperatorMaintAfterDrainOfReadiedBind).
func (l *Loop) bindIntents(backend string) map[string]bindIntent {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.serviceOfBackendLocked(backend)
	if s == nil {
		return nil
	}
	out := make(map[string]bindIntent, len(s.binding)+len(s.lastBound))
	for slot, at := range s.lastBound {
		out[slot] = bindIntent{bound: at}
	}
	for slot := range s.binding {
		if _, readied := s.lastBound[slot]; !readied {
			out[slot] = bindIntent{binding: true}
		}
	}
	return out
}

// has reports whether slot has an intent in intents (a drain or maint of
// slotscaler's, a bind under way).
func (l *Loop) has(intents map[string]time.Time, slot string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := intents[slot]
	return ok
}

// setIntent records (or, with a zero time, forgets) an intent and saves it
// when it changed: after a restart, a drain or a weight 0 not recorded is an
// operator's. A recorded intent that could not be saved is an error (wrapping
// ErrNotSaved): the change it was for must not be made.
func (l *Loop) setIntent(intents map[string]time.Time, slot string, since time.Time) error {
	return l.changeIntents([]intentChange{{intents, slot, since}})
}

// intentChange records (since set) or forgets (zero) the intent of a slot
// in one of a service's maps of intents.
type intentChange struct {
	intents map[string]time.Time
	slot    string
	since   time.Time
}

// changeIntents is setIntent for several slots of any services, in one
// save. Recorded and saved as one step (persistChange): if the save fails,
// the new intents are gone from memory before any other write can save
// them, as the changes they were for are not made (kept, they would make an
// operator's later drain of the slot pass for slotscaler's: sim). A
// forgotten one stays forgotten (its purpose ended: kept, a bind's done
// weight 0 intent took an operator's weight 0 for the bind's, sim seed
// 983); the next save writes it.
func (l *Loop) changeIntents(changes []intentChange) error {
	return l.persistChange(func() (func(), bool) {
		changed := false
		var added []intentChange
		for _, c := range changes {
			_, had := c.intents[c.slot]
			if c.since.IsZero() {
				delete(c.intents, c.slot)
			} else {
				c.intents[c.slot] = c.since
			}
			if had != !c.since.IsZero() {
				changed = true
				if !had {
					added = append(added, c)
				}
			}
		}
		return func() {
			for _, c := range added {
				delete(c.intents, c.slot)
			}
		}, changed
	})
}

// forget forgets an intent in memory only, for a later save to write (a
// forgotten intent's purpose ended); true when there was one.
func (l *Loop) forget(intents map[string]time.Time, slot string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, had := intents[slot]
	delete(intents, slot)
	return had
}
