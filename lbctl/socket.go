package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/runtimeapi"
)

// socketClient is the runtime socket of --socket mode.
func socketClient(c *cli.Context) (*runtimeapi.Client, error) {
	rc, err := runtimeapi.New(c.String("socket"))
	if err != nil {
		return nil, cli.Exit(err.Error(), exitUsage)
	}
	return rc.WithTimeout(c.Duration("request-timeout")), nil
}

// socketErr tells an unreachable socket (exit 3) from a refusal (exit 1).
func socketErr(rc *runtimeapi.Client, what string, err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, os.ErrNotExist) || errors.Is(err, context.DeadlineExceeded) {
		return cli.Exit(fmt.Sprintf("%s: cannot reach HAProxy's runtime socket %s: %v (set --socket or $LBCTL_SOCKET to the stats socket of haproxy.cfg)", what, rc, err), exitUnreachable)
	}
	return cli.Exit(fmt.Sprintf("%s: %v", what, err), exitFailed)
}

func socketStatus(c *cli.Context) error {
	rc, err := socketClient(c)
	if err != nil {
		return err
	}
	backends, err := rc.Backends(c.Context, c.Args().First())
	if err != nil {
		return socketErr(rc, "status", err)
	}
	if c.String("output") == "json" {
		return writeJSON(c, backends)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tSLOT\tSTATE\tSTATUS\tADDRESS\tWEIGHT\tSESSIONS\tQUEUE\tCHECK")
	for _, b := range backends {
		for _, s := range b.Servers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%d\t%d\t%d\t%d\t%s\n", b.Name, s.Name, s.Admin, s.Status, s.Addr, s.Port, s.Weight, s.Sessions, s.Queue, orDash(s.CheckStatus))
		}
	}
	return tw.Flush()
}

func socketSetState(c *cli.Context, state runtimeapi.AdminState) error {
	backend, slot, err := slotArg(c)
	if err != nil {
		return err
	}
	rc, err := socketClient(c)
	if err != nil {
		return err
	}
	if err := rc.SetState(c.Context, backend, slot, state); err != nil {
		return socketErr(rc, fmt.Sprintf("%s %s/%s", c.Command.Name, backend, slot), err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s/%s: %s (straight on the socket)\n", backend, slot, state)
	return err
}
