// Command lbctl steers slotscaler. With --socket it works straight on
// HAProxy's runtime socket (status, drain, enable), for when the sidecar is
// down; the HTTP API mode comes with slotscaler's API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/runtimeapi"
)

var version = "dev"

func main() {
	if err := newApp(os.Stdout).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "lbctl:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp(stdout io.Writer) *cli.App {
	return &cli.App{
		Name:    "lbctl",
		Usage:   "inspect and steer slotscaler slots",
		Version: version,
		Writer:  stdout,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Usage: "HAProxy runtime socket (unix:///path, /path or tcp://host:port)", EnvVars: []string{"LBCTL_SOCKET"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "per-command timeout"},
		},
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{Name: "status", Usage: "status [BACKEND]: slots with state, address, sessions, queue, last check", Action: status},
			{Name: "drain", Usage: "drain BACKEND/SLOT: stop sending new requests to a slot", Action: setState(runtimeapi.AdminDrain)},
			{Name: "enable", Usage: "enable BACKEND/SLOT: let a drained slot take requests again", Action: setState(runtimeapi.AdminReady)},
		},
	}
}

func client(c *cli.Context) (*runtimeapi.Client, error) {
	addr := c.String("socket")
	if addr == "" {
		return nil, cli.Exit("no runtime socket: pass --socket /run/haproxy/admin.sock or set LBCTL_SOCKET", 2)
	}
	rc, err := runtimeapi.New(addr)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return rc.WithTimeout(c.Duration("timeout")), nil
}

func status(c *cli.Context) error {
	rc, err := client(c)
	if err != nil {
		return err
	}
	backends, err := rc.Backends(c.Context, c.Args().First())
	if err != nil {
		return fmt.Errorf("status via %s: %w", rc, err)
	}
	w := c.App.Writer
	if c.String("output") == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(backends)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tSLOT\tSTATE\tSTATUS\tADDRESS\tSESSIONS\tQUEUE\tCHECK")
	for _, b := range backends {
		for _, s := range b.Servers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%d\t%d\t%d\t%s\n", b.Name, s.Name, s.Admin, s.Status, s.Addr, s.Port, s.Sessions, s.Queue, orDash(s.CheckStatus))
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func setState(state runtimeapi.AdminState) cli.ActionFunc {
	return func(c *cli.Context) error {
		backend, slot, ok := strings.Cut(c.Args().First(), "/")
		if !ok || backend == "" || slot == "" {
			return cli.Exit("want BACKEND/SLOT, e.g. web/slot2", 2)
		}
		rc, err := client(c)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
		defer cancel()
		if err := rc.SetState(ctx, backend, slot, state); err != nil {
			return fmt.Errorf("%s %s/%s: %w", c.Command.Name, backend, slot, err)
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s/%s: %s\n", backend, slot, state)
		return err
	}
}
