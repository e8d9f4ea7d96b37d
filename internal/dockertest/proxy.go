package dockertest

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a unix socket (or, from NewTLSProxy, a TLS port on loopback) in
// front of the Docker engine that a test can cut (every connection closed,
// new ones refused) and restore, to play an engine that went away.
type Proxy struct {
	Endpoint string // unix:///... or tcp://127.0.0.1:PORT for docker.Options
	listen   func() (net.Listener, error)
	target   string
	served   atomic.Int64 // connections passed on to the engine
	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to the local engine, stopped with the test.
func NewProxy(t testing.TB) *Proxy {
	path := filepath.Join(t.TempDir(), "docker.sock")
	return startProxy(t, "unix://"+path, func() (net.Listener, error) { return net.Listen("unix", path) })
}

func startProxy(t testing.TB, endpoint string, listen func() (net.Listener, error)) *Proxy {
	p := &Proxy{Endpoint: endpoint, listen: listen, target: "/var/run/docker.sock", conns: map[net.Conn]bool{}}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

// Restore listens again.
func (p *Proxy) Restore() error {
	ln, err := p.listen()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	return nil
}

// Served is how many connections the proxy passed on to the engine (for
// TLS, those whose handshake succeeded).
func (p *Proxy) Served() int64 { return p.served.Load() }

func (p *Proxy) serve(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		// Verify the client before touching the engine.
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
	}
	up, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	p.served.Add(1)
	done := make(chan struct{}, 2)
	// Either side ending (or a cut) ends both.
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Cut closes the listener and every connection: the engine is gone.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}
