package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slotscaler/slotscaler/runtimeapi"
	"github.com/slotscaler/slotscaler/scaler"
)

func writeJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// replicaCounts is "3 serving, 1 starting, ...": every slot state by the
// name the API and the metrics give it.
func replicaCounts(r scaler.Replicas) string {
	counts := make([]string, len(scaler.SlotStates))
	for i, state := range scaler.SlotStates {
		counts[i] = fmt.Sprintf("%d %s", r.Of(state), state)
	}
	return strings.Join(counts, ", ")
}

func status(c *cli.Context) error {
	if c.String("socket") != "" {
		return socketStatus(c)
	}
	api, err := newAPIClient(c)
	if err != nil {
		return err
	}
	var services []scaler.ServiceStatus
	if name := c.Args().First(); name != "" {
		var s scaler.ServiceStatus
		err = api.do(c.Context, "GET", apiPath("v1", "services", name), nil, &s)
		services = append(services, s)
	} else {
		err = api.do(c.Context, "GET", "/v1/services", nil, &services)
	}
	if err != nil {
		return err
	}
	if c.String("output") == "json" {
		return writeJSON(c, services)
	}
	w := c.App.Writer
	for i, s := range services {
		if i > 0 {
			fmt.Fprintln(w)
		}
		control := string(s.Control)
		if s.Control == scaler.ControlPinned || s.Control == scaler.ControlPaused {
			control = fmt.Sprintf("%s at %d", s.Control, s.Pinned)
		}
		fmt.Fprintf(w, "SERVICE %s  backend %s (%s)  image %s\n", s.Name, s.Backend, s.Mode, s.Image)
		fmt.Fprintf(w, "  replicas %s; desired %d (%s)  limits %d-%d  control %s\n",
			replicaCounts(s.Replicas), s.Desired, s.Reason, s.Min, s.Max, control)
		if note := idleNote(s); note != "" { // wake (issue 13)
			fmt.Fprintf(w, "  idle %s\n", note)
		}
		if s.Rollout != nil {
			fmt.Fprintf(w, "  rollout %d %s: %s -> %s, %d/%d updated, %s\n", s.Rollout.ID, s.Rollout.State, s.Rollout.Previous, s.Rollout.Image, s.Rollout.Updated, s.Rollout.Replicas, s.Rollout.Message)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  last tick skipped: %s\n", s.Error)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SLOT\tSTATE\tHAPROXY\tADDRESS\tCONTAINER\tHOST\tSESSIONS\tQUEUE\tCHECK")
		for _, sl := range s.Slots {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", sl.Name, sl.State, orDash(sl.Status), orDash(sl.Addr), orDash(sl.Container), orDash(sl.Host), sl.Sessions, sl.Queue, orDash(sl.Check))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func drain(c *cli.Context) error {
	if c.String("socket") != "" {
		if c.Bool("wait") {
			return cli.Exit("--wait needs slotscaler's API", exitUsage)
		}
		return socketSetState(c, runtimeapi.AdminDrain)
	}
	api, backend, slot, err := postSlot(c, "drain")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s/%s: draining\n", backend, slot)
	if !c.Bool("wait") {
		return nil
	}
	// Only a stats read that began after the drain counts. Status stamps
	// are the server's clock, so they are compared only with each other:
	// the first newer tick may have begun before the drain, the second
	// began after our first look, which followed the drain.
	deadline := time.Now().Add(c.Duration("timeout"))
	var seen time.Time
	newer := -1 // ticks seen after the first look
	for {
		sl, updated, err := findSlot(c, api, backend, slot)
		if err != nil {
			return err
		}
		if newer < 0 || updated.After(seen) {
			seen, newer = updated, newer+1
		}
		if newer >= 2 && sl.Sessions == 0 && sl.Queue == 0 {
			_, err := fmt.Fprintf(c.App.Writer, "%s/%s: drained (no session, no queue)\n", backend, slot)
			return err
		}
		if time.Now().After(deadline) {
			return cli.Exit(fmt.Sprintf("%s/%s: still %d sessions and %d queued after %s", backend, slot, sl.Sessions, sl.Queue, c.Duration("timeout")), exitFailed)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// findSlot reads the slot of a backend from the service status, and when
// that status was taken.
func findSlot(c *cli.Context, api *apiClient, backend, slot string) (scaler.SlotStatus, time.Time, error) {
	var services []scaler.ServiceStatus
	if err := api.do(c.Context, "GET", "/v1/services", nil, &services); err != nil {
		return scaler.SlotStatus{}, time.Time{}, err
	}
	for _, s := range services {
		if s.Backend != backend {
			continue
		}
		for _, sl := range s.Slots {
			if sl.Name == slot {
				return sl, s.Updated, nil
			}
		}
	}
	return scaler.SlotStatus{}, time.Time{}, cli.Exit(fmt.Sprintf("slot %s/%s not found", backend, slot), exitFailed)
}

// postSlot sends a slot action (drain, enable) for the BACKEND/SLOT argument.
func postSlot(c *cli.Context, action string) (api *apiClient, backend, slot string, err error) {
	if backend, slot, err = slotArg(c); err != nil {
		return nil, "", "", err
	}
	if api, err = newAPIClient(c); err != nil {
		return nil, "", "", err
	}
	return api, backend, slot, api.do(c.Context, "POST", apiPath("v1", "slots", backend, slot, action), nil, nil)
}

func enable(c *cli.Context) error {
	if c.String("socket") != "" {
		return socketSetState(c, runtimeapi.AdminReady)
	}
	_, backend, slot, err := postSlot(c, "enable")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s/%s: returned to slotscaler\n", backend, slot)
	return err
}

func scale(c *cli.Context) error {
	n, err := strconv.Atoi(c.Args().Get(1))
	if c.Args().Len() != 2 || err != nil {
		return cli.Exit("want SERVICE N, e.g. lbctl scale web 3", exitUsage)
	}
	return postControl(c, c.Args().First(), "scale", map[string]int{"replicas": n})
}

func control(action string) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := serviceArg(c)
		if err != nil {
			return err
		}
		return postControl(c, name, action, nil)
	}
}

func postControl(c *cli.Context, name, action string, body any) error {
	api, err := apiOnly(c)
	if err != nil {
		return err
	}
	var s scaler.ServiceStatus
	if err := api.do(c.Context, "POST", apiPath("v1", "services", name, action), body, &s); err != nil {
		return err
	}
	if c.String("output") == "json" {
		return writeJSON(c, s)
	}
	msg := string(s.Control)
	if s.Control == scaler.ControlPinned || s.Control == scaler.ControlPaused {
		msg = fmt.Sprintf("%s at %d replicas until resume", s.Control, s.Pinned)
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s: %s\n", name, msg)
	return err
}

func rollout(c *cli.Context) error {
	name, err := serviceArg(c)
	if err != nil {
		return err
	}
	api, err := apiOnly(c)
	if err != nil {
		return err
	}
	if c.String("image") == "" {
		return cli.Exit("want --image IMAGE, e.g. lbctl rollout web --image registry.local/web:1.4.3", exitUsage)
	}
	var r scaler.Rollout
	body := map[string]string{"image": c.String("image"), "timeout": c.Duration("timeout").String()}
	path := apiPath("v1", "services", name, "rollout")
	if err := api.do(c.Context, "POST", path, body, &r); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "rollout %d of %s: %s -> %s, %d replicas\n", r.ID, name, r.Previous, r.Image, r.Replicas)
	if !c.Bool("wait") {
		return nil
	}
	deadline := time.Now().Add(c.Duration("timeout") + 30*time.Second) // the server ends it at its own deadline
	last := ""
	for {
		if err := api.do(c.Context, "GET", path, nil, &r); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s: %d/%d on %s, %s", time.Now().Format("15:04:05"), r.State, r.Updated, r.Replicas, r.Target, r.Message)
		if line[9:] != last {
			fmt.Fprintln(w, line)
			last = line[9:]
		}
		switch r.State {
		case scaler.RolloutSucceeded:
			return nil
		case scaler.RolloutRolledBack, scaler.RolloutFailed:
			return cli.Exit(fmt.Sprintf("rollout %d of %s %s: %s", r.ID, name, r.State, r.Message), exitFailed)
		}
		if time.Now().After(deadline) {
			return cli.Exit(fmt.Sprintf("rollout %d of %s still %s after %s", r.ID, name, r.State, c.Duration("timeout")), exitFailed)
		}
		time.Sleep(time.Second)
	}
}

func events(c *cli.Context) error {
	api, err := apiOnly(c)
	if err != nil {
		return err
	}
	path := "/v1/events"
	if name := c.Args().First(); name != "" {
		path += "?" + url.Values{"service": {name}}.Encode()
	}
	var evs []scaler.Event
	if err := api.do(c.Context, "GET", path, nil, &evs); err != nil {
		return err
	}
	if c.String("output") == "json" {
		return writeJSON(c, evs)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSERVICE\tSLOT\tKIND\tREASON\tMESSAGE")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), orDash(e.Service), orDash(e.Slot), e.Kind, orDash(e.Reason), e.Message)
	}
	return tw.Flush()
}
