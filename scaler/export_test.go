package scaler

// Backoff is backoff, for the external tests.
var Backoff = backoff

// EarlyTick and TickSeen are earlyTick and tickSeen, for the external tests.
var EarlyTick = earlyTick

type TickSeen = tickSeen
