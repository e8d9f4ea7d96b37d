// Package bench holds the figures `make bench` prints side by side in one
// run: the cost of one control-loop tick against the bare socket read it
// cannot avoid, the resident memory of a real `slotscaler run` on the same
// config, and a membership-churn table comparing HAProxy reloads with
// slotscaler's Runtime API changes under load. Its code is only tests and
// benchmarks; nothing here ships.
package bench
