// Command slotscaler is the sidecar: it checks and renders configuration
// now, and runs the control loop next to HAProxy.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/haproxy"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/templates"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitInvalidConfig is the exit code for a config with mistakes.
const exitInvalidConfig = 2

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		for line := range strings.SplitSeq(err.Error(), "\n") { // run's start-up problems, one per line
			fmt.Fprintln(os.Stderr, "slotscaler:", line)
		}
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	configFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "path of slotscaler.yaml", Value: "/etc/slotscaler/slotscaler.yaml", EnvVars: []string{"SLOTSCALER_CONFIG"}}
	return &cli.App{
		Name:      "slotscaler",
		Usage:     "HAProxy-native autoscaler for Docker services",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		ExitErrHandler: func(*cli.Context, error) {
			// main prints and exits; tests run the app in-process.
		},
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the control loop next to HAProxy",
				Flags: []cli.Flag{
					configFlag,
					&cli.BoolFlag{Name: "dry-run", Usage: "observe, decide and plan every tick; print the plan on stdout, change nothing"},
					&cli.StringFlag{Name: "log-format", Value: "json", Usage: "json or text"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
				},
				Action: func(c *cli.Context) error {
					log, err := newLogger(stderr, c.String("log-format"), c.String("log-level"))
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					cfg, err := checkConfig(stderr, c.String("config"))
					if err != nil {
						return err
					}
					ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, os.Interrupt)
					defer stop()
					var plan io.Writer // a dry run prints each tick's plan
					if c.Bool("dry-run") {
						plan = stdout
					}
					return runLoop(ctx, c.String("config"), cfg, plan, log)
				},
			},
			{
				Name:  "check",
				Usage: "validate slotscaler.yaml (and haproxy.cfg when haproxy.config_file is set); exit 2 on mistakes",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					path := c.String("config")
					cfg, err := loadConfig(stderr, path)
					if err != nil {
						return err
					}
					// Everything run would refuse at start, all at once.
					pre, preErr := preflight(cfg)
					for _, w := range pre.warnings {
						fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
					}
					if err := errors.Join(checkHAProxyConfig(cfg), preErr); err != nil {
						printErrors(stderr, path, err)
						return cli.Exit("", exitInvalidConfig)
					}
					_, err = fmt.Fprintf(stdout, "%s: ok (%d services)\n", path, len(cfg.Services))
					return err
				},
			},
			{
				Name:  "render",
				Usage: "print haproxy.cfg backend sections with slots for every service",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(stderr, c.String("config"))
					if err != nil {
						return err
					}
					return templates.RenderBackends(stdout, cfg)
				},
			},
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(*cli.Context) error {
					_, err := fmt.Fprintln(stdout, "slotscaler", version)
					return err
				},
			},
		},
	}
}

// loadConfig loads the file and, on mistakes, prints one per line and
// returns exit code 2.
func loadConfig(stderr io.Writer, path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		printErrors(stderr, path, err)
		return nil, cli.Exit("", exitInvalidConfig)
	}
	return cfg, nil
}

func printErrors(w io.Writer, path string, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "%s: %s\n", path, line)
	}
}

// checkConfig loads the config and, when haproxy.config_file is set,
// checks haproxy.cfg against it; mistakes are printed, one per line, and
// give exit code 2.
func checkConfig(stderr io.Writer, path string) (*config.Config, error) {
	cfg, err := loadConfig(stderr, path)
	if err != nil {
		return nil, err
	}
	if err := checkHAProxyConfig(cfg); err != nil {
		printErrors(stderr, path, err)
		return nil, cli.Exit("", exitInvalidConfig)
	}
	return cfg, nil
}

// checkHAProxyConfig checks haproxy.cfg against the services when
// haproxy.config_file is set.
func checkHAProxyConfig(cfg *config.Config) error {
	f := cfg.HAProxy.ConfigFile
	if f == "" {
		return nil
	}
	hc, err := haproxy.Load(f)
	if err != nil {
		return fmt.Errorf("haproxy.config_file: %w", err)
	}
	return haproxy.Check(hc, cfg.Services)
}
