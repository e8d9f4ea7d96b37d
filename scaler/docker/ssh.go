package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
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
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("ssh %s: %w", target, err)
		}
		return &cmdConn{cmd: cmd, w: stdin, r: stdout}, nil
	}
}

// cmdConn is a net.Conn over a command's stdin and stdout.
type cmdConn struct {
	cmd *exec.Cmd
	w   io.WriteCloser
	r   io.ReadCloser
}

func (c *cmdConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *cmdConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *cmdConn) Close() error {
	c.w.Close()
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	_ = c.cmd.Wait()
	return nil
}

func (c *cmdConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *cmdConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *cmdConn) SetDeadline(time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdio" }
