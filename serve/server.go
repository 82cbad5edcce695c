package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Options configure a Server. Zero fields take the defaults named.
type Options struct {
	Backend runtime.Backend
	// Sessions is the number of backend sessions per model that score the
	// merged batches concurrently (default 2), each with Threads threads
	// (default 1).
	Sessions, Threads int
	// MaxBatch bounds the chains merged into one model call (default 1024);
	// MaxDelay is how long the batcher waits for more calls once one is
	// waiting and some open request has none waiting (default 2ms).
	MaxBatch int
	MaxDelay time.Duration
	// NoBatching gives each request a session of its own, as if it ran
	// alone: the baseline the dynamic batcher is measured against.
	NoBatching bool
	// MaxN bounds n of one request (default 4096); MaxChains the chains
	// in flight over all requests (default 65536), past which requests get
	// 429; MaxBody the request body (default 16 MiB); Timeout one request
	// (default 5 minutes).
	MaxN, MaxChains int
	MaxBody         int64
	Timeout         time.Duration
	// Token, when set, is the bearer token every /v1 and /metrics request
	// must carry; /healthz and /readyz stay open for probes.
	Token  string
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Sessions <= 0 {
		o.Sessions = 2
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 2 * time.Millisecond
	}
	if o.MaxN <= 0 {
		o.MaxN = 4096
	}
	if o.MaxChains <= 0 {
		o.MaxChains = 65536
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 16 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server answers the HTTP API for a set of models. Make it with New, serve
// Handler, and Close it after the HTTP server has shut down.
type Server struct {
	opt      Options
	models   map[string]*Model
	met      *metrics
	chains   atomic.Int64
	draining atomic.Bool
	mux      *http.ServeMux
	closeMu  sync.Mutex
}

// New loads every model of paths (name → file) on opt.Backend, once.
func New(paths map[string]string, opt Options) (*Server, error) {
	opt = opt.withDefaults()
	if opt.Backend == nil {
		return nil, errors.New("serve: no backend")
	}
	s := &Server{opt: opt, models: map[string]*Model{}, met: newMetrics()}
	for name, p := range paths {
		m, err := loadModel(name, p, opt.Backend, runtime.Options{Threads: opt.Threads})
		if errors.Is(err, importer.ErrClassifier) {
			continue // a classifier beside the score models measures samples; it is not served
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		s.models[name] = m
		if !opt.NoBatching {
			mixed := m.Spec.FixedBatch <= 0
			if m.sched, err = newScheduler(sampler.ModelSource(m.plan, m.Spec), opt.Sessions, opt.MaxBatch, opt.MaxDelay, mixed, s.met.model(name)); err != nil {
				s.Close()
				return nil, fmt.Errorf("serve: %s: %w", name, err)
			}
		}
	}
	if len(s.models) == 0 && len(paths) > 0 {
		return nil, errors.New("serve: every model given is a classifier; there is nothing to sample")
	}
	s.routes()
	return s, nil
}

// Models lists the names served, sorted.
func (s *Server) Models() []string { return sortedNames(s.models) }

// Drain makes /readyz answer 503 so load balancers stop sending requests;
// requests in progress still finish.
func (s *Server) Drain() { s.draining.Store(true) }

// Close releases the models; call it after the HTTP server has stopped.
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	var errs []error
	for _, m := range s.models {
		if m.sched != nil {
			errs = append(errs, m.sched.close())
			m.sched = nil
		}
		if m.plan != nil {
			errs = append(errs, m.plan.Close())
			m.plan = nil
		}
	}
	return errors.Join(errs...)
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.wrap("healthz", false, func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	s.mux.HandleFunc("GET /readyz", s.wrap("readyz", false, func(w http.ResponseWriter, r *http.Request) error {
		if s.draining.Load() {
			w.Header().Set("Retry-After", "5")
			return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		}
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
	metrics := promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{})
	s.mux.HandleFunc("GET /metrics", s.wrap("metrics", true, func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	s.mux.HandleFunc("GET /openapi.json", s.wrap("openapi", false, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(OpenAPI)
		return err
	}))
	s.mux.HandleFunc("GET /v1/models", s.wrap("models", true, s.listModels))
	s.mux.HandleFunc("GET /v1/models/{name}", s.wrap("model", true, s.getModel))
	s.mux.HandleFunc("POST /v1/models/{name}/sample", s.wrap("sample", true, s.sample))
	s.mux.HandleFunc("POST /v1/models/{name}/score", s.wrap("score", true, s.score))
	s.mux.HandleFunc("POST /v1/models/{name}/eval", s.wrap("eval", true, s.eval))
	s.mux.HandleFunc("/", s.wrap("other", false, func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{Status: http.StatusNotFound, Cause: "not_found", Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}
	}))
}

// apiError is an error answered as JSON {"error", "field"}.
type apiError struct {
	Status     int
	Cause      string // the errors metric's label
	Field      string
	Message    string
	RetryAfter int // seconds; 0: no header
}

func (e *apiError) Error() string { return e.Message }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Cause: "bad_request", Field: field, Message: fmt.Sprintf(format, args...)}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap adds authentication, body limits, panic recovery, the JSON error
// answer and the request metrics to a handler.
func (s *Server) wrap(endpoint string, auth bool, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		defer func() {
			if p := recover(); p != nil {
				s.opt.Logger.Error("serve: panic", "endpoint", endpoint, "panic", p, "stack", string(debug.Stack()))
				s.fail(w, &apiError{Status: http.StatusInternalServerError, Cause: "internal", Message: "internal error"})
			}
			s.met.requests.WithLabelValues(endpoint, strconv.Itoa(w.code)).Inc()
			s.met.latency.WithLabelValues(endpoint).Observe(time.Since(begin).Seconds())
		}()
		if auth && s.opt.Token != "" && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ebmrun"`)
			s.fail(w, &apiError{Status: http.StatusUnauthorized, Cause: "unauthorized", Message: "a bearer token is required"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxBody)
		if err := h(w, r); err != nil {
			s.fail(w, err)
		}
	}
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opt.Token)) == 1
}

// fail answers err as JSON, unless a response was already started.
func (s *Server) fail(w *statusWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{Status: http.StatusInternalServerError, Cause: "internal", Message: err.Error()}
		s.opt.Logger.Error("serve: request failed", "err", err)
	}
	s.met.errors.WithLabelValues(ae.Cause).Inc()
	if w.code != 0 {
		return
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	body := map[string]string{"error": ae.Message}
	if ae.Field != "" {
		body["field"] = ae.Field
	}
	writeJSON(w, ae.Status, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// admit reserves n chains of the in-flight bound, or says the server is
// overloaded.
func (s *Server) admit(n int) (release func(), err error) {
	if s.draining.Load() {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Cause: "overload", Message: "the server is shutting down", RetryAfter: 5}
	}
	if n > s.opt.MaxChains {
		return nil, badRequest("n", "%d chains are more than this server ever runs at once (%d)", n, s.opt.MaxChains)
	}
	if s.chains.Add(int64(n)) > int64(s.opt.MaxChains) {
		s.chains.Add(-int64(n))
		return nil, &apiError{Status: http.StatusTooManyRequests, Cause: "overload",
			Message: fmt.Sprintf("too many chains in flight (at most %d); retry later", s.opt.MaxChains), RetryAfter: 1}
	}
	s.met.inflight.Add(float64(n))
	return func() { s.chains.Add(-int64(n)); s.met.inflight.Sub(float64(n)) }, nil
}

// runError turns a run's error into the answer: a timeout or a
// cancellation of the request, a divergence (the settings, 422), or an
// internal failure.
func runError(ctx context.Context, err error) error {
	var div *sampler.DivergenceError
	switch {
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Cause: "timeout", Message: "the request ran past the server's time limit", RetryAfter: 5}
	case ctx.Err() != nil:
		return &apiError{Status: 499, Cause: "canceled", Message: "the client went away"}
	case errors.As(err, &div):
		return &apiError{Status: http.StatusUnprocessableEntity, Cause: "divergence", Message: err.Error()}
	case errors.Is(err, membudget.ErrExceeded):
		// What the request asked for does not fit the server's memory budget.
		return &apiError{Status: http.StatusRequestEntityTooLarge, Cause: "bad_request", Message: err.Error()}
	}
	return err
}

func (s *Server) model(r *http.Request) (*Model, error) {
	name := r.PathValue("name")
	m, ok := s.models[name]
	if !ok {
		return nil, &apiError{Status: http.StatusNotFound, Cause: "not_found", Field: "name",
			Message: fmt.Sprintf("no model %q (have %s)", name, strings.Join(s.Models(), ", "))}
	}
	return m, nil
}
