package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/serve"
)

func init() { commands = append(commands, newServeCmd) }

type serveFlags struct {
	models, addr, backend, tokenFile string
	sessions, threads, maxBatch      int
	maxN, maxChains                  int
	maxDelay, timeout, drain         time.Duration
	maxBody                          int64
	noBatching                       bool
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve --models DIR",
		Short: "Serve sampling and scoring of the models in DIR over HTTP, batching concurrent requests",
		Long: `serve answers an HTTP/JSON API for every DIR/NAME/model.onnx and DIR/NAME.onnx,
each loaded once and shared by all requests:

  GET  /v1/models, /v1/models/NAME
  POST /v1/models/NAME/sample   {"n": 16, "seed": 1, "sampler": "ald", "steps": …, "step_lr": …,
                                 "snr": …, "denoise": …, "sigmas": …, "init": …}
  POST /v1/models/NAME/score    {"x": [[…], …], "sigma": 0.1}
  POST /v1/models/NAME/eval     {"x": [[…], …], "sigma": 0.1, "objective": "dsm"}
  GET  /healthz, /readyz, /metrics (Prometheus), /openapi.json

A sample request takes the sample command's options with the same defaults
and answers {"shape", "samples", "evaluations", "seconds", "backend"}, or the
.npy bytes (Accept: application/x-npy), or a PNG (Accept: image/png).

A dynamic batcher per model merges the chains of concurrent requests into
model calls of up to --max-batch chains, at whatever σ level or step each
request is; on the native backend every request's samples are bit-identical
to ebmrun sample's with the same seed and options, whatever it shared.

Bad input is answered 4xx with {"error", "field"}; more than --max-chains
chains in flight 429 with Retry-After. serve listens on loopback unless
--addr says otherwise; --token-file makes /v1 and /metrics require
"Authorization: Bearer TOKEN". SIGINT or SIGTERM drains: /readyz turns 503,
requests in progress finish (up to --drain), then serve exits.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runServe(c, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.models, "models", "", "folder of models: NAME/model.onnx or NAME.onnx (required)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token requests must carry")
	countVar(fl, &f.sessions, "sessions", "", 2, "backend sessions per model scoring merged batches concurrently")
	threadsVar(fl, &f.threads, 1, "threads per session")
	countVar(fl, &f.maxBatch, "max-batch", "", 1024, "most chains merged into one model call")
	fl.DurationVar(&f.maxDelay, "max-delay", 2*time.Millisecond, "longest wait for more requests' chains before a model call")
	fl.BoolVar(&f.noBatching, "no-batching", false, "run each request on a session of its own (no merging)")
	countVar(fl, &f.maxN, "max-n", "", 4096, "most samples or points per request")
	countVar(fl, &f.maxChains, "max-chains", "", 65536, "most chains in flight over all requests; more get 429")
	fl.Int64Var(&f.maxBody, "max-body", 16<<20, "largest request body in bytes")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "longest time one request may run")
	fl.DurationVar(&f.drain, "drain", 30*time.Second, "how long a shutdown waits for requests in progress")
	return c
}

func runServe(c *cobra.Command, f *serveFlags) error {
	switch {
	case f.models == "":
		return usagef("--models DIR is required")
	case f.maxBody <= 0 || f.maxDelay <= 0 || f.timeout <= 0 || f.drain <= 0:
		return usagef("--max-body, --max-delay, --timeout and --drain must be positive")
	case f.sessions <= 0 || f.threads <= 0 || f.maxBatch <= 0 || f.maxN <= 0 || f.maxChains <= 0:
		return usagef("--sessions, --threads, --max-batch, --max-n and --max-chains must be positive")
	}
	var token string
	if f.tokenFile != "" {
		b, err := safefile.ReadFile(f.tokenFile, "token file", 1<<16)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return usagef("--token-file %s is empty", f.tokenFile)
		}
	}
	paths, err := serve.FindModels(f.models)
	if err != nil {
		return usageError{trimPrefix(err, "serve: ")}
	}
	backend, err := getBackend(c, f.backend)
	if err != nil {
		return err
	}
	log := slog.New(newLineHandler(c.ErrOrStderr(), slog.LevelInfo))
	s, err := serve.New(paths, serve.Options{Backend: backend, Sessions: f.sessions, Threads: f.threads,
		MaxBatch: f.maxBatch, MaxDelay: f.maxDelay, NoBatching: f.noBatching, MaxN: f.maxN, MaxChains: f.maxChains,
		MaxBody: f.maxBody, Timeout: f.timeout, Token: token, Logger: log})
	if err != nil {
		return trimPrefix(err, "serve: ")
	}
	defer s.Close()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: serving %s on http://%s (%s)\n", strings.Join(s.Models(), ", "), ln.Addr(), backend.Name())
	select {
	case err := <-done:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal kills at once
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: draining: finishing the requests in progress (up to %s)\n", f.drain)
	s.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		hs.Close()
		return fmt.Errorf("draining: %w; requests still running were cut off", err)
	}
	fmt.Fprintln(c.ErrOrStderr(), "ebmrun: stopped")
	return nil
}
