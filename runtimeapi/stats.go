package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// statColumns are the "show stat" columns we keep, by header name.
var statColumns = [...]string{"pxname", "svname", "qcur", "scur", "status", "weight", "lastchg", "check_status", "addr", "algo"}

const (
	colPx = iota
	colSv
	colQcur
	colScur
	colStatus
	colWeight
	colLastchg
	colCheck
	colAddr
	colAlgo
)

// Stats reads "show stat" for backend (all backends when backend is "")
// without admin states. It is the cheap read used where admin state is not
// needed; Backends adds admin state.
func (c *Client) Stats(ctx context.Context, backend string) ([]Backend, error) {
	target := "-1"
	if backend != "" {
		if err := checkName(backend); err != nil {
			return nil, err
		}
		target = backend
	}
	var out []Backend
	err := c.readData(ctx, "show stat "+target+" 6 -1", false, func(r *bufio.Reader) error {
		var err error
		out, err = ParseStats(r)
		return err
	})
	return out, err
}

// ParseStats parses the CSV of "show stat" (header line first, with or
// without its "# "), keeping backends and their servers. Frontend rows are
// skipped. HAProxy ends the reply with an empty line: a reply without it,
// a short row, a row without its newline or a missing column is an error:
// a partial read must never look like data (a reply cut at a row boundary
// once dropped slots, whose containers were then removed as strays).
//
// Rows are split in place and only the kept columns become strings; a row
// with a quoted field (HAProxy quotes check reasons containing commas) goes
// through encoding/csv. This keeps the parse within a few milliseconds of
// the socket read for 4,000 servers (see BenchmarkStats).
func ParseStats(r io.Reader) ([]Backend, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	head, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("parse stats header: %w", noEOF(err))
	}
	header := strings.Split(strings.TrimRight(strings.TrimPrefix(head, "# "), "\n"), ",")
	var p statParser
	if err := p.index(header); err != nil {
		return nil, err
	}
	var (
		backends []Backend
		byName   = map[string]int{}
	)
	for line := 2; ; line++ {
		raw, err := br.ReadSlice('\n')
		if err == io.EOF && len(raw) == 0 {
			return nil, fmt.Errorf("parse stats: %w", errNotClosed)
		}
		if err != nil {
			return nil, fmt.Errorf("parse stats line %d: %w", line, noEOF(err))
		}
		raw = raw[:len(raw)-1]
		if len(raw) == 0 {
			break
		}
		if err := p.split(raw); err != nil {
			return nil, fmt.Errorf("parse stats line %d: %w", line, err)
		}
		px, sv := p.col(colPx), p.col(colSv)
		if string(sv) == "FRONTEND" {
			continue
		}
		bi, seen := byName[string(px)]
		if !seen {
			bi = len(backends)
			name := string(px)
			byName[name] = bi
			backends = append(backends, Backend{Name: name})
		}
		b := &backends[bi]
		if string(sv) == "BACKEND" {
			b.Algo = intern(p.col(colAlgo))
			if b.Sessions, err = atoiEmpty(p.col(colScur)); err == nil {
				b.Queue, err = atoiEmpty(p.col(colQcur))
			}
			if err != nil {
				return nil, fmt.Errorf("parse stats line %d (%s/BACKEND): %w", line, px, err)
			}
			continue
		}
		s, err := p.server()
		if err != nil {
			return nil, fmt.Errorf("parse stats line %d (%s/%s): %w", line, px, sv, err)
		}
		if b.Servers == nil && bi > 0 {
			// Backends are usually alike: room for as many servers as the
			// one before saves growing the slice row by row.
			b.Servers = make([]Server, 0, len(backends[bi-1].Servers))
		}
		b.Servers = append(b.Servers, s)
	}
	return backends, nil
}

// errNotClosed: the reply ended before HAProxy's closing empty line.
var errNotClosed = fmt.Errorf("reply ended before its closing empty line: %w", io.ErrUnexpectedEOF)

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// statParser splits one "show stat" row, keeping the columns it needs.
type statParser struct {
	width int                      // fields per row, from the header
	last  int                      // header position of the last kept column
	slot  []int8                   // header position -> statColumns index, or -1
	cols  [len(statColumns)][]byte // the kept fields of the current row
	text  []byte                   // scratch for a server's name and address
}

func (p *statParser) index(header []string) error {
	p.width = len(header)
	p.slot = make([]int8, len(header))
	found := 0
	for j, h := range header {
		p.slot[j] = -1
		for i, name := range statColumns {
			if h == name {
				p.slot[j] = int8(i)
				p.last = j
				found++
			}
		}
	}
	if found != len(statColumns) {
		for _, name := range statColumns {
			if !slices.Contains(header, name) {
				return fmt.Errorf("parse stats header: no column %q", name)
			}
		}
	}
	return nil
}

func (p *statParser) col(i int) []byte { return p.cols[i] }

func (p *statParser) split(raw []byte) error {
	if bytes.IndexByte(raw, '"') >= 0 {
		rec, err := csv.NewReader(bytes.NewReader(raw)).Read()
		if err != nil {
			return err
		}
		if len(rec) != p.width {
			return fmt.Errorf("%d fields, header has %d", len(rec), p.width)
		}
		for j, f := range rec {
			if k := p.slot[j]; k >= 0 {
				p.cols[k] = []byte(f)
			}
		}
		return nil
	}
	if n := bytes.Count(raw, []byte{','}) + 1; n != p.width {
		return fmt.Errorf("%d fields, header has %d", n, p.width)
	}
	// Fields are short: a byte loop beats a search per field. The columns
	// after the last kept one are only counted.
	j, start := 0, 0
	for i, c := range raw {
		if c != ',' {
			continue
		}
		if k := p.slot[j]; k >= 0 {
			p.cols[k] = raw[start:i]
		}
		if j++; j > p.last {
			return nil
		}
		start = i + 1
	}
	if k := p.slot[j]; k >= 0 { // the row's last field
		p.cols[k] = raw[start:]
	}
	return nil
}

func (p *statParser) server() (Server, error) {
	// The name and the address are copied into one string: one allocation
	// per server instead of two.
	sv, a := p.col(colSv), p.col(colAddr)
	p.text = append(append(p.text[:0], sv...), a...)
	text := string(p.text)
	s := Server{
		Name:        text[:len(sv)],
		Status:      intern(p.col(colStatus)),
		CheckStatus: intern(p.col(colCheck)),
		AdminBits:   -1,
	}
	s.Health = parseStatus(s.Status)
	s.Transition = strings.Contains(s.Status, "/")
	switch s.Health {
	case HealthMaint:
		s.Admin = AdminMaint
	case HealthDrain:
		s.Admin = AdminDrain
	}
	var err error
	for _, f := range []struct {
		dst *int
		col int
	}{{&s.Sessions, colScur}, {&s.Queue, colQcur}, {&s.Weight, colWeight}, {&s.LastChange, colLastchg}} {
		if *f.dst, err = atoiEmpty(p.col(f.col)); err != nil {
			return Server{}, fmt.Errorf("%s: %w", statColumns[f.col], err)
		}
	}
	if len(a) > 0 {
		ap, err := netip.ParseAddrPort(text[len(sv):])
		if err != nil {
			return Server{}, fmt.Errorf("addr: %w", err)
		}
		s.Addr, s.Port = ap.Addr(), int(ap.Port())
	}
	return s, nil
}

// atoiEmpty parses a stats number; HAProxy leaves unused counters empty.
func atoiEmpty(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return strconv.Atoi(string(b))
}

// common status words and balance algorithms, shared instead of allocated
// per row.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"", "UP", "DOWN", "MAINT", "DRAIN", "no check", "NOLB", "INI", "L4OK", "L4CON", "L4TOUT", "L6OK", "L7OK", "L7STS", "L7TOUT", "* L4OK", "* L7OK", "SOCKERR",
		"roundrobin", "static-rr", "leastconn", "first", "source", "random"} {
		m[s] = s
	}
	return m
}()

func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

// Load is a backend's own counters, from its BACKEND row of "show stat":
// what a probe between full reads needs.
type Load struct {
	Backend  string
	Sessions int // scur: the backend's streams, on any server (drained ones included) or queued (TestLoadsOnHAProxy)
	Queue    int // qcur: requests waiting in the backend's own queue for any server
}

// Loads reads "show stat -1 2 -1": the BACKEND row of every backend, no
// server row, so it costs a fraction of a full Stats read. The reply goes
// through ParseStats: without HAProxy's closing empty line it is an error,
// as every read's.
func (c *Client) Loads(ctx context.Context) ([]Load, error) {
	var out []Load
	err := c.readData(ctx, "show stat -1 2 -1", false, func(r *bufio.Reader) error {
		bs, err := ParseStats(r)
		if err != nil {
			return err
		}
		out = make([]Load, len(bs))
		for i, b := range bs {
			out[i] = Load{Backend: b.Name, Sessions: b.Sessions, Queue: b.Queue}
		}
		return nil
	})
	return out, err
}
