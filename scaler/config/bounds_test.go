package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// boundsDoc is a valid config; each case replaces one of its lines.
var boundsDoc = mustRead("testdata/small.yaml")

// withLine returns boundsDoc with the line starting with prefix replaced,
// or extra lines appended when prefix is "".
func withLine(t testing.TB, prefix, line string) string {
	t.Helper()
	if prefix == "" {
		return boundsDoc + line + "\n"
	}
	lines := strings.Split(boundsDoc, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = line
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return ""
}

// Each refused value is named by its YAML path; each accepted one loads.
func TestBoundsAndShapes(t *testing.T) {
	const svc = "    " // indentation of a service's keys
	for _, tt := range []struct {
		name, prefix, line, want string // want "" means accepted
	}{
		{"max_replicas at the limit", svc + "max_replicas", svc + "max_replicas: 1000", ""},
		{"max_replicas above", svc + "max_replicas", svc + "max_replicas: 3000000", "services[0].max_replicas: 3000000 is above the limit of 1000"},
		{"max_scale_up above", "", svc + "max_scale_up: 1001", "services[0].max_scale_up: 1001 is above the limit of 1000"},
		{"max_containers above", "docker:", "docker: {hosts: [{name: a, endpoint: unix:///x, max_containers: 10001}]}", "docker.hosts[0].max_containers: 10001 is above the limit of 10000"},
		{"interval above", "interval", "interval: 2h", "interval: 2h0m0s is above the limit of 1h0m0s"},
		{"drain_timeout above", "", svc + "drain_timeout: 25h", "services[0].drain_timeout: 25h0m0s is above the limit of 24h0m0s"},
		{"cooldown above", "", svc + "cooldown: {scale_down: 100h}", "services[0].cooldown.scale_down: 100h0m0s is above the limit of 24h0m0s"},
		{"stabilization above", "", svc + "stabilization: {scale_down: 100h}", "services[0].stabilization.scale_down: 100h0m0s is above the limit of 24h0m0s"},
		{"check.inter 1ms", svc + "check", svc + "check: {inter: 1ms}", ""},
		{"check.inter 1ns", svc + "check", svc + "check: {inter: 1ns}", "services[0].check.inter: 1ns is outside HAProxy's timer range 1ms to 596h31m23.647s"},
		{"check.inter above HAProxy's max", svc + "check", svc + "check: {inter: 600h}", "services[0].check.inter: 600h0m0s is outside HAProxy's timer range"},
		{"check.inter fraction of ms", svc + "check", svc + "check: {inter: 1500us}", "services[0].check.inter: 1.5ms is not a whole number of milliseconds"},
		{"fall 1 with template slots", svc + "check", svc + "check: {fall: 1}", "services[0].check.fall: must be at least 2 with template slots"},
		{"fall 1 with dynamic slots", svc + "check", svc + "check: {fall: 1}\n" + svc + "slots: {mode: dynamic}", ""},
		{"rise above", svc + "check", svc + "check: {rise: 1001}", "services[0].check: rise and fall must be at most 1000"},
		{"check.path newline", svc + "check", svc + `check: {path: "/a\nbackend evil"}`, `services[0].check.path: "/a\nbackend evil" cannot be one word of haproxy.cfg`},
		{"check.path space", svc + "check", svc + `check: {path: "/a b"}`, `services[0].check.path: "/a b" cannot be one word`},
		{"check.path comment", svc + "check", svc + `check: {path: "/a#b"}`, `services[0].check.path: "/a#b" cannot be one word`},
		{"check.path query", svc + "check", svc + `check: {path: "/health?full=1&x=%20"}`, ""},
		{"server_state_file newline", "haproxy:", `haproxy: {runtime_api: /run/haproxy.sock, server_state_file: "/s\n  bind :80"}`, `haproxy.server_state_file: "/s\n  bind :80" cannot be one word`},
		{"sessions NaN", svc + "target", svc + "target: {sessions_per_replica: .nan}", "services[0].target.sessions_per_replica: must be a finite number, got NaN"},
		{"queue Inf", svc + "target", svc + "target: {sessions_per_replica: 1, queue_per_replica: .inf}", "services[0].target.queue_per_replica: must be a finite number, got +Inf"},
		{"cpu_percent huge", svc + "target", svc + "target: {cpu_percent: 1e300}", "services[0].target.cpu_percent: 1e+300 is above the limit of 1e+09"},
		{"tolerance NaN", svc + "target", svc + "target: {sessions_per_replica: 1, tolerance: .nan}", "services[0].target.tolerance: must be a finite number, got NaN"},
		{"cpus NaN", svc + "container", svc + "container: {image: web, port: 80, cpus: .nan}", "services[0].container.cpus: must be a finite number, got NaN"},
		{"cpus 1e300", svc + "container", svc + "container: {image: web, port: 80, cpus: 1e300}", "services[0].container.cpus: 1e+300 is above the limit of 1e+09"},
		{"cpus above", svc + "container", svc + "container: {image: web, port: 80, cpus: 2000}", "services[0].container.cpus: 2000 is outside 0.01 to 1024"},
		{"cpus tiny", svc + "container", svc + "container: {image: web, port: 80, cpus: 0.001}", "services[0].container.cpus: 0.001 is outside 0.01 to 1024"},
		{"cpus half", svc + "container", svc + "container: {image: web, port: 80, cpus: 0.5, memory: 6m}", ""},
		{"memory overflow", svc + "container", svc + "container: {image: web, port: 80, memory: 9999999999999g}", `services[0].container.memory: size "9999999999999g" does not fit in 64 bits`},
		{"memory tiny", svc + "container", svc + "container: {image: web, port: 80, memory: 1k}", "services[0].container.memory: 1024 bytes is below Docker's smallest limit"},
		{"image path", svc + "container", svc + "container: {image: ../../../v1.41/containers/zzz, port: 80}", `services[0].container.image: image "../../../v1.41/containers/zzz" is not a Docker image reference`},
		{"image upper case", svc + "container", svc + "container: {image: Web:1, port: 80}", `services[0].container.image: image "Web:1" is not a Docker image reference`},
		{"image with registry and digest", svc + "container", svc + "container: {image: \"registry.local:5000/team/app:1@sha256:" + strings.Repeat("ab", 32) + "\", port: 80}", ""},
		{"env key with =", svc + "container", svc + "container: {image: web, port: 80, env: {A=B: x}}", `services[0].container.env["A=B"]: variable name "A=B" contains '=' or NUL`},
		{"env key empty", svc + "container", svc + `container: {image: web, port: 80, env: {"": x}}`, `services[0].container.env[""]: empty variable name`},
		{"env key NUL", svc + "container", svc + `container: {image: web, port: 80, env: {"A\0": x}}`, `services[0].container.env["A\x00"]: variable name "A\x00" contains '=' or NUL`},
		{"env value NUL", svc + "container", svc + `container: {image: web, port: 80, env: {A: "x\0"}}`, `services[0].container.env.A: control or invalid character '\x00' at byte 1`},
		{"env value and command with lines", svc + "container", svc + `container: {image: web, port: 80, env: {PEM: "a\nb\tc"}, command: [sh, -c, "echo a\necho b"]}`, ""},
		{"label value newline", svc + "container", svc + `container: {image: web, port: 80, labels: {team: "a\nb"}}`, `services[0].container.labels.team: control or invalid character '\n' at byte 1`},
		{"label key empty", svc + "container", svc + `container: {image: web, port: 80, labels: {"": x}}`, `services[0].container.labels[""]: empty label key`},
		{"unhealthy_after above", "", svc + "unhealthy_after: 25h", "services[0].unhealthy_after: 25h0m0s is above the limit of 24h0m0s"},
		{"wake durations at the limit", "", svc + "wake: {listen: 127.0.0.1:9301, timeout: 24h, idle_after: 24h}", ""},
		{"wake.timeout above", "", svc + "wake: {listen: 127.0.0.1:9301, timeout: 1000h}", "services[0].wake.timeout: 1000h0m0s is above the limit of 24h0m0s"},
		{"wake.idle_after above", "", svc + "wake: {listen: 127.0.0.1:9301, idle_after: 25h}", "services[0].wake.idle_after: 25h0m0s is above the limit of 24h0m0s"},
		{"volume newline", svc + "container", svc + `container: {image: web, port: 80, volumes: ["/a:/b\n"]}`, `services[0].container.volumes[0]: control or invalid character '\n' at byte 5`},
		{"state_dir escape", "", `state_dir: "/var/lib/x\e[2J"`, `state_dir: control or invalid character '\x1b' at byte 10`},
		{"token file newline", "api:", `api: {tokens: [{name: ci, role: admin, file: "/t\r"}]}`, `api.tokens[0].file: control or invalid character '\r' at byte 2`},
		{"listen port name", "api:", `api: {listen: "127.0.0.1:http"}`, `api.listen: port "http": want a number 0-65535`},
		{"listen port too big", "api:", `api: {listen: "127.0.0.1:99999"}`, `api.listen: port "99999": want a number 0-65535`},
		{"duplicate top-level key", "", "interval: 2s", "interval: duplicate key (line 11; first at line 4)"},
		{"duplicate nested key", "", svc + "max_replicas: 5", "services[0].max_replicas: duplicate key (line 11; first at line 8)"},
		{"duplicate env key", svc + "container", svc + "container: {image: web, port: 80, env: {A: 1, A: 2}}", `services[0].container.env.A: duplicate key (line 7; first at line 7)`},
		{"duplicate label key", svc + "container", svc + "container: {image: web, port: 80, labels: {\"a b\": 1, \"a b\": 2}}", `services[0].container.labels["a b"]: duplicate key (line 7; first at line 7)`},
		{"env value a list", svc + "container", svc + "container: {image: web, port: 80, env: {A: [1]}}", "services[0].container.env.A: cannot unmarshal !!seq into string (line 7)"},
		{"env value a number", svc + "container", svc + "container: {image: web, port: 80, env: {A: 1, B: true}}", ""},
		{"merge key in env", svc + "container", svc + "container: {image: web, port: 80, env: {<<: {A: 1}, B: 2}}", `services[0].container.env["<<"]: merge keys are not supported: write the entries out (line 7)`},
		{"second document", "", "---\ninterval: 2s", "parse config: a second YAML document (line 12): the file holds one config"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(withLine(t, tt.prefix, tt.line)))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.want)
			case tt.want != "" && !strings.Contains("\n"+err.Error(), "\n"+tt.want):
				t.Fatalf("error:\n%v\nwant a line starting %q", err, tt.want)
			}
		})
	}
}

// A file over MaxFileSize is refused before decoding; Load reads no more
// than one byte past the limit.
func TestSizeLimit(t *testing.T) {
	big := boundsDoc + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Parse([]byte(big))
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("error = %v, want the size limit", err)
	}
	path := t.TempDir() + "/big.yaml"
	writeFile(t, path, big)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load error = %v, want the size limit", err)
	}
	if _, err := Parse([]byte(boundsDoc + "# " + strings.Repeat("x", MaxFileSize-len(boundsDoc)-4) + "\n")); err != nil {
		t.Fatalf("a file just under the limit: %v", err)
	}
}

// A file just under MaxFileSize decodes in a second or so, even as one
// mapping of some 50,000 keys: yaml.v3 checks a mapping's keys for
// duplicates pair by pair, so such a file took 1m41s before maps were
// decoded here.
func TestLargestFileDecodesQuickly(t *testing.T) {
	var env strings.Builder
	for i := 0; env.Len() < MaxFileSize-len(boundsDoc)-100; i++ {
		fmt.Fprintf(&env, "KEY_%012d: v, ", i) // long keys: fewer than MaxValues fill the file
	}
	doc := withLine(t, "    container", "    container: {image: web:1, port: 80, env: {"+env.String()+"}}")
	start := time.Now()
	cfg, err := Parse([]byte(doc))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes, %d env entries: decoded in %s", len(doc), len(cfg.Services[0].Container.Env), took)
	if took > 10*time.Second { // 0.3 s here, 1.6 s with -race: a margin for a loaded machine
		t.Errorf("decoding took %s, want a second or so", took)
	}
}

// A file of many services that each fail to decode and to validate is
// answered quickly too: each validation error is matched against the
// decoding errors through a set, not one by one (this file took 13 s).
func TestManyErrorsReportedQuickly(t *testing.T) {
	const n = 16000 // four values each: just under MaxValues
	var b strings.Builder
	b.WriteString("haproxy: {runtime_api: /run/h.sock}\ndocker: {hosts: [{name: a, endpoint: unix:///x, max_containers: 3}]}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {name: s%d, container: {port: x}}\n", i)
	}
	start := time.Now()
	_, err := Parse([]byte(b.String()))
	took := time.Since(start)
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	t.Logf("%d bytes, %d services: %d error lines in %s", b.Len(), n, len(lines), took)
	if len(lines) != 4*n || lines[0] != "services[0].container.port: cannot unmarshal !!str `x` into int (line 4)" {
		t.Errorf("%d lines, first %q; want 4 per service, the decoding error first", len(lines), lines[0])
	}
	if took > 10*time.Second { // 0.5 s here, 3 s with -race: a margin for a loaded machine
		t.Errorf("took %s, want a second or so", took)
	}
}

// A field that failed to decode gets its decoding error only; the other
// fields are still validated, in the same answer.
func TestDecodeAndValidationErrorsTogether(t *testing.T) {
	doc := withLine(t, "    max_replicas", "    max_replicas: many\n    min_replicas: -1\n    schedule: {timezone: Mars/Olympus}")
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, want := range []string{
		"services[0].max_replicas: cannot unmarshal !!str `many` into int (line 8)",
		`services[0].schedule.timezone: unknown time zone "Mars/Olympus" (line 10)`,
		"services[0].min_replicas: must not be negative",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, noise := range []string{"services[0].max_replicas: must be at least 1", "timezone: required"} {
		if strings.Contains(got, noise) {
			t.Errorf("validation error %q of a field that failed to decode:\n%s", noise, got)
		}
	}
}

// Nested aliases in a 20 kB file would expand to millions of values (the
// walk follows aliases); the decoder stops at MaxValues, in well under a
// second.
func TestAliasExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("haproxy: {runtime_api: /x}\nx: &w {days: Mon, start: \"09:00\", end: \"10:00\", min_replicas: 1, max_replicas: 2}\ny: &ws [")
	b.WriteString(strings.Repeat("*w, ", 2000) + "*w]\n")
	b.WriteString("z: &s {name: web, container: {image: web, port: 80}, max_replicas: 4, target: {sessions_per_replica: 10}, schedule: {timezone: UTC, windows: *ws}}\n")
	b.WriteString("services: [" + strings.Repeat("*s, ", 2000) + "*s]\n")
	start := time.Now()
	_, err := Parse([]byte(b.String()))
	if err == nil || err.Error() != "parse config: more than 65536 values once aliases are expanded" {
		t.Fatalf("error = %v", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %s", d)
	}
	t.Logf("%d bytes refused in %s", b.Len(), time.Since(start))
}

// A document that is not a mapping gets that one error, not a validation
// error for every required key.
func TestNotAMappingAlone(t *testing.T) {
	_, err := Parse([]byte("[1, 2]\n"))
	if err == nil || err.Error() != "expected a mapping (line 1)" {
		t.Fatalf("error = %v", err)
	}
}

// A field refused for its shape is not refused a second time for the
// control character in it.
func TestControlCharacterReportedOnce(t *testing.T) {
	doc := withLine(t, "    check", `    check: {path: "/a\nb"}`)
	doc = strings.Replace(doc, "name: web", `name: "web\tx"`, 1)
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, path := range []string{"services[0].check.path: ", "services[0].name: "} {
		if n := strings.Count(err.Error(), path); n != 1 {
			t.Errorf("%d lines for %s:\n%v", n, path, err)
		}
	}
}
