package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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
	return c.serversState(ctx, backend, 0)
}

// serversState is ServersState with room for rows rows.
func (c *Client) serversState(ctx context.Context, backend string, rows int) ([]ServerState, error) {
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
		out, err = parseServersState(r, rows)
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

const (
	colBeName = iota
	colSrvName
	colSrvAddr
	colSrvAdmin
	colSrvWeight
	colSrvPort
)

// ParseServersState parses the output of "show servers state": a version
// line ("1"), a "# " header, then space-separated rows. Columns are found by
// header name. A row with the wrong number of fields, or a reply without
// HAProxy's closing empty line, is an error.
func ParseServersState(r io.Reader) ([]ServerState, error) {
	return parseServersState(r, 0)
}

// parseServersState is ParseServersState with room for rows rows.
func parseServersState(r io.Reader, rows int) ([]ServerState, error) {
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
	var p stateParser
	if err := p.index(strings.Fields(strings.TrimPrefix(sc.Text(), "# "))); err != nil {
		return nil, err
	}
	var out []ServerState
	if rows > 0 {
		out = make([]ServerState, 0, rows)
	}
	closed := false
	for line := 3; !closed && sc.Scan(); line++ {
		n := p.split(sc.Text())
		if n == 0 {
			closed = true
			continue
		}
		if n != len(p.slot) {
			return nil, fmt.Errorf("parse servers state line %d: %d fields, header has %d", line, n, len(p.slot))
		}
		s := ServerState{Backend: p.cols[colBeName], Name: p.cols[colSrvName]}
		var err error
		if s.AdminBits, err = strconv.Atoi(p.cols[colSrvAdmin]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_admin_state: %w", line, err)
		}
		if s.Weight, err = strconv.Atoi(p.cols[colSrvWeight]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_uweight: %w", line, err)
		}
		if s.Port, err = strconv.Atoi(p.cols[colSrvPort]); err != nil {
			return nil, fmt.Errorf("parse servers state line %d: srv_port: %w", line, err)
		}
		if a, err := netip.ParseAddr(p.cols[colSrvAddr]); err == nil {
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

// stateParser splits one "show servers state" row, keeping the columns it
// needs.
type stateParser struct {
	slot []int8                    // header position -> stateColumns index, or -1
	cols [len(stateColumns)]string // the kept fields of the current row
}

func (p *stateParser) index(header []string) error {
	p.slot = make([]int8, len(header))
	for j := range p.slot {
		p.slot[j] = int8(slices.Index(stateColumns[:], header[j]))
	}
	for i, name := range stateColumns {
		if !slices.Contains(p.slot, int8(i)) {
			return fmt.Errorf("parse servers state header: no column %q", name)
		}
	}
	return nil
}

// split splits row as strings.Fields does, keeps its columns and returns
// its number of fields. An ASCII row (HAProxy writes nothing else) is
// split in place.
func (p *stateParser) split(row string) int {
	n, start := 0, -1 // start of the current field; -1 between fields
	for i := range len(row) {
		switch c := row[i]; {
		case c >= utf8.RuneSelf:
			f := strings.Fields(row)
			for j := range f {
				p.keep(j, f[j])
			}
			return len(f)
		case c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			if start >= 0 {
				p.keep(n, row[start:i])
				n, start = n+1, -1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		p.keep(n, row[start:])
		n++
	}
	return n
}

func (p *stateParser) keep(j int, field string) {
	if j < len(p.slot) && p.slot[j] >= 0 {
		p.cols[p.slot[j]] = field
	}
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
	servers := 0 // as many rows of state, but for servers added or deleted in between
	for _, b := range stats {
		servers += len(b.Servers)
	}
	states, err := c.serversState(ctx, backend, servers)
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
	if sameServers(stats, states) {
		// Both replies list the servers in HAProxy's order: join them side
		// by side, without a map (a millisecond for 4,000 servers).
		i := 0
		for bi := range stats {
			for si := range stats[bi].Servers {
				withState(&stats[bi].Servers[si], &states[i])
				i++
			}
		}
		return stats
	}
	type key struct{ b, s string }
	byKey := make(map[key]int, len(states)) // index in states: a small map
	for i, st := range states {
		byKey[key{st.Backend, st.Name}] = i
	}
	for bi := range stats {
		b := &stats[bi]
		kept := b.Servers[:0]
		for _, s := range b.Servers {
			i, ok := byKey[key{b.Name, s.Name}]
			if !ok {
				continue
			}
			withState(&s, &states[i])
			kept = append(kept, s)
		}
		b.Servers = kept
	}
	return stats
}

// sameServers reports whether states name the servers of stats, in the
// same order. HAProxy refuses two servers of one name in a backend, so a
// server then has one state, the one beside it.
func sameServers(stats []Backend, states []ServerState) bool {
	i := 0
	for _, b := range stats {
		for si := range b.Servers {
			if i == len(states) || states[i].Backend != b.Name || states[i].Name != b.Servers[si].Name {
				return false
			}
			i++
		}
	}
	return i == len(states)
}

func withState(s *Server, st *ServerState) {
	s.AdminBits, s.Admin = st.AdminBits, st.Admin
	if st.Addr.IsValid() {
		s.Addr, s.Port = st.Addr, st.Port
	}
}
