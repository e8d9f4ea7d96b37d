package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/runtimeapi"
)

func TestSocketStatusDrainEnable(t *testing.T) {
	h := haproxytest.Start(t, `
backend web
  server-template slot 1-2 127.0.0.1:9 check disabled
  server static1 127.0.0.1:9
`)
	lbctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := newApp(&out).Run(append([]string{"lbctl", "--socket", h.Socket}, args...))
		return out.String(), err
	}
	if out, err := lbctl("drain", "web/static1"); err != nil || out != "web/static1: drain (straight on the socket)\n" {
		t.Fatalf("drain: %q %v", out, err)
	}
	out, err := lbctl("status", "web")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "SLOT") || !hasRow(out, "web", "static1", "drain") || !hasRow(out, "web", "slot1", "maint") {
		t.Errorf("status table:\n%s", out)
	}
	if _, err := lbctl("enable", "web/static1"); err != nil {
		t.Fatal(err)
	}
	out, err = lbctl("-o", "json", "status")
	if err != nil {
		t.Fatal(err)
	}
	var backends []runtimeapi.Backend
	if err := json.Unmarshal([]byte(out), &backends); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if s, _ := backends[0].Server("static1"); s.Admin != runtimeapi.AdminReady {
		t.Errorf("static1 after enable: %v", s.Admin)
	}
	if _, err := lbctl("scale", "web", "2"); exitCode(err) != exitUsage {
		t.Errorf("scale with --socket: %v, want usage error", err)
	}
	if _, err := lbctl("drain", "web/nope"); err == nil || !strings.Contains(err.Error(), "No such server") {
		t.Errorf("drain unknown slot: %v", err)
	}
	if _, err := lbctl("drain", "web"); exitCode(err) != exitUsage {
		t.Errorf("drain without slot: %v, want usage error", err)
	}
	var out2 bytes.Buffer
	err = newApp(&out2).Run([]string{"lbctl", "--socket", h.Dir + "/missing.sock", "status"})
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), "LBCTL_SOCKET") {
		t.Errorf("missing socket: %v (exit %d), want exit 3 naming how to set it", err, exitCode(err))
	}
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return exitFailed
}

func hasRow(out string, words ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == words[0] && f[1] == words[1] && f[2] == words[2] {
			return true
		}
	}
	return false
}
