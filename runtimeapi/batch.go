package runtimeapi

import (
	"bufio"
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

// Batch sends cmds to this HAProxy over one connection and returns one
// Result per command, in order. The connection is put in interactive
// ("prompt") mode, where HAProxy ends each reply with an empty line and a
// "> " prompt, so every command gets its own reply and error. Commands are
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

// promptPreamble puts the connection in interactive mode, which keeps it
// open after each line and ends each reply with a prompt, and numbers
// severities as every other command does.
const promptPreamble = "prompt\nset severity-output number\n"

// batch writes the valid commands (send indexes results) in chunks and
// reads each chunk's replies before the next; answered counts the
// commands whose reply was read, always a prefix of send.
func (c *Client) batch(ctx context.Context, results []Result, send []int) (answered int, err error) {
	conn, ctx, done, err := c.connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("haproxy batch of %d: %w", len(send), err)
	}
	defer done()
	r := bufio.NewReaderSize(conn, 16<<10)
	owed := strings.Count(promptPreamble, "\n") // preamble replies not yet read
	for start := 0; start < len(send); {
		var w strings.Builder
		if owed > 0 {
			w.WriteString(promptPreamble)
		}
		end := start
		for end < len(send) && (end == start || w.Len()+len(results[send[end]].Line)+1 <= batchChunk) {
			w.WriteString(results[send[end]].Line)
			w.WriteByte('\n')
			end++
		}
		if _, err := io.WriteString(conn, w.String()); err != nil {
			return answered, fmt.Errorf("haproxy batch: write: %w", readError(ctx, err))
		}
		for ; owed > 0; owed-- {
			reply, err := readPromptReply(r)
			if err != nil {
				return answered, fmt.Errorf("haproxy batch: read: %w", readError(ctx, err))
			}
			if reply != "" {
				return answered, &CommandError{Command: strings.ReplaceAll(strings.TrimSpace(promptPreamble), "\n", "; "), Severity: -1, Reply: reply, Err: ErrUnexpectedReply}
			}
		}
		for _, i := range send[start:end] {
			reply, err := readPromptReply(r)
			if err != nil {
				return answered, fmt.Errorf("haproxy batch: read: %w", readError(ctx, err))
			}
			res := &results[i]
			if res.Err = res.Command.checkReply(res.Line, reply); res.Err == nil {
				_, res.Reply = splitSeverity(reply)
			}
			answered++
		}
		start = end
	}
	return answered, nil
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
