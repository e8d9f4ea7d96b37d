package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/slotscaler/slotscaler/internal/haproxytest"
	"github.com/slotscaler/slotscaler/internal/tooltest"
)

// scrapeWithPrometheus runs the real Prometheus server (Debian's
// prometheus package) on examples/prometheus.yml and examples/alerts.yml,
// with the targets moved to slotscalerAddr and haproxyAddr and the
// intervals shortened to 1s. Both targets must be up, every alert rule
// loaded and evaluated without error, and every query of
// examples/grafana-dashboard.json must answer without error (the gauges
// with data about the env's service).
func (e *env) scrapeWithPrometheus(slotscalerAddr, haproxyAddr string) {
	t, service := e.t, e.service
	t.Helper()
	bin := tooltest.Path(t, "prometheus", "prometheus")
	dir := t.TempDir()
	example, err := os.ReadFile("../examples/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(example)
	for _, r := range []struct{ old, new string }{
		{`"127.0.0.1:9180"`, `"` + slotscalerAddr + `"`},
		{`"127.0.0.1:8404"`, `"` + haproxyAddr + `"`},
		{"scrape_interval: 15s", "scrape_interval: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
	} {
		if strings.Count(cfg, r.old) != 1 {
			t.Fatalf("examples/prometheus.yml: want %s once (the test substitutes it)", r.old)
		}
		cfg = strings.Replace(cfg, r.old, r.new, 1)
	}
	alerts, err := os.ReadFile("../examples/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"prometheus.yml": []byte(cfg), "alerts.yml": alerts} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	listen := fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	log := &haproxytest.SyncBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	defer func() {
		haproxytest.StopProcess(cmd, syscall.SIGTERM, 10*time.Second)
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	}()
	api := "http://" + listen

	// Both targets up.
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	start := time.Now()
	e.waitFor("prometheus scrapes slotscaler and haproxy", 30*time.Second, func() bool {
		if getJSON(api+"/api/v1/targets", &targets) != nil {
			return false
		}
		up := map[string]bool{}
		for _, tg := range targets.Data.ActiveTargets {
			up[tg.Labels["job"]] = tg.Health == "up"
		}
		return len(up) == 2 && up["slotscaler"] && up["haproxy"]
	})
	t.Logf("prometheus: both targets up %s after start", time.Since(start).Round(time.Millisecond))

	// Every alert rule loaded and evaluated without error.
	want := strings.Count(string(alerts), "- alert:")
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name           string `json:"name"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	var problems []string
	e.waitFor(fmt.Sprintf("the %d alert rules evaluated", want), 20*time.Second, func() bool {
		if getJSON(api+"/api/v1/rules", &rules) != nil {
			return false
		}
		n, evaluated := 0, 0
		problems = nil
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "ok" && !strings.HasPrefix(r.LastEvaluation, "0001-") {
					evaluated++
				} else if r.Health == "err" {
					problems = append(problems, r.Name+": "+r.LastError)
				}
			}
		}
		return n == want && evaluated == want
	})
	if len(problems) > 0 {
		t.Errorf("alert rules with errors: %v", problems)
	}

	// Every dashboard query, with the variables Grafana fills in.
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("../examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	queries := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			queries++
			expr := strings.NewReplacer("$service", service, "$__rate_interval", "1m").Replace(target.Expr)
			var res struct {
				Status string `json:"status"`
				Error  string `json:"error"`
				Data   struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			if err := getJSON(api+"/api/v1/query?query="+url.QueryEscape(expr), &res); err != nil || res.Status != "success" {
				t.Errorf("dashboard panel %q: query %s: %v %s", p.Title, expr, err, res.Error)
				continue
			}
			// A gauge of slotscaler must have data once scraped.
			if !strings.Contains(expr, "rate(") && !strings.Contains(expr, "increase(") && len(res.Data.Result) == 0 {
				t.Errorf("dashboard panel %q: query %s returned no series", p.Title, expr)
			}
		}
	}
	t.Logf("prometheus: %d alert rules evaluated, %d dashboard queries answered", want, queries)
}

// getJSON decodes the JSON answer of a GET into v; a status other than
// 200 is an error.
func getJSON(u string, v any) error {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return nil
}
