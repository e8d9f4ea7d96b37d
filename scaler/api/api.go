// Package api is slotscaler's HTTP API (DESIGN.md's table): JSON in and
// out, bearer tokens with roles viewer < operator < admin compared in
// constant time, request bodies limited, and errors as {"error": "..."}
// with 400, 401, 403, 404, 405, 409 (or 502 when HAProxy or Docker refused
// or could not be reached, 503 when state.json could not be written).
// /healthz, /readyz and /metrics need no token. A rollout may run only the
// images the service's allowed_images lets through, whatever the role.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
	"github.com/slotscaler/slotscaler/scaler/config"
)

// Role is what a token may do.
type Role int

// Roles, each allowed what the lower ones are.
const (
	Viewer Role = iota + 1
	Operator
	Admin
)

// ParseRole reads viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return Viewer, nil
	case "operator":
		return Operator, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("role %q: want viewer, operator or admin", s)
}

func (r Role) String() string {
	return [...]string{"none", "viewer", "operator", "admin"}[r]
}

// Token is a named bearer token; its value never appears in logs.
type Token struct {
	Name  string
	Value string
	Role  Role
}

// Loop is what the API drives; *scaler.Loop implements it.
type Loop interface {
	Services() []scaler.ServiceStatus
	Service(name string) (scaler.ServiceStatus, error)
	Events(service string) []scaler.Event
	Pin(name string, n int) error
	Pause(name string) error
	Resume(name string) error
	DrainSlot(ctx context.Context, backend, slot string) error
	EnableSlot(ctx context.Context, backend, slot string) error
	StartRollout(name, image string, timeout time.Duration) (scaler.Rollout, error)
	RolloutStatus(name string) (scaler.Rollout, error)
	Ready() (bool, []string)
}

// Server is the HTTP API.
type Server struct {
	loop    Loop
	secrets atomic.Pointer[Secrets]       // tokens and certificate, replaced on reload
	config  atomic.Pointer[config.Config] // the image policy, replaced on reload
	metrics http.Handler
	reload  func() error
	log     *slog.Logger
}

// maxBody bounds request bodies; every body the API takes is a few bytes.
const maxBody = 64 << 10

// New builds the API for cfg (its image policy) and secrets (its tokens
// and certificate). reload re-reads the config file (POST
// /v1/config/reload) and calls Apply with what it read; metrics serves
// /metrics.
func New(loop Loop, cfg *config.Config, secrets Secrets, metrics http.Handler, reload func() error, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{loop: loop, metrics: metrics, reload: reload, log: log}
	s.Apply(cfg, secrets)
	return s
}

// Apply installs a reloaded config's image policy and its tokens and
// certificate: a token gone from them is refused from the next request on.
func (s *Server) Apply(cfg *config.Config, secrets Secrets) {
	s.config.Store(cfg)
	s.secrets.Store(&secrets)
}

// Handler routes every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := s.loop.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ok, "reasons": why})
	})
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	route := func(pattern string, role Role, h func(*http.Request) (any, error)) {
		mux.Handle(pattern, s.authorize(role, h))
	}
	route("GET /v1/services", Viewer, func(*http.Request) (any, error) { return s.loop.Services(), nil })
	route("GET /v1/services/{name}", Viewer, func(r *http.Request) (any, error) { return s.loop.Service(r.PathValue("name")) })
	route("GET /v1/events", Viewer, func(r *http.Request) (any, error) {
		service := r.URL.Query().Get("service")
		if service != "" {
			if _, err := s.loop.Service(service); err != nil {
				return nil, err
			}
		}
		return s.loop.Events(service), nil
	})
	route("POST /v1/services/{name}/scale", Operator, func(r *http.Request) (any, error) {
		var body struct {
			Replicas *int `json:"replicas"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		if body.Replicas == nil {
			return nil, badRequest("replicas is required, e.g. {\"replicas\": 3}")
		}
		return s.control(r, s.loop.Pin(r.PathValue("name"), *body.Replicas))
	})
	route("POST /v1/services/{name}/pause", Operator, func(r *http.Request) (any, error) {
		return s.control(r, s.loop.Pause(r.PathValue("name")))
	})
	route("POST /v1/services/{name}/resume", Operator, func(r *http.Request) (any, error) {
		return s.control(r, s.loop.Resume(r.PathValue("name")))
	})
	route("POST /v1/slots/{backend}/{slot}/drain", Operator, func(r *http.Request) (any, error) {
		return s.slot(r, s.loop.DrainSlot)
	})
	route("POST /v1/slots/{backend}/{slot}/enable", Operator, func(r *http.Request) (any, error) {
		return s.slot(r, s.loop.EnableSlot)
	})
	route("POST /v1/services/{name}/rollout", Operator, func(r *http.Request) (any, error) {
		var body struct {
			Image   string `json:"image"`
			Timeout string `json:"timeout"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		var timeout time.Duration
		if body.Timeout != "" {
			d, err := time.ParseDuration(body.Timeout)
			if err != nil || d <= 0 {
				return nil, badRequest(fmt.Sprintf("timeout %q: want a positive duration such as 10m", body.Timeout))
			}
			timeout = d
		}
		if body.Image == "" {
			return nil, badRequest("image is required, e.g. {\"image\": \"registry.local/web:1.4.3\"}")
		}
		if err := s.imageAllowed(r.PathValue("name"), body.Image); err != nil {
			return nil, err
		}
		return s.loop.StartRollout(r.PathValue("name"), body.Image, timeout)
	})
	route("GET /v1/services/{name}/rollout", Operator, func(r *http.Request) (any, error) {
		return s.loop.RolloutStatus(r.PathValue("name"))
	})
	route("POST /v1/config/reload", Admin, func(*http.Request) (any, error) {
		if s.reload == nil {
			return nil, fmt.Errorf("config reload is not available: %w", scaler.ErrConflict)
		}
		if err := s.reload(); err != nil {
			return nil, err
		}
		return map[string]string{"status": "reloaded"}, nil
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	// The mux would redirect "/v1/services/../config/reload" to the clean
	// path, and a client that follows redirects would send its POST and
	// token there: refuse such paths instead.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || path.Clean(p) != p {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q is not canonical: no '.', '..', '//' or trailing '/'", p))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// allowed lists the methods some route other than the catch-all serves at
// r's path (the catch-all keeps the mux from answering 405 in plain text).
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// imageAllowed checks a rollout's image against the service's
// allowed_images, for every role: an operator must not be able to run an
// image of their choosing with the service's secrets and volumes.
func (s *Server) imageAllowed(name, image string) error {
	ref, err := config.ParseImage(image)
	if err != nil {
		return badRequest(err.Error())
	}
	if _, err := s.loop.Service(name); err != nil {
		return err
	}
	cfg := s.config.Load()
	if cfg == nil {
		return forbidden("rollouts are refused: the API has no image policy loaded")
	}
	for _, sc := range cfg.Services {
		if sc.Name == name {
			if !sc.AllowsImage(ref) {
				return forbidden(fmt.Sprintf("image %q is outside service %s's allowed_images %q: a rollout may run only those, whatever the token's role", image, name, sc.ImagePatterns()))
			}
			return nil
		}
	}
	return forbidden(fmt.Sprintf("service %s has no image policy in the loaded config", name))
}

func (s *Server) control(r *http.Request, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return s.loop.Service(r.PathValue("name"))
}

func (s *Server) slot(r *http.Request, action func(context.Context, string, string) error) (any, error) {
	backend, slot := r.PathValue("backend"), r.PathValue("slot")
	if err := action(r.Context(), backend, slot); err != nil {
		return nil, err
	}
	return map[string]string{"backend": backend, "slot": slot, "status": "ok"}, nil
}

// authorize checks the bearer token against every token (no early exit,
// constant-time comparison), then the role, then runs h.
func (s *Server) authorize(need Role, h func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := bearer(r.Header.Get("Authorization"))
		tokens := s.secrets.Load().Tokens
		var who *Token
		for i := range tokens {
			if subtle.ConstantTimeCompare([]byte(given), []byte(tokens[i].Value)) == 1 && given != "" {
				who = &tokens[i]
			}
		}
		switch {
		case who == nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="slotscaler"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid bearer token (Authorization: Bearer <token>)")
			return
		case who.Role < need:
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; %s %s needs %s", who.Name, who.Role, r.Method, r.URL.Path, need))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		out, err := h(r)
		if err != nil {
			code, msg := status(err), err.Error()
			if code >= 500 {
				s.log.Error("api", "method", r.Method, "path", r.URL.Path, "token", who.Name, "err", err)
			}
			if code == http.StatusServiceUnavailable {
				msg += " (state.json could not be written: the change was not made, or holds only until slotscaler restarts; check the free space and permissions of state_dir)"
			}
			writeError(w, code, msg)
			return
		}
		if r.Method != http.MethodGet {
			s.log.Info("api", "method", r.Method, "path", r.URL.Path, "token", who.Name)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// bearer is the token of an "Authorization: Bearer <token>" header; the
// scheme is case-insensitive (RFC 9110, 11.1).
func bearer(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

type badRequestError struct{ msg string }

func (e badRequestError) Error() string { return e.msg }

func badRequest(msg string) error { return badRequestError{msg} }

type forbiddenError struct{ msg string }

func (e forbiddenError) Error() string { return e.msg }

func forbidden(msg string) error { return forbiddenError{msg} }

func status(err error) int {
	var bad badRequestError
	var denied forbiddenError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, scaler.ErrNotSaved):
		return http.StatusServiceUnavailable // the change may be lost at the next restart
	case errors.As(err, &bad), errors.Is(err, scaler.ErrInvalid):
		return http.StatusBadRequest
	case errors.As(err, &denied):
		return http.StatusForbidden
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, scaler.ErrUnknown):
		return http.StatusNotFound
	case errors.Is(err, scaler.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusBadGateway // HAProxy or Docker refused or did not answer
}

// decode reads one JSON object, refusing unknown fields and trailing data.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("request body is empty: want a JSON object")
		}
		return badRequest("malformed JSON body: " + err.Error())
	}
	if dec.More() {
		return badRequest("malformed JSON body: more than one value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
