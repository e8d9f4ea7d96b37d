package runtimeapi

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// checkName refuses names that could smuggle a second command or break the
// CLI's word splitting; HAProxy names are identifiers.
func checkName(names ...string) error {
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("%w: empty", ErrInvalidName)
		}
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
				return fmt.Errorf("%w: %q", ErrInvalidName, n)
			}
		}
	}
	return nil
}

func checkTarget(addr netip.Addr, port int) error {
	if !addr.IsValid() {
		return fmt.Errorf("%w: empty address", ErrInvalidAddress)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrInvalidAddress, port)
	}
	return nil
}

// SetAddr points a server at addr:port ("set server B/S addr A port P").
// HAProxy answers a refused address with severity [4]; the reply must say
// the address or port changed (or needed no change) to count as success.
func (c *Client) SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	if err := checkTarget(addr, port); err != nil {
		return fmt.Errorf("set addr %s/%s: %w", backend, server, err)
	}
	cmd := fmt.Sprintf("set server %s/%s addr %s port %d", backend, server, addr.Unmap(), port)
	reply, err := c.command(ctx, cmd)
	if err != nil {
		return err
	}
	if !strings.Contains(reply, "changed") && !strings.Contains(reply, "no need to change") {
		return &CommandError{Command: cmd, Severity: -1, Reply: reply, Err: ErrUnexpectedReply}
	}
	return nil
}

// SetState sets a server's admin state ("set server B/S state ...").
func (c *Client) SetState(ctx context.Context, backend, server string, state AdminState) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	if state < AdminReady || state > AdminMaint {
		return fmt.Errorf("set state %s/%s: invalid state %d", backend, server, state)
	}
	return c.silent(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state))
}

// SetWeight sets a server's weight as a percentage of the weight it was
// configured with ("set weight B/S P%"). Weight 0 keeps a bound slot out of
// the balancing while its first health checks run: HAProxy counts a server
// leaving maint as UP before any check passed.
func (c *Client) SetWeight(ctx context.Context, backend, server string, percent int) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("set weight %s/%s: %d%% out of range 0-100", backend, server, percent)
	}
	return c.silent(ctx, fmt.Sprintf("set weight %s/%s %d%%", backend, server, percent))
}

// EnableHealth turns health checks on ("enable health B/S"); dynamic
// servers added with "check" need it.
func (c *Client) EnableHealth(ctx context.Context, backend, server string) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	return c.silent(ctx, fmt.Sprintf("enable health %s/%s", backend, server))
}

// ServerOptions are the keywords "add server" gets after the address.
// Dynamic servers do not inherit default-server, so checks and connection
// reuse are spelled out here.
type ServerOptions struct {
	Check      bool
	Inter      string // check interval, e.g. "500ms"
	Rise, Fall int
	Extra      []string // further keywords, passed as they are (validated by HAProxy)
}

func (o ServerOptions) words() []string {
	var w []string
	if o.Check {
		w = append(w, "check")
		if o.Inter != "" {
			w = append(w, "inter", o.Inter)
		}
		if o.Rise > 0 {
			w = append(w, "rise", strconv.Itoa(o.Rise))
		}
		if o.Fall > 0 {
			w = append(w, "fall", strconv.Itoa(o.Fall))
		}
	}
	return append(w, o.Extra...)
}

// AddServer adds a dynamic server; it starts in maint.
func (c *Client) AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts ServerOptions) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	if err := checkTarget(addr, port); err != nil {
		return fmt.Errorf("add server %s/%s: %w", backend, server, err)
	}
	words := opts.words()
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t;\n\\'\"") {
			return fmt.Errorf("add server %s/%s: invalid keyword %q", backend, server, w)
		}
	}
	cmd := fmt.Sprintf("add server %s/%s %s", backend, server, netip.AddrPortFrom(addr.Unmap(), uint16(port)))
	if len(words) > 0 {
		cmd += " " + strings.Join(words, " ")
	}
	return c.silent(ctx, cmd)
}

// DelServer deletes a server; HAProxy requires it to be in maint with no
// connection attached (ErrNotInMaint, ErrHasConnections otherwise).
func (c *Client) DelServer(ctx context.Context, backend, server string) error {
	if err := checkName(backend, server); err != nil {
		return err
	}
	return c.silent(ctx, fmt.Sprintf("del server %s/%s", backend, server))
}

// silent runs a command that answers nothing (or a notice) on success.
func (c *Client) silent(ctx context.Context, cmd string) error {
	_, err := c.command(ctx, cmd)
	return err
}
