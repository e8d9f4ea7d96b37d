package api

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound what one client may hold of the API server.
type Limits struct {
	ReadTimeout    time.Duration // whole request, body included: a client that promises a body and stalls is cut off
	WriteTimeout   time.Duration // from the end of the request headers to the end of the answer
	IdleTimeout    time.Duration // keep-alive connection between requests
	MaxHeaderBytes int
	MaxConns       int // open connections at once, more wait in the kernel's backlog; 0: no limit
}

// DefaultLimits are what `slotscaler run` serves with.
var DefaultLimits = Limits{
	ReadTimeout:    10 * time.Second,
	WriteTimeout:   30 * time.Second,
	IdleTimeout:    60 * time.Second,
	MaxHeaderBytes: 16 << 10,
	MaxConns:       1024,
}

// Serve answers the API on ln in a goroutine until the returned server is
// shut down: at most lim.MaxConns connections, each within lim's timeouts,
// over TLS when the secrets last applied hold a certificate (which a
// reload may replace; switching TLS on or off needs a restart).
func (s *Server) Serve(ln net.Listener, lim Limits) *http.Server {
	headerTimeout := 5 * time.Second
	if lim.ReadTimeout > 0 {
		headerTimeout = min(lim.ReadTimeout, headerTimeout)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	if lim.MaxConns > 0 {
		ln = netutil.LimitListener(ln, lim.MaxConns)
	}
	if s.secrets.Load().Cert != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				if c := s.secrets.Load().Cert; c != nil {
					return c, nil
				}
				return nil, errors.New("no certificate loaded")
			},
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http api stopped", "err", err)
		}
	}()
	return srv
}
