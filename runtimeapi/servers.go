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
	return c.run(ctx, SetAddrCommand(backend, server, addr, port))
}

// SetState sets a server's admin state ("set server B/S state ...").
func (c *Client) SetState(ctx context.Context, backend, server string, state AdminState) error {
	return c.run(ctx, SetStateCommand(backend, server, state))
}

// SetWeight sets a server's weight as a percentage of the weight it was
// configured with ("set weight B/S P%"). Weight 0 keeps a bound slot out of
// the balancing while its first health checks run: HAProxy counts a server
// leaving maint as UP before any check passed.
func (c *Client) SetWeight(ctx context.Context, backend, server string, percent int) error {
	return c.run(ctx, SetWeightCommand(backend, server, percent))
}

// EnableHealth turns health checks on ("enable health B/S"); dynamic
// servers added with "check" need it.
func (c *Client) EnableHealth(ctx context.Context, backend, server string) error {
	return c.run(ctx, EnableHealthCommand(backend, server))
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
	return c.run(ctx, AddServerCommand(backend, server, addr, port, opts))
}

// DelServer deletes a server; HAProxy requires it to be in maint with no
// connection attached (ErrNotInMaint, ErrHasConnections otherwise).
func (c *Client) DelServer(ctx context.Context, backend, server string) error {
	return c.run(ctx, DelServerCommand(backend, server))
}

// run sends one server command and checks its reply.
func (c *Client) run(ctx context.Context, cmd Command) error {
	line, err := cmd.Line()
	if err != nil {
		return err
	}
	var reply string
	err = c.exchange(ctx, line, false, func(cn *conn) (err error) {
		reply, err = readPromptReply(cn.r)
		return err
	})
	if err != nil {
		return err
	}
	return cmd.checkReply(line, reply)
}
