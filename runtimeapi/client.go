package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/slotscaler/slotscaler/internal/sockaddr"
)

// DefaultTimeout bounds one command when the caller's context has no
// earlier deadline. A "show stat" of 4,000 servers takes about 20 ms.
const DefaultTimeout = 5 * time.Second

// Client is a Runtime API client for one HAProxy process (one stats socket).
// It keeps one connection open (see conn.go) and sends one command at a
// time over it, in the order callers get to it; it is safe for concurrent
// use.
type Client struct {
	network string // "unix" or "tcp"
	address string
	timeout time.Duration
	dialer  net.Dialer
	line    *line // shared by the copies WithTimeout makes
}

// New returns a client for addr, which is "unix:///path/to/socket",
// a bare "/path/to/socket", or "tcp://127.0.0.1:9999". It does not connect.
func New(addr string) (*Client, error) {
	network, address, err := sockaddr.Parse(addr)
	if err != nil {
		return nil, err
	}
	return &Client{network: network, address: address, timeout: DefaultTimeout, line: newLine(DefaultIdleTimeout)}, nil
}

// WithTimeout returns a copy of c whose commands time out after d. The
// copy shares c's connection.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	cp.timeout = d
	return &cp
}

// String returns the address in the form New accepts.
func (c *Client) String() string { return c.network + "://" + c.address }

// Close closes the connection if one is open; a later command opens a
// new one.
func (c *Client) Close() error { return c.line.close() }

// exchange sends one command and hands the connection to read, which must
// consume the reply up to and including HAProxy's prompt. With fresh,
// it goes over a new connection. The connection is unblocked when ctx ends
// or the timeout passes; read errors are returned, never swallowed, and
// close the connection.
func (c *Client) exchange(ctx context.Context, command string, fresh bool, read func(*conn) error) error {
	if err := checkCommand(command); err != nil {
		return err
	}
	err := c.do(ctx, fresh, func(ctx context.Context, cn *conn) error {
		if n, err := io.WriteString(cn, command+"\n"); err != nil {
			return fmt.Errorf("write: %w", notSent(n, readError(ctx, err)))
		}
		if err := read(cn); err != nil {
			return fmt.Errorf("read: %w", readError(ctx, err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("haproxy %q: %w", command, err)
	}
	return nil
}

// readError reports a read cut short by the deadline as the context error,
// so callers can test for it: the socket deadline and ctx's timer fire
// together.
func readError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// checkCommand refuses a command that would reach HAProxy as more than
// one: the CLI ends a command at a line break and runs each ';'-separated
// part on its own. Callers check names too; this guard, in the two places
// that write commands (exchange and Batch), is the last word, whatever a
// future caller forgets.
func checkCommand(command string) error {
	i := strings.IndexAny(command, "\n\r;")
	if i < 0 {
		return nil
	}
	verb := command
	if fields := strings.Fields(command[:i]); len(fields) >= 2 {
		verb = fields[0] + " " + fields[1]
	} else if len(fields) == 1 {
		verb = fields[0]
	}
	arg := command[strings.LastIndexByte(command[:i], ' ')+1:]
	if j := strings.IndexByte(arg, ' '); j >= 0 {
		arg = arg[:j]
	}
	return fmt.Errorf("haproxy %q: argument %q: %w", verb, arg, ErrUnsafeArgument)
}

// skipBlank discards leading newlines and reports whether the reply is a
// severity message rather than data.
func skipBlank(r *bufio.Reader) (message bool, err error) {
	for {
		b, err := r.Peek(1)
		if err != nil {
			return false, err
		}
		switch b[0] {
		case '\n', '\r':
			_, _ = r.ReadByte()
		case '[':
			return true, nil
		default:
			return false, nil
		}
	}
}

// readData reads a data reply (stats, state, info), with fresh over a new
// connection. parse gets the reply alone: it reads EOF at HAProxy's
// prompt, so a parser can never read into what follows, and whatever it
// leaves unread is an error. A severity message in its place becomes an
// error that keeps the connection.
func (c *Client) readData(ctx context.Context, command string, fresh bool, parse func(*bufio.Reader) error) error {
	var refused error
	err := c.exchange(ctx, command, fresh, func(cn *conn) error {
		r := cn.reply()
		message, err := skipBlank(r)
		if err != nil {
			return noEOF(err)
		}
		if message {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if refused = classify(command, string(b)); refused == nil {
				refused = &CommandError{Command: command, Severity: -1, Reply: strings.TrimSpace(string(b)), Err: ErrUnexpectedReply}
			}
			return nil
		}
		if err := parse(r); err != nil {
			return err
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n > 0 {
			return errors.Join(fmt.Errorf("%d bytes after the reply's end: %w", n, ErrUnexpectedReply), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return refused
}
