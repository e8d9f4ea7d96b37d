package scaler

// Backoff is backoff, for the external tests.
var Backoff = backoff
