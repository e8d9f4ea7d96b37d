package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// A Client keeps one connection to HAProxy open, in the CLI's interactive
// "prompt" mode, where HAProxy keeps the connection after each command and
// ends each reply with a "> " prompt: a command then costs a few
// microseconds instead of a connection (measured: 6 us against 297 us).
// Commands take turns on it, one at a time, in order. What keeps that
// safe:
//
//   - A connection is reused only after its last reply was read to the
//     prompt. Any error on it (timeout, cancelled context, cut or garbled
//     reply) closes it, and the next command dials afresh: a late reply
//     must never be read as the next command's.
//   - Before it is reused, a connection HAProxy closed ("stats timeout",
//     10 s by default, or a restart) or that holds unread bytes is
//     replaced by a new one. A command is sent again on a new connection
//     only when nothing of it was written: a change must never be applied
//     twice, so once the write may have reached HAProxy, its failure is
//     returned.
//   - A connection unused for its idle timeout is closed.
//   - Info always opens a new connection: "show info" is how callers learn
//     which process they talk to, and a connection stays with the process
//     it reached, even once a reload put a new one behind the socket (the
//     old process lives on as long as the connection does). The commands
//     after Info reach the process it named.

// DefaultIdleTimeout closes a connection nothing used for that long: under
// HAProxy's default "stats timeout" (10 s), so that HAProxy seldom closes it
// first, and short enough that a connection does not keep a reloaded-away
// HAProxy process alive for long.
const DefaultIdleTimeout = 5 * time.Second

// promptPreamble puts a new connection in interactive mode and numbers
// severities ("[3]: ...") in every reply.
const promptPreamble = "prompt\nset severity-output number\n"

// errNotSent marks a command of which nothing was written.
var errNotSent = errors.New("not sent")

// notSent marks err as errNotSent when the write that failed wrote nothing.
func notSent(n int, err error) error {
	if n == 0 {
		return fmt.Errorf("%w: %w", errNotSent, err)
	}
	return err
}

// conn is one connection in prompt mode.
type conn struct {
	net.Conn
	r    *bufio.Reader // the connection's bytes
	rr   replyReader   // one reply of r, for data replies
	data *bufio.Reader // over rr, reset for each data reply
	used time.Time     // when its last command ended
}

func newConn(nc net.Conn) *conn {
	cn := &conn{Conn: nc, r: bufio.NewReaderSize(nc, 16<<10)}
	cn.data = bufio.NewReaderSize(&cn.rr, 64<<10)
	return cn
}

// prompt puts a new connection in interactive mode.
func (cn *conn) prompt(ctx context.Context) error {
	if n, err := io.WriteString(cn, promptPreamble); err != nil {
		return fmt.Errorf("prompt mode: write: %w", notSent(n, readError(ctx, err)))
	}
	for range strings.Count(promptPreamble, "\n") {
		reply, err := readPromptReply(cn.r)
		if err != nil {
			return fmt.Errorf("prompt mode: read: %w", readError(ctx, err))
		}
		if reply != "" {
			return &CommandError{Command: strings.ReplaceAll(strings.TrimSpace(promptPreamble), "\n", "; "), Severity: -1, Reply: reply, Err: ErrUnexpectedReply}
		}
	}
	return nil
}

// reply returns the next reply as a reader that ends at its prompt.
func (cn *conn) reply() *bufio.Reader {
	cn.rr = replyReader{r: cn.r, bol: true}
	cn.data.Reset(&cn.rr)
	return cn.data
}

// stale reports whether the connection may not carry another command:
// HAProxy closed or reset it, or sent bytes no command asked for. It peeks
// without blocking.
func (cn *conn) stale() bool {
	if cn.r.Buffered() > 0 {
		return true
	}
	sc, ok := cn.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		// Nothing to read is the one healthy answer; a byte is one no
		// command asked for, and 0 bytes without an error the end.
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err != nil || !alive
}

// replyReader reads one reply of a prompt-mode connection: it returns
// io.EOF at the "> " prompt that starts a line, and consumes the prompt.
type replyReader struct {
	r    *bufio.Reader
	bol  bool // at the beginning of a line
	done bool
}

func (rr *replyReader) Read(p []byte) (int, error) {
	if rr.done {
		return 0, io.EOF
	}
	if rr.bol {
		b, err := rr.r.Peek(2)
		if err != nil {
			return 0, noEOF(err)
		}
		if string(b) == "> " {
			_, _ = rr.r.Discard(2)
			rr.done = true
			return 0, io.EOF
		}
		rr.bol = false
	}
	if _, err := rr.r.Peek(1); err != nil {
		return 0, noEOF(err)
	}
	// Whole lines, as many as are buffered, but none past a prompt: it
	// starts a line.
	chunk, _ := rr.r.Peek(min(len(p), rr.r.Buffered()))
	if i := bytes.Index(chunk, []byte("\n> ")); i >= 0 {
		chunk, rr.bol = chunk[:i+1], true
	} else if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
		chunk, rr.bol = chunk[:i+1], true
	}
	n := copy(p, chunk)
	_, _ = rr.r.Discard(n)
	return n, nil
}

// readPromptReply reads one reply in prompt mode: the lines before
// HAProxy's "> " prompt at the start of a line. Most replies end with an
// empty line before the prompt, but not all ("del server" answers without
// one), so the prompt alone ends a reply.
func readPromptReply(r *bufio.Reader) (string, error) {
	var reply strings.Builder
	for {
		p, err := r.Peek(2)
		if err != nil {
			return "", noEOF(err)
		}
		if string(p) == "> " {
			_, _ = r.Discard(2)
			return strings.TrimSpace(reply.String()), nil
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", noEOF(err)
		}
		reply.WriteString(line)
	}
}

// line holds a Client's connection. sem is its lock, a channel so that a
// caller waiting for its turn can give up when its context ends.
type line struct {
	sem  chan struct{}
	idle time.Duration
	// With sem held:
	conn  *conn // nil: none open
	timer *time.Timer
}

func newLine(idle time.Duration) *line {
	return &line{sem: make(chan struct{}, 1), idle: idle}
}

// take returns the open connection if it may carry a command, and nil
// otherwise (a stale one is closed). sem is held.
func (l *line) take(fresh bool) *conn {
	cn := l.conn
	l.conn = nil
	if cn != nil && (fresh || time.Since(cn.used) >= l.idle || cn.stale()) {
		cn.Close()
		cn = nil
	}
	return cn
}

// release keeps cn (nil when it was closed) for the next command, arms the
// idle timer and gives sem back.
func (l *line) release(cn *conn) {
	l.conn = cn
	if cn != nil {
		cn.used = time.Now()
		if l.timer == nil {
			l.timer = time.AfterFunc(l.idle, l.closeIdle)
		} else {
			l.timer.Reset(l.idle)
		}
	}
	<-l.sem
}

// closeIdle closes a connection unused for the idle timeout. One in use
// is left alone: its release sets the timer again.
func (l *line) closeIdle() {
	select {
	case l.sem <- struct{}{}:
	default:
		return
	}
	defer func() { <-l.sem }()
	if l.conn != nil && time.Since(l.conn.used) >= l.idle {
		l.conn.Close()
		l.conn = nil
	}
}

func (l *line) close() error {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	if l.timer != nil {
		l.timer.Stop()
	}
	if cn := l.conn; cn != nil {
		l.conn = nil
		return cn.Close()
	}
	return nil
}

// do runs fn with the connection, after waiting for its turn; with fresh,
// or when there is none that may be reused, on a new one. The whole call,
// the wait included, ends at the client's timeout or ctx's deadline,
// whichever comes first; the connection is unblocked then. An error from
// fn closes the connection; when fn wrote nothing on a reused one (HAProxy
// closed it meanwhile), fn runs once more on a new connection.
func (c *Client) do(ctx context.Context, fresh bool, fn func(context.Context, *conn) error) error {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	select {
	case c.line.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the connection: %w", ctx.Err())
	}
	var kept *conn
	defer func() { c.line.release(kept) }()
	for retried := false; ; retried = true {
		cn := c.line.take(fresh)
		reused := cn != nil
		if !reused {
			nc, err := c.dialer.DialContext(ctx, c.network, c.address)
			if err != nil {
				return err
			}
			cn = newConn(nc)
		}
		stop := context.AfterFunc(ctx, func() { _ = cn.SetDeadline(time.Now()) })
		err := cn.SetDeadline(deadline)
		if err == nil && !reused {
			err = cn.prompt(ctx)
		}
		if err == nil {
			err = fn(ctx, cn)
		}
		stop()
		if err == nil {
			kept = cn
			return nil
		}
		cn.Close()
		if !reused || retried || !errors.Is(err, errNotSent) || ctx.Err() != nil {
			return err
		}
	}
}
