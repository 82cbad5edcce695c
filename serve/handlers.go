package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

// modelInfo is a model's entry in /v1/models.
type modelInfo struct {
	Name      string         `json:"name"`
	Kind      string         `json:"kind"`
	Condition string         `json:"condition"`
	DataShape []int64        `json:"data_shape"`
	DataRange []float64      `json:"data_range,omitempty"`
	Sigmas    []float64      `json:"sigmas,omitempty"`
	Sampler   string         `json:"sampler"`
	Settings  map[string]any `json:"settings,omitempty"`
	Samplers  []string       `json:"samplers"`
}

func (m *Model) info() modelInfo {
	in := modelInfo{Name: m.Name, Kind: string(m.Spec.Kind), Condition: string(m.Spec.Condition),
		DataShape: m.Spec.DataShape, DataRange: m.Spec.DataRange, Sigmas: m.Spec.Sigmas, Samplers: []string{}}
	if smp, err := sampler.FromSpec(m.Spec, sampler.Overrides{}); err == nil {
		in.Sampler, in.Settings = smp.Name(), sampler.Describe(smp)
	}
	for _, n := range sampler.Names() {
		if _, err := sampler.FromSpec(m.Spec, sampler.Overrides{Sampler: n}); err == nil {
			in.Samplers = append(in.Samplers, n)
		}
	}
	return in
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	out := []modelInfo{}
	for _, n := range s.Models() {
		out = append(out, s.models[n].info())
	}
	return writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m.info())
}

// decode reads a JSON body into v, refusing unknown fields and naming the
// field at fault.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("extra data after the JSON object")
	}
	var (
		te  *json.UnmarshalTypeError
		se  *json.SyntaxError
		mbe *http.MaxBytesError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Cause: "bad_request", Field: "body",
			Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &te):
		return badRequest(te.Field, "%s: want %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return badRequest("body", "the body is not JSON: %v (at byte %d)", se, se.Offset)
	case errors.Is(err, io.EOF):
		return badRequest("body", "the body is empty; want a JSON object")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(f, "unknown option %q", f)
	}
	return badRequest("body", "%v", err)
}

// sampleRequest is the body of POST /v1/models/{name}/sample: the sample
// command's options, same defaults.
type sampleRequest struct {
	N       int             `json:"n"`
	Seed    uint64          `json:"seed"`
	Sampler string          `json:"sampler"`
	Steps   int             `json:"steps"`
	StepLR  float64         `json:"step_lr"`
	SNR     float64         `json:"snr"`
	Denoise *bool           `json:"denoise"`
	Sigmas  json.RawMessage `json:"sigmas"` // "geom:MAX,MIN,L", a comma list, or an array
	Init    string          `json:"init"`
	Method  string          `json:"method"` // ode: rk45 or heun
	Eta     float64         `json:"eta"`    // ddim
	Times   []int           `json:"times"`  // ddim: ascending time steps
	RTol    float64         `json:"rtol"`   // ode
	ATol    float64         `json:"atol"`
}

// SampleResponse is the JSON answer of a sample request.
type SampleResponse struct {
	Shape   []int64     `json:"shape"`
	Samples [][]float32 `json:"samples"` // one flattened sample a row
	Evals   int64       `json:"evaluations"`
	Seconds float64     `json:"seconds"`
	Backend string      `json:"backend"`
	Sampler string      `json:"sampler"`
	// Escape is where chains first left the plausible box, as the sample
	// command warns; absent when none did.
	Escape *sampler.Escape `json:"escape,omitempty"`
}

// Plan is a checked sample request: what Sample runs.
type Plan struct {
	Sampler sampler.Sampler
	Config  sampler.Config
}

// PlanSample checks a sample request against a model and makes its sampler
// and run configuration exactly as `ebmrun sample` does from the same
// options.
func PlanSample(spec *importer.ModelSpec, req sampleRequest, maxN int) (*Plan, error) {
	switch {
	case req.N <= 0:
		return nil, badRequest("n", "n: want a positive number of samples, got %d", req.N)
	case req.N > maxN:
		return nil, badRequest("n", "n: %d is more than this server's limit of %d samples per request", req.N, maxN)
	case req.Steps < 0:
		return nil, badRequest("steps", "steps: must not be negative, got %d", req.Steps)
	case req.StepLR < 0 || math.IsInf(req.StepLR, 0) || math.IsNaN(req.StepLR):
		return nil, badRequest("step_lr", "step_lr: want a positive step size, got %v", req.StepLR)
	case req.SNR < 0 || math.IsInf(req.SNR, 0) || math.IsNaN(req.SNR):
		return nil, badRequest("snr", "snr: want a positive ratio, got %v", req.SNR)
	case req.Eta < 0:
		return nil, badRequest("eta", "eta: must not be negative, got %v", req.Eta)
	case req.RTol < 0:
		return nil, badRequest("rtol", "rtol: must not be negative, got %v", req.RTol)
	case req.ATol < 0:
		return nil, badRequest("atol", "atol: must not be negative, got %v", req.ATol)
	}
	if req.Sampler != "" && !contains(sampler.Names(), req.Sampler) {
		return nil, badRequest("sampler", "sampler: unknown sampler %q (want %s)", req.Sampler, strings.Join(sampler.Names(), ", "))
	}
	ov := sampler.Overrides{Sampler: req.Sampler, Steps: req.Steps, StepLR: req.StepLR, SNR: req.SNR, Denoise: req.Denoise,
		Method: req.Method, Eta: req.Eta, Times: req.Times, RTol: req.RTol, ATol: req.ATol}
	sp := spec
	if len(req.Sigmas) > 0 && string(req.Sigmas) != "null" {
		sig, err := parseSigmas(req.Sigmas)
		if err != nil {
			return nil, badRequest("sigmas", "sigmas: %v", strings.TrimPrefix(err.Error(), "sampler: "))
		}
		// As --sigmas: the schedule replaces the model's own.
		c := *spec
		c.Sigmas = sig
		sp = &c
	}
	smp, err := sampler.FromSpec(sp, ov)
	if err != nil {
		return nil, badRequest(samplerField(err), "%s", strings.TrimPrefix(err.Error(), "sampler: "))
	}
	init, err := parseInit(req.Init, sp, smp)
	if err != nil {
		return nil, badRequest("init", "%v", err)
	}
	cfg := sampler.Config{N: req.N, Dim: int(graph.NumElements(spec.DataShape)), Seed: req.Seed, Init: init, Workers: 1}
	cfg.Box = sampler.PlausibleBox(spec)
	return &Plan{Sampler: smp, Config: cfg}, nil
}

// samplerField guesses which option a FromSpec or Validate error is about.
func samplerField(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, sampler.ErrNoSchedule):
		return "sigmas"
	case strings.Contains(msg, "time input") || strings.Contains(msg, "time-conditioned") || strings.Contains(msg, "unknown sampler"):
		return "sampler"
	}
	for _, f := range []struct{ word, field string }{{"method", "method"}, {"η", "eta"}, {"eta", "eta"}, {"times", "times"}, {"rtol", "rtol"}, {"atol", "atol"}, {"step", "step_lr"}, {"snr", "snr"}, {"σ", "sigmas"}, {"sigma", "sigmas"}, {"steps", "steps"}} {
		if strings.Contains(msg, f.word) {
			if f.word == "step" && strings.Contains(msg, "steps") {
				return "steps"
			}
			return f.field
		}
	}
	return "sampler"
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func parseSigmas(raw json.RawMessage) ([]float64, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return sampler.ParseSigmas(str)
	}
	var list []float64
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return nil, errors.New(`want "geom:MAX,MIN,L", a comma list or an array of σ, largest first`)
	}
	for i, v := range list {
		if !(v > 0) || math.IsInf(v, 0) || i > 0 && v > list[i-1] {
			return nil, errors.New("want positive finite σ, largest first")
		}
	}
	return list, nil
}

// parseInit is the sample command's --init: uniform:LO,HI or gaussian:STD,
// by default sampler.DefaultInit.
func parseInit(s string, spec *importer.ModelSpec, smp sampler.Sampler) (sampler.Init, error) {
	if s == "" {
		return sampler.DefaultInit(spec, smp), nil
	}
	in, err := sampler.ParseInit(s)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "sampler: "))
	}
	return in, nil
}

// source is where a request's chains get their scores: a stream of the
// model's batcher, or a session of its own when batching is off.
func (s *Server) source(m *Model) sampler.Source {
	if m.sched == nil {
		return sampler.ModelSource(m.plan, m.Spec)
	}
	return func() (sampler.Scorer, error) { return m.sched.open(), nil }
}

func (s *Server) sample(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	var req sampleRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	format, err := accepts(r, m)
	if err != nil {
		return err
	}
	p, err := PlanSample(m.Spec, req, s.opt.MaxN)
	if err != nil {
		return err
	}
	release, err := s.admit(req.N)
	if err != nil {
		return err
	}
	defer release()
	if m.sched != nil {
		// Every batch of the request a stream of its own: they all join the
		// merged calls at once (Run keeps at most one worker per batch).
		p.Config.Workers = req.N
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	x, st, err := sampler.Collect(ctx, p.Sampler, s.source(m), p.Config)
	if err != nil {
		return runError(ctx, err)
	}
	shape := append([]int64{int64(req.N)}, m.Spec.DataShape...)
	switch format {
	case "application/x-npy":
		w.Header().Set("Content-Type", "application/x-npy")
		return tensorio.WriteNpy(w, &graph.Tensor{DType: graph.Float32, Shape: shape, F32: x})
	case "image/png":
		w.Header().Set("Content-Type", "image/png")
		return writePNG(w, x, req.N, m.Spec, p.Sampler.Name())
	}
	rows := make([][]float32, req.N)
	for i := range rows {
		rows[i] = x[i*m.Dim : (i+1)*m.Dim]
	}
	return writeJSON(w, http.StatusOK, SampleResponse{Shape: shape, Samples: rows, Evals: st.Evals, Seconds: st.Seconds,
		Backend: s.opt.Backend.Name(), Sampler: p.Sampler.Name(), Escape: st.Escape})
}

// accepts picks the answer's format from the Accept header.
func accepts(r *http.Request, m *Model) (string, error) {
	acc := r.Header.Get("Accept")
	switch {
	case acc == "" || strings.Contains(acc, "application/json") || strings.Contains(acc, "*/*"):
		return "application/json", nil
	case strings.Contains(acc, "application/x-npy"):
		return "application/x-npy", nil
	case strings.Contains(acc, "image/png"):
		if err := canPlot(m.Spec); err != nil {
			return "", &apiError{Status: http.StatusNotAcceptable, Cause: "bad_request", Field: "Accept", Message: err.Error()}
		}
		return "image/png", nil
	}
	return "", &apiError{Status: http.StatusNotAcceptable, Cause: "bad_request", Field: "Accept",
		Message: fmt.Sprintf("Accept %q: want application/json, application/x-npy or image/png", acc)}
}

// MaxProjections bounds an eval request's projections: each is a model
// call per batch, and the projections of a batch are held at once.
const MaxProjections = 1000

// pointsRequest is the body of score and eval: points of the model's data
// shape, flattened one a row, and a noise level.
type pointsRequest struct {
	X     [][]float32 `json:"x"`
	Sigma *float64    `json:"sigma"`
	Time  *int        `json:"t"`
	// eval only
	Objective   string `json:"objective"`
	Projections int    `json:"projections"`
	Seed        uint64 `json:"seed"`
}

func (s *Server) points(m *Model, req *pointsRequest) ([]float32, error) {
	switch {
	case len(req.X) == 0:
		return nil, badRequest("x", "x: want at least one point, as rows of %d values", m.Dim)
	case len(req.X) > s.opt.MaxN:
		return nil, badRequest("x", "x: %d points are more than this server's limit of %d", len(req.X), s.opt.MaxN)
	}
	x := make([]float32, 0, len(req.X)*m.Dim)
	for i, row := range req.X {
		if len(row) != m.Dim {
			return nil, badRequest("x", "x[%d]: has %d values, want %d (data shape %v flattened)", i, len(row), m.Dim, m.Spec.DataShape)
		}
		for _, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, badRequest("x", "x[%d]: values must be finite", i)
			}
		}
		x = append(x, row...)
	}
	return x, nil
}

// noise is the request's noise level as the model takes it.
func noise(m *Model, req *pointsRequest) (sampler.Noise, error) {
	nz := sampler.Noise{Level: -1, Time: -1}
	if req.Sigma != nil {
		if !(*req.Sigma > 0) || math.IsInf(*req.Sigma, 0) {
			return nz, badRequest("sigma", "sigma: want a positive noise level, got %v", *req.Sigma)
		}
		nz.Sigma = float32(*req.Sigma)
	}
	switch m.Spec.Condition {
	case importer.CondTime:
		if req.Time == nil || *req.Time < 0 {
			return nz, badRequest("t", "t: this model takes a diffusion time step t ≥ 0")
		}
		nz.Time = *req.Time
		if req.Sigma == nil {
			return nz, badRequest("sigma", "sigma: give √(1−ᾱ_t) to turn the model's ε into a score")
		}
	case importer.CondSigma, importer.CondLabels:
		if req.Sigma == nil {
			return nz, badRequest("sigma", "sigma: this model is conditioned on the noise level (%s); give sigma", m.Spec.Condition)
		}
	default:
		if req.Sigma == nil {
			nz.Sigma = 1
		}
	}
	return nz, nil
}

func (s *Server) score(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	var req pointsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Objective != "" || req.Projections != 0 || req.Seed != 0 {
		return badRequest("objective", "objective, projections and seed are options of eval, not score")
	}
	x, err := s.points(m, &req)
	if err != nil {
		return err
	}
	nz, err := noise(m, &req)
	if err != nil {
		return err
	}
	n := len(req.X)
	release, err := s.admit(n)
	if err != nil {
		return err
	}
	defer release()
	sc, err := s.source(m)()
	if err != nil {
		return err
	}
	if c, ok := sc.(io.Closer); ok {
		defer c.Close()
	}
	dst := make([]float32, len(x))
	if err := sc.Score(dst, x, n, nz); err != nil {
		if strings.Contains(err.Error(), "σ schedule") {
			return badRequest("sigma", "%s", strings.TrimPrefix(err.Error(), "sampler: "))
		}
		return err
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = dst[i*m.Dim : (i+1)*m.Dim]
	}
	return writeJSON(w, http.StatusOK, map[string]any{"scores": rows, "backend": s.opt.Backend.Name()})
}

func (s *Server) eval(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	var req pointsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	x, err := s.points(m, &req)
	if err != nil {
		return err
	}
	o := eval.ObjectiveOptions{Objective: eval.Objective(req.Objective), Projections: req.Projections, Seed: req.Seed}
	if req.Objective == "" {
		o.Objective = eval.DSM
	}
	if !contains(objectiveNames(), string(o.Objective)) || o.Objective == eval.Fisher {
		return badRequest("objective", "objective %q: want ssm, ssm-vr, exact, fd-ssm or dsm", req.Objective)
	}
	if req.Projections < 0 || req.Projections > MaxProjections {
		return badRequest("projections", "projections: want 1 … %d, got %d", MaxProjections, req.Projections)
	}
	if req.Time != nil {
		return badRequest("t", "t: eval perturbs data as x + σz; time-conditioned models are not evaluated")
	}
	if req.Sigma != nil {
		if !(*req.Sigma > 0) || math.IsInf(*req.Sigma, 0) {
			return badRequest("sigma", "sigma: want a positive noise level, got %v", *req.Sigma)
		}
		o.Sigmas = []float64{*req.Sigma}
	} else if m.Spec.Condition != importer.CondNone || o.Objective == eval.DSM {
		return badRequest("sigma", "sigma: %s at a noise level: give sigma", o.Objective)
	}
	if err := o.Validate(); err != nil {
		return badRequest("objective", "%s", strings.TrimPrefix(err.Error(), "eval: "))
	}
	release, err := s.admit(len(req.X))
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	select {
	case m.evals <- struct{}{}:
		defer func() { <-m.evals }()
	case <-ctx.Done():
		return runError(ctx, ctx.Err())
	}
	e, err := eval.NewEvaluator(s.opt.Backend, m.graph, m.Spec, runtimeOptions(s.opt))
	if err != nil {
		return badRequest("name", "%s", strings.TrimPrefix(err.Error(), "eval: "))
	}
	defer e.Close()
	t := &graph.Tensor{DType: graph.Float32, Shape: append([]int64{int64(len(req.X))}, m.Spec.DataShape...), F32: x}
	res, err := e.Evaluate(ctx, t, o)
	if err != nil {
		if ctx.Err() != nil {
			return runError(ctx, err)
		}
		if strings.Contains(err.Error(), "σ schedule") {
			return badRequest("sigma", "%s", strings.TrimPrefix(err.Error(), "eval: "))
		}
		return runError(ctx, err)
	}
	r0 := res[0]
	out := map[string]any{"objective": string(r0.Objective), "value": r0.Value, "n": r0.N, "backend": s.opt.Backend.Name()}
	if !math.IsNaN(r0.Sigma) {
		out["sigma"] = r0.Sigma
	}
	if !math.IsNaN(r0.StdErr) {
		out["stderr"] = r0.StdErr
	}
	return writeJSON(w, http.StatusOK, out)
}

func objectiveNames() []string {
	var out []string
	for _, o := range eval.ObjectiveNames {
		out = append(out, string(o))
	}
	return out
}
