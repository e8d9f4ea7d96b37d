// Package wake is slotscaler's wake listener: one per service with a wake
// block, at wake.listen, where HAProxy's backup server "wake" sends the
// requests that find no serving slot (the service is at zero, or its last
// replica drains).
//
// For a "mode http" backend it is an HTTP server that holds each request
// until the loop reports a serving slot, then passes it to that slot's
// container with a reverse proxy: any method, bodies streamed (never
// buffered), WebSocket and other upgrades carried through. For a "mode
// tcp" backend it holds each connection and then splices it to the
// container. Bounds: at most max_pending held (beyond: 503 with
// Retry-After, or a closed connection in tcp mode), at most timeout each
// (then 503 with a body saying so), and a closed service (max 0 in force)
// answers 503 at once.
//
// It owns its listener and the goroutines serving it; it never talks to
// HAProxy or Docker: the loop (a Waker) starts replicas and says where
// held requests go.
package wake
