// Package scaler is slotscaler's core: the replica decision, business-hours
// schedules and placement, as pure functions over plain values with the
// time passed in. It declares the ports it needs and never imports Docker,
// Prometheus or client-native (make check-deps proves it).
//
// A slot's life, as the control loop will drive it:
//
//	free (maint) --bind+ready--> starting --check UP--> serving
//	     ^                                                 |
//	     +--maint, remove container-- draining <--drain----+
package scaler
