package main

import (
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/internal/scalertest"
	"github.com/slotscaler/slotscaler/scaler"
)

// lbctl status against a running loop: a service at zero with a wake
// block shows "idle 0, wakes on request"; pinned at 0, closed.
func TestStatusAtZero(t *testing.T) {
	config := strings.Replace(fixtureConfig, "min_replicas: 2,", "min_replicas: 0, wake: {listen: 127.0.0.1:9301},", 1)
	f := newAPIFixtureFor(t, config, "  idle 0, wakes on request\n", scalertest.Options{})
	out, err := f.run("status", "web")
	if err != nil || !strings.Contains(out, "replicas 0 serving, 0 starting") {
		t.Errorf("status at zero: %v\n%s", err, out)
	}
	if _, err := f.run("scale", "web", "0"); err != nil {
		t.Fatal(err)
	}
	if out, err := f.run("status", "web"); err != nil || !strings.Contains(out, "  idle 0, closed while pinned: requests get 503\n") {
		t.Errorf("status pinned at 0: %v\n%s", err, out)
	}
}

func TestIdleNote(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    scaler.ServiceStatus
		want string
	}{
		{"at zero", scaler.ServiceStatus{Min: 0, Max: 2, Control: "auto"}, "0, wakes on request"},
		{"starting from zero", scaler.ServiceStatus{Min: 0, Max: 2, Control: "auto", Replicas: scaler.Replicas{Starting: 1}}, ""},
		{"serving", scaler.ServiceStatus{Min: 0, Max: 2, Control: "auto", Replicas: scaler.Replicas{Serving: 1}}, ""},
		{"closed at night", scaler.ServiceStatus{Min: 0, Max: 0, Control: "auto"}, "0, closed: max 0 in force, requests get 503"},
		{"pinned at zero", scaler.ServiceStatus{Min: 0, Max: 2, Control: "pinned", Desired: 0}, "0, closed while pinned: requests get 503"},
		{"min 1 never idle", scaler.ServiceStatus{Min: 1, Max: 2, Control: "auto"}, ""},
		{"tick skipped", scaler.ServiceStatus{Min: 0, Max: 2, Control: "auto", Error: "stats read failed"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := idleNote(tt.s); got != tt.want {
				t.Errorf("idleNote = %q, want %q", got, tt.want)
			}
		})
	}
}
