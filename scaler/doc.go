// Package scaler is slotscaler's core. The replica decision, business-hours
// schedules, placement and the plan (each slot's state and the actions a
// tick takes) are pure functions over plain values with the time passed in.
// The control loop (Loop) observes, drives them and applies the plan over
// two small ports, LB (HAProxy's Runtime API) and Engine (a Docker host),
// and adds the manual controls, rollouts and the intents kept in
// state_dir. It declares the types those ports carry and never imports an
// adapter: Docker, Prometheus, client-native or runtimeapi (make
// check-deps proves it; scaler/haproxy and scaler/docker adapt them).
//
// A slot's life, as the loop drives it:
//
//	free (maint) --bind at weight 0, ready--> starting --check passed, weight 100%--> serving
//	     ^                                                                                |
//	     +-------------- maint, SIGTERM, remove container <-- draining <--drain-----------+
package scaler
