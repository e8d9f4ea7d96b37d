// Package haproxy reads haproxy.cfg with client-native's config-parser and
// checks the scaler config against it: backends exist, template slots are
// declared "disabled" with "check" and are enough for max_replicas, and
// dynamic services use a balance algorithm that accepts dynamic servers.
// It only reads; slotscaler never rewrites haproxy.cfg.
package haproxy
