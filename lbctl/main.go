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
	"slices"
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
		OnUsageError:   usageError,
		Action: func(c *cli.Context) error { // runs when no command matched
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("no command %q (see lbctl --help)", c.Args().First()), exitUsage)
			}
			return cli.ShowAppHelp(c)
		},
		Commands: withArgCounts([]*cli.Command{
			{Name: "status", ArgsUsage: "[SERVICE]", Usage: "services and their slots: state, address, container, host, sessions, queue, last check", Action: status},
			{Name: "drain", ArgsUsage: "BACKEND/SLOT", Usage: "stop sending new requests to a slot; slotscaler keeps its container and covers with other slots", Flags: waitFlags, Action: drain},
			{Name: "enable", ArgsUsage: "BACKEND/SLOT", Usage: "return a drained slot to slotscaler", Action: enable},
			{Name: "scale", ArgsUsage: "SERVICE N", Usage: "pin a service at N replicas until resume", Action: scale},
			{Name: "pause", ArgsUsage: "SERVICE", Usage: "freeze a service's replica count (unhealthy containers are still replaced)", Action: control("pause")},
			{Name: "resume", ArgsUsage: "SERVICE", Usage: "return a paused or pinned service to autoscaling", Action: control("resume")},
			{Name: "rollout", ArgsUsage: "SERVICE --image IMAGE", Usage: "health-gated rolling update; with --wait, exit 1 when it fails or is rolled back",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "image", Usage: "image to roll out (required)"}}, waitFlags...), Action: rollout},
			{Name: "events", ArgsUsage: "[SERVICE]", Usage: "what slotscaler did and saw, oldest first", Action: events},
		}),
	}
}

// usageError turns a flag parsing error into exit code 2.
func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(fmt.Sprintf("%v (see lbctl --help)", err), exitUsage)
}

// withArgCounts refuses, with exit code 2, more arguments than a command's
// ArgsUsage names ("[SERVICE]": at most one), and routes its flag errors to
// exit code 2 too.
func withArgCounts(cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		most := len(strings.Fields(strings.Split(cmd.ArgsUsage, "--")[0]))
		cmd.OnUsageError = usageError
		cmd.Before = func(c *cli.Context) error {
			if c.Args().Len() > most {
				return cli.Exit(fmt.Sprintf("lbctl %s takes %s, got %q", cmd.Name, cmd.ArgsUsage, c.Args().Slice()), exitUsage)
			}
			return nil
		}
	}
	return cmds
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

// interspersed moves a command's flags before its arguments, and global
// flags written after the command before it, so that "lbctl rollout web
// --image X --wait" and "lbctl status web -o json" work: urfave/cli stops
// reading flags at the first argument and reads global ones only before
// the command.
func interspersed(app *cli.App, args []string) []string {
	for i, a := range args {
		cmd := app.Command(a)
		if i == 0 || cmd == nil || i > 1 && takesValue(app.Flags, args[i-1]) {
			continue
		}
		var global, flags, rest []string
		for j := i + 1; j < len(args); j++ {
			t := args[j]
			name, _, hasValue := strings.Cut(t, "=")
			switch {
			case t == "--":
				rest = append(rest, args[j+1:]...)
				j = len(args)
			case !strings.HasPrefix(t, "-") || len(t) == 1:
				rest = append(rest, t)
			case isFlag(app.Flags, name) && !isFlag(cmd.Flags, name):
				global = append(global, t)
				if !hasValue && takesValue(app.Flags, name) && j+1 < len(args) {
					j++
					global = append(global, args[j])
				}
			default:
				flags = append(flags, t)
				if !hasValue && takesValue(cmd.Flags, name) && j+1 < len(args) {
					j++
					flags = append(flags, args[j])
				}
			}
		}
		out := append(append([]string{}, args[:i]...), global...)
		return append(append(append(out, a), flags...), rest...)
	}
	return args
}

// isFlag reports whether arg ("-o", "--output") names one of flags.
func isFlag(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether arg names one of flags that is not a switch.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); !isBool && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}
