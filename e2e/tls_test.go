package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/internal/dockertest"
	"github.com/slotscaler/slotscaler/scaler/config"
	"github.com/slotscaler/slotscaler/scaler/docker"
)

// TestDockerOverTLS drives the engine only through a tcp:// host with tls
// (CA, client certificate and key from the YAML), behind a TLS-terminating
// proxy on loopback that requires the client certificate: a container is
// started and bound, serves through HAProxy, then is drained and removed.
// A client certificate from another CA is refused with a clear error.
func TestDockerOverTLS(t *testing.T) {
	proxy := dockertest.NewTLSProxy(t)
	e := newEnvWith(t, config.ModeTemplate, func(c *config.Config) {
		c.Docker.Hosts[0].Endpoint = proxy.Endpoint
		c.Docker.Hosts[0].TLS = &proxy.Client
	})
	host := e.cfg.Docker.Hosts[0]
	engine, err := docker.New(host.Name, docker.Options{Endpoint: host.Endpoint, TLS: host.TLS})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	e.engine = engine
	api, _ := e.startLoopAndAPI()

	took := e.waitFor("started and bound over TLS", 30*time.Second, func() bool { return e.slots().serving == 1 })
	t.Logf("started and bound through %s in %s", proxy.Endpoint, took.Round(time.Millisecond))
	resp, err := http.Get(e.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the service answered %d through HAProxy", resp.StatusCode)
	}

	req, _ := http.NewRequest("POST", api+"/v1/services/"+e.service+"/scale", strings.NewReader(`{"replicas": 0}`))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scale to 0: %d", resp.StatusCode)
	}
	took = e.waitFor("drained and removed over TLS", 30*time.Second, func() bool {
		s := e.slots()
		return s.serving == 0 && s.other == 0 && e.containers() == 0
	})
	t.Logf("drained and removed in %s; %d connections through the proxy", took.Round(time.Millisecond), proxy.Served())
	if proxy.Served() == 0 {
		t.Errorf("no connection went through the TLS proxy")
	}
	for _, event := range []string{"event=serving", "event=drain", "event=container_removed"} {
		if !strings.Contains(e.logs.String(), event) {
			t.Errorf("no %s in the log:\n%s", event, e.logs.String())
		}
	}

	stranger, err := docker.New(host.Name, docker.Options{Endpoint: proxy.Endpoint, TLS: &proxy.Stranger})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := proxy.Served()
	_, err = stranger.Containers(ctx)
	t.Logf("a client certificate from another CA: %v", err)
	if err == nil || !strings.Contains(err.Error(), "tls: ") || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "on local") || !strings.Contains(err.Error(), "tls.cert must be signed") {
		t.Errorf("err = %v, want a TLS certificate error naming the host", err)
	}
	if proxy.Served() != served {
		t.Errorf("the stranger's connection reached the engine")
	}
}
