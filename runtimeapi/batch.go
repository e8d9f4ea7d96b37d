package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Result is HAProxy's answer to one command of a batch.
type Result struct {
	Command Command
	Line    string // the text sent; "" when the command was invalid
	Reply   string // HAProxy's message without its severity prefix
	Err     error  // the refusal, invalid command or lost connection; nil on success
}

// ErrNotAnswered marks a batched command sent, or about to be sent, on a
// connection that failed before HAProxy answered it: it may or may not
// have been applied.
var ErrNotAnswered = errors.New("not answered")

// batchChunk bounds the bytes of commands written before their replies are
// read. It stays under HAProxy's default buffer (tune.bufsize 16 KiB) and
// far under the socket buffer, so the write never waits for HAProxy while
// HAProxy waits for us to read, as HAProxy's ingress controller chunks its
// "set server" commands.
const batchChunk = 8 << 10

// Batch sends cmds to this HAProxy over the client's connection, no other
// command in between, and returns one Result per command, in order. In the
// connection's interactive ("prompt") mode each reply ends at a "> "
// prompt, so every command gets its own reply and error. Commands are
// applied in order; one that HAProxy refuses does not stop the next. An
// invalid command is not sent. The error is non-nil only when the
// connection failed: the results of the commands it left unanswered then
// wrap ErrNotAnswered.
func (c *Client) Batch(ctx context.Context, cmds []Command) ([]Result, error) {
	results := make([]Result, len(cmds))
	var send []int // indexes of the valid commands
	for i, cmd := range cmds {
		results[i].Command = cmd
		line, err := cmd.Line()
		if err == nil {
			err = checkCommand(line)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].Line = line
		send = append(send, i)
	}
	if len(send) == 0 {
		return results, nil
	}
	answered, err := c.batch(ctx, results, send)
	for _, i := range send[answered:] {
		results[i].Err = fmt.Errorf("haproxy %q: %w: %w", results[i].Line, ErrNotAnswered, err)
	}
	return results, err
}

// batch writes the valid commands (send indexes results) in chunks over
// the client's connection and reads each chunk's replies before the next;
// answered counts the commands whose reply was read, always a prefix of
// send.
func (c *Client) batch(ctx context.Context, results []Result, send []int) (answered int, err error) {
	err = c.do(ctx, false, func(ctx context.Context, cn *conn) error {
		answered = 0
		for start := 0; start < len(send); {
			var w strings.Builder
			end := start
			for end < len(send) && (end == start || w.Len()+len(results[send[end]].Line)+1 <= batchChunk) {
				w.WriteString(results[send[end]].Line)
				w.WriteByte('\n')
				end++
			}
			if n, err := io.WriteString(cn, w.String()); err != nil {
				if start == 0 {
					err = notSent(n, err)
				}
				return fmt.Errorf("write: %w", readError(ctx, err))
			}
			for _, i := range send[start:end] {
				reply, err := readPromptReply(cn.r)
				if err != nil {
					return fmt.Errorf("read: %w", readError(ctx, err))
				}
				res := &results[i]
				if res.Err = res.Command.checkReply(res.Line, reply); res.Err == nil {
					_, res.Reply = splitSeverity(reply)
				}
				answered++
			}
			start = end
		}
		return nil
	})
	if err != nil {
		return answered, fmt.Errorf("haproxy batch of %d: %w", len(send), err)
	}
	return answered, nil
}
