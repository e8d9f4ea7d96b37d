package runtimeapi

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Op is a server command that answers a short message: the commands a
// control loop sends to change slots, alone or in a Batch.
type Op int

// Server commands.
const (
	OpSetAddr      Op = iota + 1 // set server B/S addr A port P
	OpSetState                   // set server B/S state ready|drain|maint
	OpSetWeight                  // set weight B/S P%
	OpEnableHealth               // enable health B/S
	OpAddServer                  // add server B/S A:P [keywords]
	OpDelServer                  // del server B/S
)

// Command is one server command. Build it with SetAddrCommand and its
// siblings; Client and Fake run one with the method of the same name
// (SetAddr, SetState, ...) or several at once with Batch.
type Command struct {
	Op      Op
	Backend string
	Server  string
	Addr    netip.Addr    // OpSetAddr, OpAddServer
	Port    int           // OpSetAddr, OpAddServer
	State   AdminState    // OpSetState
	Weight  int           // OpSetWeight, percent of the configured weight
	Options ServerOptions // OpAddServer
}

// SetAddrCommand points a server at addr:port.
func SetAddrCommand(backend, server string, addr netip.Addr, port int) Command {
	return Command{Op: OpSetAddr, Backend: backend, Server: server, Addr: addr, Port: port}
}

// SetStateCommand sets a server's admin state.
func SetStateCommand(backend, server string, state AdminState) Command {
	return Command{Op: OpSetState, Backend: backend, Server: server, State: state}
}

// SetWeightCommand sets a server's weight in percent of its configured weight.
func SetWeightCommand(backend, server string, percent int) Command {
	return Command{Op: OpSetWeight, Backend: backend, Server: server, Weight: percent}
}

// EnableHealthCommand turns a server's health checks on.
func EnableHealthCommand(backend, server string) Command {
	return Command{Op: OpEnableHealth, Backend: backend, Server: server}
}

// AddServerCommand adds a dynamic server (it starts in maint).
func AddServerCommand(backend, server string, addr netip.Addr, port int, opts ServerOptions) Command {
	return Command{Op: OpAddServer, Backend: backend, Server: server, Addr: addr, Port: port, Options: opts}
}

// DelServerCommand deletes a server in maint without connections.
func DelServerCommand(backend, server string) Command {
	return Command{Op: OpDelServer, Backend: backend, Server: server}
}

// Line validates the command and returns the text HAProxy gets. Nothing
// in it can end the line or start a second command: names are checked,
// and add server's keywords may hold no blank, quote, ';' or line break.
func (c Command) Line() (string, error) {
	if err := checkName(c.Backend, c.Server); err != nil {
		return "", err
	}
	bs := c.Backend + "/" + c.Server
	switch c.Op {
	case OpSetAddr:
		if err := checkTarget(c.Addr, c.Port); err != nil {
			return "", fmt.Errorf("set addr %s: %w", bs, err)
		}
		return fmt.Sprintf("set server %s addr %s port %d", bs, c.Addr.Unmap(), c.Port), nil
	case OpSetState:
		if c.State < AdminReady || c.State > AdminMaint {
			return "", fmt.Errorf("set state %s: invalid state %d", bs, c.State)
		}
		return fmt.Sprintf("set server %s state %s", bs, c.State), nil
	case OpSetWeight:
		if c.Weight < 0 || c.Weight > 100 {
			return "", fmt.Errorf("set weight %s: %d%% out of range 0-100", bs, c.Weight)
		}
		return fmt.Sprintf("set weight %s %d%%", bs, c.Weight), nil
	case OpEnableHealth:
		return "enable health " + bs, nil
	case OpAddServer:
		if err := checkTarget(c.Addr, c.Port); err != nil {
			return "", fmt.Errorf("add server %s: %w", bs, err)
		}
		line := fmt.Sprintf("add server %s %s", bs, netip.AddrPortFrom(c.Addr.Unmap(), uint16(c.Port)))
		for _, w := range c.Options.words() {
			if w == "" || strings.ContainsAny(w, " \t;\r\n\\'\"") {
				return "", fmt.Errorf("add server %s: invalid keyword %q", bs, w)
			}
			line += " " + w
		}
		return line, nil
	case OpDelServer:
		return "del server " + bs, nil
	}
	return "", fmt.Errorf("command on %s: unknown op %d", bs, c.Op)
}

// checkReply turns HAProxy's reply to line into an error when it refused
// the command. "set server addr" answers a refused address with severity
// [4], so its reply must say the address or port changed (or needed no
// change) to count as success.
func (c Command) checkReply(line, reply string) error {
	if err := classify(line, reply); err != nil {
		return err
	}
	if c.Op == OpSetAddr {
		_, msg := splitSeverity(reply)
		if !strings.Contains(msg, "changed") && !strings.Contains(msg, "no need to change") {
			return &CommandError{Command: line, Severity: -1, Reply: msg, Err: ErrUnexpectedReply}
		}
	}
	return nil
}

// Commander runs server commands one at a time, as Client and Fake do.
type Commander interface {
	SetAddr(ctx context.Context, backend, server string, addr netip.Addr, port int) error
	SetState(ctx context.Context, backend, server string, state AdminState) error
	SetWeight(ctx context.Context, backend, server string, percent int) error
	EnableHealth(ctx context.Context, backend, server string) error
	AddServer(ctx context.Context, backend, server string, addr netip.Addr, port int, opts ServerOptions) error
	DelServer(ctx context.Context, backend, server string) error
}

// BatchEach runs cmds in order through c's methods, one Result per command
// (one refused does not stop the next), as Batch does over a connection:
// for a Commander that has none (Fake, a simulation). An invalid command is
// not run.
func BatchEach(ctx context.Context, c Commander, cmds []Command) []Result {
	results := make([]Result, len(cmds))
	for i, cmd := range cmds {
		results[i].Command = cmd
		results[i].Line, results[i].Err = cmd.Line()
		if results[i].Err != nil {
			results[i].Line = ""
			continue
		}
		switch cmd.Op {
		case OpSetAddr:
			results[i].Err = c.SetAddr(ctx, cmd.Backend, cmd.Server, cmd.Addr, cmd.Port)
		case OpSetState:
			results[i].Err = c.SetState(ctx, cmd.Backend, cmd.Server, cmd.State)
		case OpSetWeight:
			results[i].Err = c.SetWeight(ctx, cmd.Backend, cmd.Server, cmd.Weight)
		case OpEnableHealth:
			results[i].Err = c.EnableHealth(ctx, cmd.Backend, cmd.Server)
		case OpAddServer:
			results[i].Err = c.AddServer(ctx, cmd.Backend, cmd.Server, cmd.Addr, cmd.Port, cmd.Options)
		case OpDelServer:
			results[i].Err = c.DelServer(ctx, cmd.Backend, cmd.Server)
		}
	}
	return results
}
