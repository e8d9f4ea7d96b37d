package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// apiClient talks to slotscaler's HTTP API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiPath joins escaped path segments: a name holding '/', '#' or '?'
// stays one segment and cannot reach another endpoint. A name "." or ".."
// escapes to itself: do refuses it.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteString("/")
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func newAPIClient(c *cli.Context) (*apiClient, error) {
	token := os.Getenv("SLOTSCALER_TOKEN")
	if f := c.String("token-file"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--token-file: %v", err), exitUsage)
		}
		token = strings.TrimSpace(string(data))
	}
	if token == "" {
		return nil, cli.Exit("no API token: pass --token-file FILE or set SLOTSCALER_TOKEN (or use --socket for status/drain/enable straight on HAProxy)", exitUsage)
	}
	// A redirect would turn a POST into a GET of another path: never follow one.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &apiClient{base: strings.TrimSuffix(c.String("api"), "/"), token: token, http: &http.Client{Timeout: c.Duration("request-timeout"), CheckRedirect: noRedirect}}, nil
}

// do sends in (when not nil) as JSON and decodes the answer into out.
func (a *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	// A server or proxy that resolves dot segments would read such a name
	// as a step of the path, to another endpoint.
	if slices.ContainsFunc(strings.Split(path, "/"), func(s string) bool { return s == "." || s == ".." }) {
		return cli.Exit(fmt.Sprintf("%s %s: a name cannot be '.' or '..'", method, path), exitUsage)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return cli.Exit(fmt.Sprintf("--api %q: %v", a.base, err), exitUsage)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return cli.Exit(fmt.Sprintf("cannot reach slotscaler's API at %s: %v (set --api or $SLOTSCALER_API; when the sidecar is down, lbctl --socket PATH status|drain|enable works on HAProxy directly)", a.base, err), exitUnreachable)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s %s: reading the answer: %v", method, path, err), exitUnreachable)
	}
	if resp.StatusCode/100 == 3 {
		return cli.Exit(fmt.Sprintf("%s %s: %d %s to %q: lbctl follows no redirect (check --api, and that names hold no '..')", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Location")), exitFailed)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return cli.Exit(fmt.Sprintf("%s %s: %d %s: %s", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), e.Error), exitFailed)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return cli.Exit(fmt.Sprintf("%s %s: unexpected answer: %v", method, path, err), exitFailed)
	}
	return nil
}
