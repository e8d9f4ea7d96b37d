package main

import "github.com/slotscaler/slotscaler/scaler"

// idleNote says how a service with no replica takes requests: a min of 0
// in force needs a wake block (config refuses it otherwise), so such a
// service wakes on the first request, unless a max of 0 or a pin or pause
// at 0 closes it. "" while replicas serve or start.
func idleNote(s scaler.ServiceStatus) string {
	switch {
	case s.Replicas.Serving+s.Replicas.Starting > 0 || s.Error != "":
		return ""
	case s.Max == 0 && s.Min == 0:
		return "0, closed: max 0 in force, requests get 503"
	case (s.Control == scaler.ControlPinned || s.Control == scaler.ControlPaused) && s.Desired == 0 && s.Min == 0:
		return "0, closed while " + string(s.Control) + ": requests get 503"
	case s.Min == 0 && s.Control == scaler.ControlAuto:
		return "0, wakes on request"
	}
	return ""
}
