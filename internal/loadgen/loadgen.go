// Package loadgen is the load generator of the demo, the end-to-end tests
// and the reaction-time benchmark: a fixed number of workers send GETs
// back to back to one URL (loopback only) until stopped, counting every
// failure (non-2xx or transport error) and which backend answered.
package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Result is what a run saw so far.
type Result struct {
	OK, Failed int
	Errors     []string             // the first few failures, for the test log
	FirstSeen  map[string]time.Time // first answer from each backend (the echo's first word)
	Answers    map[string]int       // answers per backend
	Versions   map[string]int       // answers per version (the echo's second word)
}

// Run is a load in progress.
type Run struct {
	method string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    Result
}

const maxErrors = 10

// Start sends load to url with workers concurrent clients until ctx ends
// or Stop is called. Each worker keeps its connection alive, as browsers
// and most API clients do.
func Start(ctx context.Context, url string, workers int) *Run {
	return StartMethod(ctx, url, workers, http.MethodGet)
}

// StartMethod is Start with another method than GET. Go's client resends
// a GET (or any idempotent request) that met a keep-alive connection
// closed under it, as browsers do; a POST is never resent, so POST load
// counts every such failure.
func StartMethod(ctx context.Context, url string, workers int, method string) *Run {
	return start(ctx, url, workers, method, nil)
}

// StartTLS is Start for an https URL on 127.0.0.1 too, trusting what
// tlsConfig trusts (e.g. nginx in front with a test certificate).
func StartTLS(ctx context.Context, url string, workers int, tlsConfig *tls.Config) *Run {
	return start(ctx, url, workers, http.MethodGet, tlsConfig)
}

func start(ctx context.Context, url string, workers int, method string, tlsConfig *tls.Config) *Run {
	if !strings.HasPrefix(url, "http://127.0.0.1:") && (tlsConfig == nil || !strings.HasPrefix(url, "https://127.0.0.1:")) {
		panic("loadgen: load only goes to 127.0.0.1, got " + url)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{method: method, cancel: cancel, res: Result{FirstSeen: map[string]time.Time{}, Answers: map[string]int{}, Versions: map[string]int{}}}
	for range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, TLSClientConfig: tlsConfig}}
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				r.once(ctx, client, url)
			}
		}()
	}
	return r
}

func (r *Run) once(ctx context.Context, client *http.Client, url string) {
	req, _ := http.NewRequestWithContext(ctx, r.method, url, nil)
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return // stopping: a request cut short by Stop is not a failure
	}
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if err == nil && resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.res.Failed++
		if len(r.res.Errors) < maxErrors {
			r.res.Errors = append(r.res.Errors, now.Format("15:04:05.000 ")+err.Error())
		}
		return
	}
	r.res.OK++
	fields := strings.Fields(string(body))
	if len(fields) > 0 {
		if _, seen := r.res.FirstSeen[fields[0]]; !seen {
			r.res.FirstSeen[fields[0]] = now
		}
		r.res.Answers[fields[0]]++
	}
	if len(fields) > 1 {
		r.res.Versions[fields[1]]++
	}
}

// Snapshot returns a copy of the counts so far.
func (r *Run) Snapshot() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.res
	c.Errors = append([]string(nil), r.res.Errors...)
	c.FirstSeen, c.Answers, c.Versions = maps.Clone(r.res.FirstSeen), maps.Clone(r.res.Answers), maps.Clone(r.res.Versions)
	return c
}

// Stop ends the load, waits for the workers and returns the final counts.
func (r *Run) Stop() Result {
	r.cancel()
	r.wg.Wait()
	return r.Snapshot()
}
