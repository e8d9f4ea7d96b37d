package runtimeapi

import "time"

// SetIdleTimeout sets how long c's connection may stay unused; call it
// before c's first command.
func (c *Client) SetIdleTimeout(d time.Duration) { c.line.idle = d }
