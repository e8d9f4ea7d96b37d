package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ServerState is one row of "show servers state": what HAProxy would
// restore after a reload, including the admin state that "show stat" hides
// when a drained server is down.
type ServerState struct {
	Backend   string
	Name      string
	Addr      netip.Addr // invalid for an unresolved FQDN
	Port      int
	AdminBits int
	Admin     AdminState
	Weight    int
}

// ServersState reads "show servers state" for backend ("" for all).
func (c *Client) ServersState(ctx context.Context, backend string) ([]ServerState, error) {
	cmd := "show servers state"
	if backend != "" {
		if err := checkName(backend); err != nil {
			return nil, err
		}
		cmd += " " + backend
	}
	var out []ServerState
	err := c.readData(ctx, cmd, false, func(r *bufio.Reader) error {
		var err error
		out, err = ParseServersState(r)
		return err
	})
	return out, err
}

// DumpServersState returns "show servers state" for every backend as HAProxy
// wrote it: the format "server-state-file" loads after a reload. It is
// checked to parse before it is returned, so a truncated dump never
// replaces a good file.
func (c *Client) DumpServersState(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := c.readData(ctx, "show servers state", false, func(r *bufio.Reader) error {
		var err error
		if raw, err = io.ReadAll(r); err != nil {
			return err
		}
		_, err = ParseServersState(bytes.NewReader(raw))
		return err
	})
	return raw, err
}

var stateColumns = [...]string{"be_name", "srv_name", "srv_addr", "srv_admin_state", "srv_uweight", "srv_port"}

// ParseServersState parses the output of "show servers state": a version
// line ("1"), a "# " header, then space-separated rows. Columns are found by
// header name. A row with the wrong number of fields, or a reply without
// HAProxy's closing empty line, is an error.
func ParseServersState(r io.Reader) ([]ServerState, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("parse servers state: no version line: %w", scanErr(sc))
	}
	if v := strings.TrimSpace(sc.Text()); v != "1" {
		return nil, fmt.Errorf("parse servers state: unsupported version %q", v)
	}
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "# ") {
		return nil, fmt.Errorf("parse servers state: no header: %w", scanErr(sc))
	}
	header := strings.Fields(strings.TrimPrefix(sc.Text(), "# "))
	var idx [len(stateColumns)]int
	for i, name := range stateColumns {
		idx[i] = -1
		for j, h := range header {
			if h == name {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("parse servers state header: no column %q", name)
		}
	}
	var out []ServerState
	closed := false
	for line := 3; !closed && sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			closed = true
			continue
		}
		if len(f) != len(header) {
			return nil, fmt.Errorf("parse servers state line %d: %d fields, header has %d", line, len(f), len(header))
		}
		s := ServerState{Backend: f[idx[0]], Name: f[idx[1]]}
		var err error
		if s.AdminBits, err = strconv.Atoi(f[idx[3]]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_admin_state: %w", line, err)
		}
		if s.Weight, err = strconv.Atoi(f[idx[4]]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_uweight: %w", line, err)
		}
		if s.Port, err = strconv.Atoi(f[idx[5]]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_port: %w", line, err)
		}
		if a, err := netip.ParseAddr(f[idx[2]]); err == nil {
			s.Addr = a
		}
		s.Admin = adminFromBits(s.AdminBits)
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse servers state: %w", err)
	}
	if !closed {
		return nil, fmt.Errorf("parse servers state: %w", errNotClosed)
	}
	return out, nil
}

func scanErr(sc *bufio.Scanner) error {
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// Backends reads stats and servers state and joins them, so each server
// carries its true admin state. backend "" reads all backends. A server
// present in one read and not the other (added or deleted in between) is
// left out; the next read sees it.
func (c *Client) Backends(ctx context.Context, backend string) ([]Backend, error) {
	stats, err := c.Stats(ctx, backend)
	if err != nil {
		return nil, err
	}
	states, err := c.ServersState(ctx, backend)
	if err != nil {
		return nil, err
	}
	return JoinState(stats, states), nil
}

// Backend reads one backend with admin states.
func (c *Client) Backend(ctx context.Context, name string) (Backend, error) {
	bs, err := c.Backends(ctx, name)
	if err != nil {
		return Backend{}, err
	}
	for _, b := range bs {
		if b.Name == name {
			return b, nil
		}
	}
	return Backend{}, &CommandError{Command: "show stat " + name, Severity: -1, Reply: "backend missing from stats", Err: ErrNoSuchBackend}
}

// JoinState gives each server of stats its admin state (and address) from
// states; a server missing from either read (added or deleted in between)
// is left out, the next read sees it.
func JoinState(stats []Backend, states []ServerState) []Backend {
	type key struct{ b, s string }
	byKey := make(map[key]ServerState, len(states))
	for _, st := range states {
		byKey[key{st.Backend, st.Name}] = st
	}
	for bi := range stats {
		b := &stats[bi]
		kept := b.Servers[:0]
		for _, s := range b.Servers {
			st, ok := byKey[key{b.Name, s.Name}]
			if !ok {
				continue
			}
			s.AdminBits, s.Admin = st.AdminBits, st.Admin
			if st.Addr.IsValid() {
				s.Addr, s.Port = st.Addr, st.Port
			}
			kept = append(kept, s)
		}
		b.Servers = kept
	}
	return stats
}
