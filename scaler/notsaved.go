package scaler

import "errors"

// ErrNotSaved wraps a control change that was made but could not be
// written to state.json. Placeholder for the lead's definition (issue 12):
// drop this file when theirs lands.
var ErrNotSaved = errors.New("state not saved")
