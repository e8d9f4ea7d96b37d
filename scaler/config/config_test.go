package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadExample(t *testing.T) {
	cfg, err := Load("../../examples/slotscaler.yaml")
	if err != nil {
		t.Fatalf("examples/slotscaler.yaml: %v", err)
	}
	s := cfg.Services[0]
	if s.Name != "echo" || s.Backend != "echo" || s.MaxReplicas != 5 || cfg.Interval.Duration != 500*time.Millisecond {
		t.Errorf("unexpected service: %+v", s)
	}
	if s.Schedule.Timezone.Name != "Asia/Dhaka" || s.Container.Memory != 64<<20 {
		t.Errorf("schedule/memory not parsed: %+v %v", s.Schedule.Timezone, s.Container.Memory)
	}
}

// Every mistake is reported at once, each with its path: decoding errors
// in file order, then the validation errors of the fields that decoded.
func TestLoadReportsEveryErrorWithPath(t *testing.T) {
	_, err := Load("testdata/bad.yaml")
	if err == nil {
		t.Fatal("bad.yaml loaded without error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		"interval: invalid duration \"1 second\": want e.g. 500ms, 10s, 2m (line 10)",
		"services[0].container.imagee: unknown key (line 14)",
		"services[0].schedule.timezone: unknown time zone \"Asia/Dhakka\" (line 19)",
		"services[0].schedule.windows[1].days: invalid days \"Funday\": want e.g. Mon-Fri, Sat,Sun or daily (line 22)",
		"services[0].schedule.windows[1].start: invalid time \"25:00\": want HH:MM between 00:00 and 24:00 (line 22)",
	}
	want = append(want, badValidation...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// badValidation are bad.yaml's validation errors, reported after its
// decoding errors, or alone once those are fixed.
var badValidation = []string{
	`haproxy.runtime_api[0]: runtime api address "http://localhost": want unix:///path, /path or tcp://host:port`,
	`docker.hosts[1].name: duplicate host name "a"`,
	`docker.hosts[1].endpoint: "ftp://x": want unix://, tcp:// or ssh://`,
	`docker.hosts[1].address: "nope" is not an IP address`,
	`docker.hosts[1].max_containers: must be at least 1`,
	`api.tokens[0]: set exactly one of file or env: token values never live in this file`,
	`api.tokens[0].role: "root": want viewer, operator or admin`,
	`services[0].slots.mode: "magic": want template or dynamic`,
	`services[0].container.port: must be 1-65535, got 70000`,
	`services[0].min_replicas: 5 is above max_replicas 3`,
}

func TestValidateReportsEveryErrorWithPath(t *testing.T) {
	data, err := os.ReadFile("testdata/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Fix the decode errors so validation runs on the rest.
	fixed := strings.NewReplacer("1 second", "1s", "imagee: typo", "memory: 1g", "Dhakka", "Dhaka", "Funday", "Sun", "25:00", "22:00").Replace(string(data))
	_, err = Parse([]byte(fixed))
	if err == nil {
		t.Fatal("want validation errors")
	}
	got := strings.Split(err.Error(), "\n")
	want := badValidation
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("validation errors (-want +got):\n%s", diff)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("errors are not FieldErrors: %T", err)
	}
}

func TestDecodeTypes(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, wantErr string
	}{
		{"overnight window ok", `{days: Fri-Mon, start: "22:00", end: "06:00", min_replicas: 1, max_replicas: 2}`, ""},
		{"end 24:00 ok", `{days: daily, start: "00:00", end: "24:00", min_replicas: 1, max_replicas: 2}`, ""},
		{"empty window", `{days: Mon, start: "09:00", end: "09:00", min_replicas: 1, max_replicas: 2}`, "services[0].schedule.windows[0].end: equals start 09:00: a window needs a length"},
		{"min above max", `{days: Mon, start: "09:00", end: "10:00", min_replicas: 3, max_replicas: 2}`, "services[0].schedule.windows[0].min_replicas: 3 is above max_replicas 2"},
		{"above ceiling", `{days: Mon, start: "09:00", end: "10:00", min_replicas: 1, max_replicas: 9}`, "services[0].schedule.windows[0].max_replicas: 9 is above the service's max_replicas 4 (which sizes its slots)"},
		{"window not a mapping", `[1, 2]`, "services[0].schedule.windows[0]: expected a mapping (line 1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := `
haproxy: {runtime_api: /run/haproxy.sock}
docker: {hosts: [{name: a, endpoint: unix:///var/run/docker.sock, max_containers: 3}]}
services:
  - name: web
    container: {image: web, port: 80}
    min_replicas: 1
    max_replicas: 4
    target: {sessions_per_replica: 10}
    schedule: {timezone: Europe/Berlin, outside: {min_replicas: 1, max_replicas: 1}, windows: [` + tt.yaml + `]}
`
			_, err := Parse([]byte(doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), strings.TrimSuffix(tt.wantErr, " (line 1)"))):
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A service may go to zero only with a wake block, whose listen address is
// its own.
func TestWake(t *testing.T) {
	const service = `
  - name: %s
    container: {image: web, port: 80}
    max_replicas: 2
    target: {sessions_per_replica: 10}
`
	for _, tt := range []struct {
		name, services string
		want           []string
	}{
		{"min 1 without wake", fmt.Sprintf(service, "a") + "    min_replicas: 1\n", nil},
		{"min omitted without wake is 1", fmt.Sprintf(service, "a"), nil},
		{"min 0 without wake", fmt.Sprintf(service, "a") + "    min_replicas: 0\n", []string{
			"services[0].min_replicas: 0 needs a wake block (wake: {listen: 127.0.0.1:PORT}) so that requests to a service at zero are held, not refused"}},
		{"schedule min 0 without wake", fmt.Sprintf(service, "a") + "    schedule: {timezone: UTC, outside: {min_replicas: 0, max_replicas: 0}}\n", []string{
			"services[0].schedule.outside.max_replicas: must be at least 1",
			"services[0].schedule.outside.min_replicas: 0 needs a wake block (wake: {listen: 127.0.0.1:PORT}) so that requests to a service at zero are held, not refused"}},
		{"wake with closed nights", fmt.Sprintf(service, "a") + "    wake: {listen: 127.0.0.1:9301}\n    schedule: {timezone: UTC, outside: {min_replicas: 0, max_replicas: 0}}\n", nil},
		{"closed with a min", fmt.Sprintf(service, "a") + "    wake: {listen: 127.0.0.1:9301}\n    schedule: {timezone: UTC, outside: {min_replicas: 1, max_replicas: 0}}\n", []string{
			"services[0].schedule.outside.min_replicas: 1 is above max_replicas 0"}},
		{"bad wake", fmt.Sprintf(service, "a") + "    wake: {listen: localhost:80, timeout: 1ms, max_pending: -1, idle_after: 10ms}\n", []string{
			`services[0].wake.listen: "localhost:80": want ip:port, e.g. 127.0.0.1:9301 (HAProxy's "server wake" line points there)`,
			"services[0].wake.timeout: must be at least 100ms, got 1ms",
			"services[0].wake.max_pending: must be at least 1, got -1",
			"services[0].wake.idle_after: must be at least 1s, got 10ms"}},
		{"listen used twice", fmt.Sprintf(service, "a") + "    wake: {listen: 127.0.0.1:9301}\n" + fmt.Sprintf(service, "b") + "    wake: {listen: 127.0.0.1:9301}\n" + fmt.Sprintf(service, "c") + "    wake: {listen: 127.0.0.1:9180}\n", []string{
			"services[1].wake.listen: 127.0.0.1:9301 is already used by services[0].wake.listen",
			"services[2].wake.listen: 127.0.0.1:9180 is already used by api.listen"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte("haproxy: {runtime_api: /run/haproxy.sock}\ndocker: {hosts: [{name: a, endpoint: unix:///var/run/docker.sock, max_containers: 3}]}\nservices:" + tt.services))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("errors (-want +got):\n%s", diff)
			}
			if w := cfg; w != nil && w.Services[0].Wake != nil {
				if got := *w.Services[0].Wake; got.Timeout.Duration != DefaultWakeTimeout || got.MaxPending != DefaultWakeMaxPending || got.IdleAfter.Duration != DefaultWakeIdleAfter {
					t.Errorf("wake defaults not applied: %+v", got)
				}
			}
		})
	}
}

func TestDays(t *testing.T) {
	var d Days
	for _, tt := range []struct {
		in   string
		want []time.Weekday
	}{
		{"Mon-Fri", []time.Weekday{1, 2, 3, 4, 5}},
		{"Fri-Mon", []time.Weekday{5, 6, 0, 1}},
		{"sat,sun", []time.Weekday{6, 0}},
		{"Wed", []time.Weekday{3}},
	} {
		if err := (&d).UnmarshalYAML(scalar(tt.in)); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		var got Days
		for _, w := range tt.want {
			got[w] = true
		}
		if got != d {
			t.Errorf("Days(%q) = %v, want %v", tt.in, d, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../examples/slotscaler.yaml"); err == nil {
		f.Add(data)
	}
	if data, err := os.ReadFile("testdata/bad.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("services: [{name: x, schedule: {windows: [{days: \"Fri-\"}]}}]"))
	f.Add([]byte(boundsDoc + "    drain_timeout: 1h\n"))
	f.Add([]byte(boundsDoc + "interval: 2s\n---\ninterval: 3s\n"))
	f.Add([]byte("x: &w {days: Mon}\ny: &ws [*w, *w, *w]\nservices: [{schedule: {windows: *ws}}, {schedule: {windows: *ws}}]\n"))
	f.Add([]byte(withLine(f, "    container", "    container: {image: \"Web/../x\", port: 80, env: {\"A=B\": \"\\0\"}, cpus: .nan, memory: 99999999999g}")))
	f.Add([]byte(withLine(f, "    check", "    check: {path: \"/a\\nbackend x\", inter: 1ns}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if strings.TrimSpace(line) == "" {
					t.Fatalf("empty line in the error:\n%v", err)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		// What was accepted stays accepted, and holds no string that could
		// add a line to haproxy.cfg or a Runtime API command.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if errs := controlChars(reflect.ValueOf(cfg).Elem(), "", true); len(errs) > 0 {
			t.Fatalf("accepted config holds control characters: %v", errs)
		}
		for _, s := range cfg.Services {
			if s.MaxReplicas > MaxReplicasLimit || s.Check.Inter.Duration < MinCheckInter {
				t.Fatalf("accepted service out of bounds: %+v", s)
			}
		}
	})
}
