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
// It is safe for concurrent use: every command uses its own connection.
type Client struct {
	network string // "unix" or "tcp"
	address string
	timeout time.Duration
	dialer  net.Dialer
}

// New returns a client for addr, which is "unix:///path/to/socket",
// a bare "/path/to/socket", or "tcp://127.0.0.1:9999". It does not connect.
func New(addr string) (*Client, error) {
	network, address, err := sockaddr.Parse(addr)
	if err != nil {
		return nil, err
	}
	return &Client{network: network, address: address, timeout: DefaultTimeout}, nil
}

// WithTimeout returns a copy of c whose commands time out after d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	cp.timeout = d
	return &cp
}

// String returns the address in the form New accepts.
func (c *Client) String() string { return c.network + "://" + c.address }

// exchange sends one command and hands the reply stream to read. The
// connection is closed, and read is unblocked, when ctx ends or the timeout
// passes; read errors are returned, never swallowed.
func (c *Client) exchange(ctx context.Context, command string, read func(*bufio.Reader) error) error {
	if err := checkCommand(command); err != nil {
		return err
	}
	conn, ctx, done, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("haproxy %q: %w", command, err)
	}
	defer done()
	if _, err := io.WriteString(conn, "set severity-output number; "+command+"\n"); err != nil {
		return fmt.Errorf("haproxy %q: write: %w", command, err)
	}
	if err := read(bufio.NewReaderSize(conn, 64<<10)); err != nil {
		return fmt.Errorf("haproxy %q: read: %w", command, readError(ctx, err))
	}
	return nil
}

// connect dials HAProxy with a deadline of the client's timeout or ctx's,
// whichever comes first; the connection's reads and writes are unblocked
// when ctx ends. The returned context carries that deadline; done closes
// the connection.
func (c *Client) connect(ctx context.Context) (net.Conn, context.Context, func(), error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	conn, err := c.dialer.DialContext(ctx, c.network, c.address)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		cancel()
		return nil, nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	return conn, ctx, func() { stop(); conn.Close(); cancel() }, nil
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

// command runs a command whose reply is a short message and classifies it.
func (c *Client) command(ctx context.Context, command string) (string, error) {
	var reply string
	err := c.exchange(ctx, command, func(r *bufio.Reader) error {
		b, err := io.ReadAll(r)
		reply = string(b)
		return err
	})
	if err != nil {
		return "", err
	}
	if err := classify(command, reply); err != nil {
		return "", err
	}
	_, msg := splitSeverity(reply)
	return msg, nil
}

// skipBlank discards leading newlines (severity-output adds one) and
// reports whether the reply is a severity message rather than data.
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

// readData reads a data reply (stats, state, info). A severity message in
// its place becomes an error.
func (c *Client) readData(ctx context.Context, command string, parse func(*bufio.Reader) error) error {
	var refused error
	err := c.exchange(ctx, command, func(r *bufio.Reader) error {
		message, err := skipBlank(r)
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
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
		return parse(r)
	})
	if err != nil {
		return err
	}
	return refused
}
