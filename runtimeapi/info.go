package runtimeapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Info reads "show info".
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.readData(ctx, "show info", true, func(r *bufio.Reader) error {
		var err error
		info, err = ParseInfo(r)
		return err
	})
	return info, err
}

// ParseInfo parses "show info" ("Key: value" lines). Pid and
// Start_time_sec must be present: restart detection depends on them.
func ParseInfo(r io.Reader) (Info, error) {
	var (
		info         Info
		havePID      bool
		haveStart    bool
		sc           = bufio.NewScanner(r)
		parseFailure error
	)
	closed := false
	for !closed && sc.Scan() {
		if sc.Text() == "" {
			closed = true
			continue
		}
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "Version":
			info.Version = v
		case "Pid":
			var n int64
			n, err = strconv.ParseInt(v, 10, 64)
			info.PID, havePID = int(n), err == nil
		case "Start_time_sec":
			info.StartTime, err = strconv.ParseInt(v, 10, 64)
			haveStart = err == nil
		case "Uptime_sec":
			info.Uptime, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil && parseFailure == nil {
			parseFailure = fmt.Errorf("parse info %s: %w", k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Info{}, fmt.Errorf("parse info: %w", err)
	}
	if parseFailure != nil {
		return Info{}, parseFailure
	}
	if !closed {
		return Info{}, fmt.Errorf("parse info: %w", errNotClosed)
	}
	if !havePID || !haveStart {
		return Info{}, fmt.Errorf("parse info: Pid or Start_time_sec missing")
	}
	return info, nil
}
