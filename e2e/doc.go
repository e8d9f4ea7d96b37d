// Package e2e holds the end-to-end tests: a real haproxy (Debian's 2.6) on
// loopback, the real Docker engine running the FROM-scratch echo image,
// slotscaler's control loop in the test process, and the test's own load
// generator counting every failed request.
package e2e
