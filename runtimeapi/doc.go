// Package runtimeapi talks to HAProxy's Runtime API (the stats socket): it
// reads per-backend and per-server statistics and admin state, and binds,
// drains, parks, adds and deletes server slots. It owns nothing else: it does
// not decide, place or remember anything.
//
// The transport is our own, not client-native's runtime client, because the
// traps measured in shared/HAPROXY-NOTES.md make that client unsafe for a
// control loop:
//
//   - it dials unix sockets only; we also dial tcp://127.0.0.1:PORT;
//   - it has a fixed 30 s timeout, ignores contexts and swallows read errors,
//     so a truncated reply comes back as a successful partial result; we
//     honour the caller's context, apply our own deadline and return every
//     read error, so a partial stats read is an error, never data;
//   - it treats severity [4] replies as success (a bad address passed to
//     "set server addr" returns nil); we classify every reply ourselves and
//     take addresses as netip.Addr so an invalid one cannot be sent;
//   - its GetStats decodes each CSV row with mapstructure (about 30x slower
//     than reading the socket, hundreds of MB per call at 4,000 servers) and
//     drops rows with quoted fields, so a server whose check reason contains
//     a comma vanishes. We stream the socket through encoding/csv, keeping
//     only the columns we use, while HAProxy is still writing.
//   - GetServersState decodes srv_admin_state as hex (a drained slot reads
//     as maint); we parse "show servers state" by its header.
//
// client-native's runtime client is still measured side by side in the
// benchmarks, so the choice stays honest as either side changes.
//
// A Client keeps one connection to its HAProxy in the CLI's interactive
// "prompt" mode, where each reply ends at a "> " prompt, and sends one
// command at a time over it; it is safe for concurrent use. conn.go says
// when a connection is replaced, and why a command is never sent twice.
// Batch sends many server commands (Command, built by SetAddrCommand and
// its siblings) over that connection in one go and returns each
// command's reply and error apart. Fake implements the same
// operations in memory with HAProxy's semantics and error replies; a
// contract test runs one scenario on both and compares what it observes.
package runtimeapi
