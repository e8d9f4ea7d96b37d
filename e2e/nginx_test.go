package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/loadgen"
	"github.com/slotscaler/slotscaler/internal/nginxtest"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// TestPublicTrafficThroughNginx is the set-up the README is written for:
// clients -> nginx (examples/nginx/slotscaler-front.conf, TLS on loopback
// with a test certificate) -> HAProxy -> the slots. A load step sent to
// nginx scales the service up and back down; no client sees a failure.
func TestPublicTrafficThroughNginx(t *testing.T) {
	e := newEnv(t, config.ModeTemplate)
	front := nginxtest.Write(t, strings.TrimSuffix(strings.TrimPrefix(e.url, "http://"), "/"))
	front.Start(t)

	// The example's port-80 server sends browsers to https.
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + front.HTTPAddr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("plain http: %d Location %q, want 301 to https", resp.StatusCode, resp.Header.Get("Location"))
	}

	e.startLoop()
	e.loadStepUpAndDown("through nginx (TLS)", func(workers int) *loadgen.Run {
		return loadgen.StartTLS(context.Background(), front.URL(), workers, front.TLS)
	})
}
