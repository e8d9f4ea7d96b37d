package runtimeapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors for HAProxy's refusals; a CommandError wraps one of them
// when the reply is recognised.
var (
	ErrNoSuchBackend    = errors.New("no such backend")
	ErrNoSuchServer     = errors.New("no such server")
	ErrNotInMaint       = errors.New("server is not in maintenance")
	ErrHasConnections   = errors.New("server still has connections")
	ErrAlreadyExists    = errors.New("server already exists")
	ErrNoHealthCheck    = errors.New("health check not configured")
	ErrDynamicRefused   = errors.New("backend refuses dynamic servers")
	ErrUnknownCommand   = errors.New("unknown command")
	ErrInvalidAddress   = errors.New("invalid address")
	ErrUnexpectedReply  = errors.New("unexpected reply")
	ErrInvalidName      = errors.New("invalid backend or server name")
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnsafeArgument is a command argument holding a line break or ';',
	// refused before anything is sent.
	ErrUnsafeArgument = errors.New("a line break or ';' would end the command there")
)

// CommandError is HAProxy refusing a command (or answering something we
// cannot accept). It carries the command and HAProxy's own words.
type CommandError struct {
	Command  string
	Severity int // HAProxy's severity-output number, -1 when the reply had none
	Reply    string
	Err      error // one of the sentinels above
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy %q: %s", e.Command, e.Reply)
}

func (e *CommandError) Unwrap() error { return e.Err }

// replyErrors maps the start of HAProxy 2.6 replies to sentinels.
var replyErrors = []struct {
	prefix string
	err    error
}{
	{"No such backend.", ErrNoSuchBackend},
	{"No such proxy.", ErrNoSuchBackend},
	{"Can't find backend.", ErrNoSuchBackend},
	{"No such server.", ErrNoSuchServer},
	{"Only servers in maintenance mode can be deleted.", ErrNotInMaint},
	{"Server still has connections attached to it", ErrHasConnections},
	{"Already exists a server with the same name", ErrAlreadyExists},
	{"Health check was not configured on this server", ErrNoHealthCheck},
	{"Backend must use a dynamic load balancing", ErrDynamicRefused},
	{"Unknown command", ErrUnknownCommand},
	{"Invalid addr", ErrInvalidAddress},
	{"Permission denied", ErrPermissionDenied},
}

// splitSeverity splits "[3]: No such server." into 3 and the message. A
// reply without the prefix has severity -1.
func splitSeverity(reply string) (int, string) {
	reply = strings.TrimSpace(reply)
	if len(reply) >= 4 && reply[0] == '[' && reply[2] == ']' && reply[3] == ':' {
		if n, err := strconv.Atoi(reply[1:2]); err == nil {
			return n, strings.TrimSpace(reply[4:])
		}
	}
	return -1, reply
}

// classify turns a reply into an error when HAProxy refused the command.
// Severity 0–3 is always an error; a known refusal text is an error at any
// severity, because HAProxy reports an invalid address as [4].
func classify(command, reply string) error {
	sev, msg := splitSeverity(reply)
	for _, re := range replyErrors {
		if strings.HasPrefix(msg, re.prefix) {
			return &CommandError{Command: command, Severity: sev, Reply: msg, Err: re.err}
		}
	}
	if sev >= 0 && sev <= 3 {
		return &CommandError{Command: command, Severity: sev, Reply: msg, Err: ErrUnexpectedReply}
	}
	return nil
}
