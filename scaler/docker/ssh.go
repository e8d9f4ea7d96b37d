package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// sshDialer reaches a remote engine through "docker system dial-stdio" over
// ssh, which is how the docker CLI's own ssh:// support works; keys and
// known hosts come from the user's ssh set-up.
func sshDialer(u *url.URL) func(ctx context.Context, network, addr string) (net.Conn, error) {
	args := []string{"-o", "BatchMode=yes"}
	if u.Port() != "" {
		args = append(args, "-p", u.Port())
	}
	target := u.Hostname()
	if u.User != nil {
		target = u.User.Username() + "@" + target
	}
	args = append(args, "--", target, "docker", "system", "dial-stdio")
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		// The connection outlives the dial's context: it ends on Close.
		cmd := exec.Command("ssh", args...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("ssh %s: %w", target, err)
		}
		c := &cmdConn{cmd: cmd, target: target, w: stdin, r: stdout, stderrDone: make(chan struct{})}
		// Owned by the conn: ends when ssh exits or Close kills it.
		go func() {
			defer close(c.stderrDone)
			_, _ = io.Copy(&c.stderr, stderr)
		}()
		return c, nil
	}
}

// cmdConn is a net.Conn over a command's stdin and stdout. What the command
// writes to stderr (ssh's "Permission denied", "Could not resolve
// hostname", the remote shell's "docker: not found") is kept and joined to
// the error that ends a read, which alone would only say EOF.
type cmdConn struct {
	cmd        *exec.Cmd
	target     string
	w          io.WriteCloser
	r          io.ReadCloser
	stderr     tailBuffer
	stderrDone chan struct{}
}

// stderrWait is how long a failed read waits for ssh to finish its message.
const stderrWait = 2 * time.Second

func (c *cmdConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		err = c.withStderr(err)
	}
	return n, err
}

func (c *cmdConn) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		err = c.withStderr(err)
	}
	return n, err
}

// withStderr adds the command's stderr to err once the command has closed
// it (it exited), or after stderrWait.
func (c *cmdConn) withStderr(err error) error {
	select {
	case <-c.stderrDone:
	case <-time.After(stderrWait):
	}
	msg := c.stderr.String()
	if msg == "" {
		return err
	}
	return &sshError{target: c.target, stderr: msg, err: err}
}

// sshError is a failed read or write on the ssh connection with what ssh
// said. It unwraps to the read's error (io.EOF included), so callers that
// test for it see no difference.
type sshError struct {
	target string
	stderr string
	err    error
}

func (e *sshError) Error() string { return fmt.Sprintf("ssh %s: %s (%v)", e.target, e.stderr, e.err) }
func (e *sshError) Unwrap() error { return e.err }

func (c *cmdConn) Close() error {
	c.w.Close()
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	_ = c.cmd.Wait()
	return nil
}

// tailBuffer keeps the last tailMax bytes written to it, safe for one
// writer and concurrent readers.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailMax {
		b.buf = b.buf[len(b.buf)-tailMax:]
	}
	return len(p), nil
}

// String is the kept text on one line.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(strings.Fields(string(b.buf)), " ")
}

func (c *cmdConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *cmdConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *cmdConn) SetDeadline(time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdio" }
