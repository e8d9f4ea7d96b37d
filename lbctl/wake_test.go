package main

import (
	"testing"

	"github.com/slotscaler/slotscaler/scaler"
)

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
