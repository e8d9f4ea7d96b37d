package runtimeapi

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// A reply ends at the "> " prompt that starts a line, wherever the buffer
// and the reads cut the stream; a ">" starting a line of data does not end
// it, and what follows the prompt is left for the next reply.
func TestReplyReader(t *testing.T) {
	stream := "a,b\n>x\n\n> > line\n> rest"
	want := []string{"a,b\n>x\n\n", "", "line\n"}
	for _, size := range []int{16, 19, 64, 4096} {
		for _, oneByte := range []bool{false, true} {
			br := bufio.NewReaderSize(strings.NewReader(stream), size)
			for i, w := range want {
				rr := &replyReader{r: br, bol: true}
				var r io.Reader = rr
				if oneByte {
					r = iotest.OneByteReader(rr)
				}
				got, err := io.ReadAll(r)
				if err != nil || string(got) != w {
					t.Fatalf("buffer %d, one byte %v: reply %d = %q, %v; want %q", size, oneByte, i, got, err, w)
				}
			}
			if rest, _ := io.ReadAll(br); string(rest) != "rest" {
				t.Errorf("buffer %d, one byte %v: left %q, want %q", size, oneByte, rest, "rest")
			}
		}
	}
	rr := &replyReader{r: bufio.NewReader(strings.NewReader("cut\n")), bol: true}
	if _, err := io.ReadAll(rr); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reply without its prompt: %v, want ErrUnexpectedEOF", err)
	}
}
