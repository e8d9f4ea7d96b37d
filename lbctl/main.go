// Command lbctl steers slotscaler through its HTTP API (status, drain,
// enable, scale, pause, resume, rollout, events), or, with --socket, works
// straight on HAProxy's runtime socket (status, drain, enable) for when the
// sidecar is down.
//
// Exit codes: 0 success; 1 the API or HAProxy refused, a rollout failed or
// was rolled back, or --wait timed out; 2 usage error; 3 the API or socket
// could not be reached.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

var version = "dev"

// Exit codes.
const (
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

func main() {
	app := newApp(os.Stdout)
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "lbctl:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(exitFailed)
	}
}

func newApp(stdout io.Writer) *cli.App {
	waitFlags := []cli.Flag{
		&cli.BoolFlag{Name: "wait", Usage: "return only when done (exit 1 on failure or timeout)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "how long --wait waits"},
	}
	return &cli.App{
		Name:    "lbctl",
		Usage:   "inspect and steer slotscaler",
		Version: version,
		Writer:  stdout,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "api", Value: "http://127.0.0.1:9180", Usage: "slotscaler API base URL", EnvVars: []string{"SLOTSCALER_API"}},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the API bearer token (else $SLOTSCALER_TOKEN)"},
			&cli.StringFlag{Name: "socket", Usage: "work straight on HAProxy's runtime socket (unix:///path, /path or tcp://host:port): status, drain, enable", EnvVars: []string{"LBCTL_SOCKET"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
			&cli.DurationFlag{Name: "request-timeout", Value: 10 * time.Second, Usage: "timeout of each request"},
		},
		Before: func(c *cli.Context) error {
			if o := c.String("output"); o != "table" && o != "json" {
				return cli.Exit(fmt.Sprintf("-o %q: want table or json", o), exitUsage)
			}
			return nil
		},
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{Name: "status", ArgsUsage: "[SERVICE]", Usage: "services and their slots: state, address, container, host, sessions, queue, last check", Action: status},
			{Name: "drain", ArgsUsage: "BACKEND/SLOT", Usage: "stop sending new requests to a slot; slotscaler keeps its container and covers with other slots", Flags: waitFlags, Action: drain},
			{Name: "enable", ArgsUsage: "BACKEND/SLOT", Usage: "return a drained slot to slotscaler", Action: enable},
			{Name: "scale", ArgsUsage: "SERVICE N", Usage: "pin a service at N replicas until resume", Action: scale},
			{Name: "pause", ArgsUsage: "SERVICE", Usage: "freeze a service's replica count (unhealthy containers are still replaced)", Action: control("pause")},
			{Name: "resume", ArgsUsage: "SERVICE", Usage: "return a paused or pinned service to autoscaling", Action: control("resume")},
			{Name: "rollout", ArgsUsage: "SERVICE --image IMAGE", Usage: "health-gated rolling update; with --wait, exit 1 when it fails or is rolled back",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "image", Required: true, Usage: "image to roll out"}}, waitFlags...), Action: rollout},
			{Name: "events", ArgsUsage: "[SERVICE]", Usage: "what slotscaler did and saw, oldest first", Action: events},
		},
	}
}

// slotArg parses BACKEND/SLOT.
func slotArg(c *cli.Context) (string, string, error) {
	backend, slot, ok := strings.Cut(c.Args().First(), "/")
	if !ok || backend == "" || slot == "" || strings.Contains(slot, "/") {
		return "", "", cli.Exit("want BACKEND/SLOT, e.g. web/slot2", exitUsage)
	}
	return backend, slot, nil
}

func serviceArg(c *cli.Context) (string, error) {
	if c.Args().Len() < 1 || c.Args().First() == "" {
		return "", cli.Exit("want SERVICE, e.g. lbctl "+c.Command.Name+" web", exitUsage)
	}
	return c.Args().First(), nil
}

// apiOnly is the API client of a command that has no --socket mode.
func apiOnly(c *cli.Context) (*apiClient, error) {
	if c.String("socket") != "" {
		return nil, cli.Exit(c.Command.Name+" needs slotscaler's API; --socket only does status, drain and enable", exitUsage)
	}
	return newAPIClient(c)
}

// interspersed moves a command's flags before its arguments, so that
// "lbctl rollout web --image X --wait" works: urfave/cli stops reading
// flags at the first argument.
func interspersed(app *cli.App, args []string) []string {
	for i, a := range args {
		cmd := app.Command(a)
		if i == 0 || cmd == nil {
			continue
		}
		takesValue := map[string]bool{}
		for _, f := range cmd.Flags {
			_, isBool := f.(*cli.BoolFlag)
			for _, n := range f.Names() {
				takesValue["-"+n], takesValue["--"+n] = !isBool, !isBool
			}
		}
		var flags, rest []string
		for j := i + 1; j < len(args); j++ {
			switch t := args[j]; {
			case t == "--":
				rest = append(rest, args[j+1:]...)
				j = len(args)
			case strings.HasPrefix(t, "-") && len(t) > 1:
				flags = append(flags, t)
				if takesValue[t] && j+1 < len(args) {
					j++
					flags = append(flags, args[j])
				}
			default:
				rest = append(rest, t)
			}
		}
		out := append(append(append([]string{}, args[:i+1]...), flags...), rest...)
		return out
	}
	return args
}
