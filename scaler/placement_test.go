package scaler

import (
	"errors"
	"slices"
	"testing"
)

func TestPlace(t *testing.T) {
	for _, tt := range []struct {
		name   string
		hosts  []HostLoad
		n      int
		want   []string
		noRoom bool
	}{
		{"spread the service", []HostLoad{{Name: "a", Capacity: 6, Total: 1, OfService: 1, Preferred: true}, {Name: "b", Capacity: 6, Total: 3, Preferred: true}}, 2, []string{"b", "a"}, false},
		{"least loaded on a tie", []HostLoad{{Name: "a", Capacity: 4, Total: 3, Preferred: true}, {Name: "b", Capacity: 6, Total: 1, Preferred: true}}, 1, []string{"b"}, false},
		{"non-preferred last", []HostLoad{{Name: "spare", Capacity: 9, Preferred: false}, {Name: "a", Capacity: 2, Total: 1, OfService: 1, Preferred: true}}, 2, []string{"a", "spare"}, false},
		{"down hosts skipped", []HostLoad{{Name: "a", Capacity: 9, Preferred: true, Down: true}, {Name: "b", Capacity: 1, Preferred: true}}, 1, []string{"b"}, false},
		{"no room: partial plan and error", []HostLoad{{Name: "a", Capacity: 2, Total: 1, Preferred: true}}, 3, []string{"a"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Place(tt.hosts, tt.n)
			if !slices.Equal(got, tt.want) || errors.Is(err, ErrNoCapacity) != tt.noRoom {
				t.Errorf("Place = %v, %v; want %v, no room %v", got, err, tt.want, tt.noRoom)
			}
		})
	}
}

func TestVictims(t *testing.T) {
	slots := []SlotLoad{
		{Slot: "slot1", Host: "a", Sessions: 0, HostPreferred: true, HostTotal: 2},
		{Slot: "slot2", Host: "a", Sessions: 5, HostPreferred: true, HostTotal: 2},
		{Slot: "slot3", Host: "spare", Sessions: 0, HostPreferred: false, HostTotal: 1},
		{Slot: "slot10", Host: "b", Sessions: 0, HostPreferred: true, HostTotal: 2},
	}
	if got, want := Victims(slots, 3), []string{"slot3", "slot10", "slot1"}; !slices.Equal(got, want) {
		t.Errorf("Victims = %v, want %v", got, want)
	}
	if got := Victims(slots, 9); len(got) != 4 {
		t.Errorf("Victims(9) = %v, want all 4", got)
	}
}
