package scaler

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// ErrNoCapacity means no host has room for another container.
var ErrNoCapacity = errors.New("no host has free capacity")

// HostLoad is a Docker host as placement sees it.
type HostLoad struct {
	Name      string
	Capacity  int  // max_containers
	Total     int  // slotscaler containers on the host, all services
	OfService int  // containers of the service being placed
	Preferred bool // false: only when preferred hosts are full
	Down      bool // engine not answering: never placed on
}

// Place chooses hosts for n new containers of one service: hosts with room
// only, preferred hosts first, then the host with fewest containers of this
// service (spread), then the least loaded, then by name. It returns fewer
// than n hosts and ErrNoCapacity when room runs out; the caller starts only
// what it was given, so nothing is half-created.
func Place(hosts []HostLoad, n int) ([]string, error) {
	hs := slices.Clone(hosts)
	var plan []string
	for range n {
		best := -1
		for i, h := range hs {
			if h.Down || h.Total >= h.Capacity {
				continue
			}
			if best < 0 || placeBefore(h, hs[best]) {
				best = i
			}
		}
		if best < 0 {
			return plan, fmt.Errorf("place %d of %d containers: %w", n-len(plan), n, ErrNoCapacity)
		}
		hs[best].Total++
		hs[best].OfService++
		plan = append(plan, hs[best].Name)
	}
	return plan, nil
}

func placeBefore(a, b HostLoad) bool {
	if a.Preferred != b.Preferred {
		return a.Preferred
	}
	return cmp.Or(
		cmp.Compare(a.OfService, b.OfService),
		cmp.Compare(float64(a.Total)/float64(a.Capacity), float64(b.Total)/float64(b.Capacity)),
		cmp.Compare(a.Name, b.Name),
	) < 0
}

// SlotLoad is a serving slot that could be drained.
type SlotLoad struct {
	Slot          string
	Host          string
	Sessions      int
	HostPreferred bool
	HostTotal     int    // containers on the slot's host
	Generation    string // of the slot's container
}

// Victims chooses n serving slots to drain for a scale-down: fewest
// sessions first (least work cut short), then slots on non-preferred hosts,
// then on the most loaded host, then the highest slot name, so the lowest
// slots stay filled.
func Victims(slots []SlotLoad, n int) []string {
	ss := slices.Clone(slots)
	rank := func(s SlotLoad) int {
		if s.HostPreferred {
			return 1
		}
		return 0
	}
	slices.SortFunc(ss, func(a, b SlotLoad) int {
		return cmp.Or(
			cmp.Compare(a.Sessions, b.Sessions),
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(b.HostTotal, a.HostTotal),
			cmp.Compare(len(b.Slot), len(a.Slot)),
			cmp.Compare(b.Slot, a.Slot),
		)
	})
	var out []string
	for _, s := range ss[:min(n, len(ss))] {
		out = append(out, s.Slot)
	}
	return out
}
