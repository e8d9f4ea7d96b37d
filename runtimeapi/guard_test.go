package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func readReply(cn *conn) error {
	_, err := readPromptReply(cn.r)
	return err
}

// The guard in exchange refuses a command that would reach HAProxy as two,
// and sends nothing at all: the socket sees no connection.
func TestExchangeRefusesCommandSeparators(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for { // every command, the preamble's too, answered with an empty reply
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					_, _ = conn.Write([]byte("\n> "))
				}
			}()
		}
	}()
	c, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		command string
		verb    string // what the error names
		arg     string
	}{
		{"newline", "set server web/slot1 state ready\nshutdown sessions server web/slot2", "set server", "ready\nshutdown"},
		{"carriage return", "set weight web/slot1 50\r", "set weight", "50\r"},
		{"semicolon", "show stat web;shutdown 6 -1", "show stat", "web;shutdown"},
		{"in the first word", "show;info", "show", "show;info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.exchange(context.Background(), tt.command, false, readReply)
			t.Log(err)
			if !errors.Is(err, ErrUnsafeArgument) {
				t.Fatalf("command(%q) = %v, want ErrUnsafeArgument", tt.command, err)
			}
			for _, want := range []string{strconv.Quote(tt.verb), strconv.Quote(tt.arg)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the socket, want none", n)
	}
	// A clean command still goes through the same exchange.
	if err := c.exchange(context.Background(), "show info", false, readReply); err != nil {
		t.Fatalf("clean command: %v", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("clean command: %d connections, want 1", n)
	}
}
