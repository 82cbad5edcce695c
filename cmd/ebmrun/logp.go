package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newLogpCmd) }

// logpFlags are the settings of `ebmrun logp`.
// maxHeatGrid bounds --grid: a million ODE solves is already a long run.
const maxHeatGrid = 1000

type logpFlags struct {
	spec                    specFlags
	data, out, heatmap      string
	sigmas                  string
	sigma, sigmaMax, time   float64
	divergence, probe       string
	probes                  int
	rtol, atol              float64
	steps                   int
	method                  string
	dequantize              string
	seed                    uint64
	batch, workers, threads int
	backend                 string
	force, asJSON           bool
	grid                    int

	chains, temperatures, gridPoints int
	baseStd                          float64
	box                              string
}

// logpSummary is what --json prints.
type logpSummary struct {
	Model         string   `json:"model"`
	Data          string   `json:"data"`
	MeanLogP      float64  `json:"mean_logp"`
	StdErr        *float64 `json:"stderr"`
	BitsPerDim    float64  `json:"bits_per_dim"`
	N             int      `json:"n"`
	Dim           int      `json:"dim"`
	Evaluations   int64    `json:"evaluations"`
	EvalsPerPoint float64  `json:"evaluations_per_point"`
	Backend       string   `json:"backend"`
	Process       string   `json:"process"`
	From          float64  `json:"from"`
	To            float64  `json:"to"`
	Divergence    string   `json:"divergence"`
	Probes        int      `json:"probes,omitempty"`
	Method        string   `json:"method"`
	RTol          float64  `json:"rtol,omitempty"`
	ATol          float64  `json:"atol,omitempty"`
	Steps         int      `json:"steps,omitempty"`
	Interpolated  bool     `json:"interpolated"`
	Dequantized   bool     `json:"dequantized"`
	Seed          uint64   `json:"seed"`
	Seconds       float64  `json:"seconds"`
	Output        string   `json:"output,omitempty"`
}

func newLogpCmd() *cobra.Command {
	var f logpFlags
	c := &cobra.Command{
		Use:   "logp MODEL --data FILE",
		Short: "Log-density of data under a score model, through the probability-flow ODE",
		Long: `logp computes log p(x) of each point of --data under the score model in MODEL,
in nats and bits per dimension, with the mean and its standard error, by
integrating the probability-flow ODE (Song et al. 2021, App. D):

  VE models (σ- or label-conditioned, energy models):
    dx/dσ = −σ·s(x, σ) from σ₀ (--sigma, default the model's smallest σ) to
    σ_max (--sigma-max, default its largest);
    log p_σ₀(x) = log N(x(σ_max); 0, σ_max²I) − ∫ σ·div s dσ.
    log p_σ₀ is the density of the data noised at σ₀. A label-conditioned
    model's score is interpolated in log σ between its levels (reported).
  VP models (time-conditioned ε-models, β schedule from metadata):
    dx/dt = −½β(t)(x + s(x, t)) from t₀ = --time/(T−1) (at least 1e-5) to 1,
    prior N(0, I).

The divergence div s is exact (d vector–Jacobian products; the default for
d ≤ 64) or Hutchinson's estimate with --probes K Rademacher or Gaussian
probes per point, fixed along the trajectory. The ODE is integrated by
Dormand–Prince 5(4) with --rtol/--atol (1e-5), or with --steps fixed steps
(--method rk45 or heun). Points are integrated --batch at a time with one
step size, as scipy's solve_ivp integrates a batch; --workers batches run at
once, each on its own session; the same --seed and --batch give the same
numbers for any --workers.

--dequantize uniform treats the data as 8-bit levels scaled to the model's
data range and adds uniform noise within each level: bits/dim is then
(−log p + d·log(256/range))/(d·ln 2), comparable with published figures.

-o FILE.npy writes each point's log p (float32). --heatmap FILE.png draws
log p_σ₀ of a 2-D model on a --grid × --grid grid over the data's box,
beside the data's histogram.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runLogp(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "data: a .npy/.csv file or toy:NAME:N (required)")
	fl.StringVarP(&f.out, "out", "o", "", "write each point's log p to this .npy file")
	fl.StringVar(&f.heatmap, "heatmap", "", "draw log p over the data's box and the data's histogram into this .png (2-D models)")
	fl.IntVar(&f.grid, "grid", 100, fmt.Sprintf("heat map resolution per axis (2 … %d)", maxHeatGrid))
	fl.StringVar(&f.sigmas, "sigmas", "", "the model's σ schedule, if its metadata lacks it: geom:MAX,MIN,L or a comma list")
	fl.Float64Var(&f.sigma, "sigma", 0, "σ₀: log p of the data noised at σ₀ (default: the model's smallest σ)")
	fl.Float64Var(&f.sigmaMax, "sigma-max", 0, "σ_max, where N(0, σ_max²I) is taken as the density (default: the model's largest σ)")
	fl.Float64Var(&f.time, "time", 0, "VP models: the starting diffusion step")
	fl.StringVar(&f.divergence, "divergence", "", "exact or hutchinson (default: exact for d ≤ 64)")
	fl.IntVar(&f.probes, "probes", 1, "Hutchinson probes per point")
	fl.StringVar(&f.probe, "probe", density.Rademacher, "Hutchinson probe distribution: rademacher or gaussian")
	fl.Float64Var(&f.rtol, "rtol", 1e-5, "relative tolerance of the adaptive ODE solver")
	fl.Float64Var(&f.atol, "atol", 1e-5, "absolute tolerance of the adaptive ODE solver")
	fl.IntVar(&f.steps, "steps", 0, "fixed steps instead of adaptive ones")
	fl.StringVar(&f.method, "method", "rk45", "rk45 (Dormand–Prince), heun (needs --steps); energy models also ais or grid (log p = −E − log Z)")
	fl.IntVar(&f.chains, "chains", 1000, "ais: chains")
	fl.IntVar(&f.temperatures, "temperatures", 1000, "ais: intermediate distributions")
	fl.Float64Var(&f.baseStd, "base-std", 0, "ais: std of the Gaussian base (default a quarter of the data range's width, or 3)")
	fl.IntVar(&f.gridPoints, "grid-points", 400, "grid: quadrature cells per axis")
	fl.StringVar(&f.box, "box", "", "grid: the box LO,HI on every axis (default the model's data range, widened by half)")
	fl.StringVar(&f.dequantize, "dequantize", "", "uniform: dequantize 8-bit data scaled to the model's data range")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the probes, the dequantization and toy data")
	fl.IntVar(&f.batch, "batch", density.DefaultBatch, "points integrated together")
	fl.IntVar(&f.workers, "workers", 0, "batches at once, each on its own session (default: the number of cores)")
	threadsVar(fl, &f.threads, 0, "threads per session (default: cores / workers)")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	fl.BoolVar(&f.force, "force", false, "overwrite -o and --heatmap files")
	fl.BoolVar(&f.asJSON, "json", false, "print a JSON summary on stdout")
	f.spec.register(c)
	return c
}

func (f *logpFlags) options(c *cobra.Command) (density.Options, error) {
	o := density.Options{
		Sigma: f.sigma, SigmaMax: f.sigmaMax, Time: f.time, Divergence: density.Divergence(f.divergence),
		Probes: f.probes, Probe: f.probe, RTol: f.rtol, ATol: f.atol, Steps: f.steps, Heun: f.method == "heun",
		Batch: f.batch, Workers: f.workers, Seed: f.seed, Dequantize: f.dequantize == "uniform",
	}
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case f.data == "":
		return o, usagef("--data FILE is required")
	case f.divergence != "" && f.divergence != string(density.Exact) && f.divergence != string(density.Hutchinson):
		return o, usagef("--divergence %q: want exact or hutchinson", f.divergence)
	case f.probe != density.Rademacher && f.probe != density.Gaussian:
		return o, usagef("--probe %q: want rademacher or gaussian", f.probe)
	case f.method != "rk45" && f.method != "heun" && f.method != "ais" && f.method != "grid":
		return o, usagef("--method %q: want rk45, heun, ais or grid", f.method)
	case (f.method == "ais" || f.method == "grid") && f.heatmap != "":
		return o, usagef("--heatmap draws the ODE's log p; not with --method %s", f.method)
	case f.chains < 2 || f.temperatures < 1 || f.gridPoints < 2 || f.baseStd < 0 || bad(f.baseStd):
		return o, usagef("--chains must be at least 2, --temperatures at least 1, --grid-points at least 2 and --base-std not negative")
	case f.method == "heun" && f.steps == 0:
		return o, usagef("--method heun needs --steps")
	case f.dequantize != "" && f.dequantize != "uniform":
		return o, usagef("--dequantize %q: want uniform", f.dequantize)
	case f.probes < 1 || f.batch < 1 || f.workers < 0 || f.threads < 0 || f.steps < 0:
		return o, usagef("--probes and --batch must be at least 1, --workers, --threads and --steps not negative")
	case f.grid < 2 || f.grid > maxHeatGrid:
		return o, usagef("--grid wants 2 … %d (each cell is an ODE solve)", maxHeatGrid)
	case !(f.rtol > 0) || !(f.atol > 0) || bad(f.rtol) || bad(f.atol):
		return o, usagef("--rtol and --atol must be positive")
	case f.sigma < 0 || f.sigmaMax < 0 || f.time < 0 || bad(f.sigma) || bad(f.sigmaMax) || bad(f.time):
		return o, usagef("--sigma, --sigma-max and --time must be positive")
	case f.out != "" && outFormat(f.out) != ".npy":
		return o, usagef("-o %s: want a .npy file", f.out)
	case f.heatmap != "" && outFormat(f.heatmap) != ".png":
		return o, usagef("--heatmap %s: want a .png file", f.heatmap)
	}
	return o, checkOutputs(f.force, f.out, f.heatmap)
}

func runLogp(c *cobra.Command, path string, f *logpFlags) (err error) {
	o, err := f.options(c)
	if err != nil {
		return err
	}
	// From here a signal ends the command with one line (see onSignals).
	ctx, finish := onSignals(context.Background(), c.ErrOrStderr(), "stopped")
	defer func() { err = finish(err) }()
	ov, err := f.spec.withSigmas(f.sigmas)
	if err != nil {
		return err
	}
	x, _, err := evalData(f.data, f.seed)
	if err != nil {
		return err
	}
	m, err := importer.Load(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	if spec.Condition == importer.CondTime && (c.Flags().Changed("sigma") || c.Flags().Changed("sigma-max")) {
		return usagef("%s is a time-conditioned (VP) model: give --time, not --sigma", path)
	}
	if spec.Condition != importer.CondTime && c.Flags().Changed("time") {
		return usagef("--time: %s is not time-conditioned (its condition is %s); give --sigma", path, spec.Condition)
	}
	if len(spec.DataShape) > 0 && graph.NumElements(spec.DataShape) != graph.NumElements(x.Shape[1:]) {
		return fmt.Errorf("%s: points of shape %v, the model takes %v", f.data, x.Shape[1:], spec.DataShape)
	}
	if len(spec.DataShape) == 0 {
		spec.DataShape = x.Shape[1:]
	}
	backend, err := runtime.Get(f.backend)
	if err != nil {
		return err
	}
	if f.method == "ais" || f.method == "grid" {
		return runEnergyLogp(ctx, c, path, m, spec, x, backend, f)
	}
	if spec.Kind == importer.OutEnergy && spec.Condition == importer.CondNone {
		// density.New refuses it too; here the flags that do work are known.
		return fmt.Errorf("%s: an unconditional energy has no noise levels for the probability-flow ODE; its log p = −E − log Z needs --method ais (or grid when d ≤ %d)", path, density.MaxGridDim)
	}
	workers := min(cmpOr(f.workers, max(1, goruntime.GOMAXPROCS(0))), (int(x.Shape[0])+f.batch-1)/f.batch)
	o.Workers = workers
	threads := cmpOr(f.threads, max(1, goruntime.GOMAXPROCS(0)/workers))
	e, err := density.New(backend, m, spec, runtime.Options{Threads: threads})
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	defer e.Close()
	n := int(x.Shape[0])
	var progress atomic.Int64
	o.Progress = &progress
	stop := showProgress(c.ErrOrStderr(), &progress, int64(n), "log p", "points")
	begin := time.Now()
	res, err := e.LogP(ctx, x.F32, n, o)
	stop()
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	sum := logpSummary{Model: path, Data: f.data, MeanLogP: res.Mean, BitsPerDim: res.BitsPerDim, N: res.N, Dim: res.Dim,
		Evaluations: res.Evals, EvalsPerPoint: res.EvalsPerPoint, Backend: backend.Name(), Process: res.Process,
		From: res.From, To: res.To, Divergence: string(res.Divergence), Probes: res.Probes, Method: f.method,
		Interpolated: res.Interpolated, Dequantized: res.Dequantized, Seed: f.seed, Seconds: time.Since(begin).Seconds(), Output: f.out}
	if f.steps > 0 {
		sum.Steps = f.steps
	} else {
		sum.RTol, sum.ATol = f.rtol, f.atol
	}
	if !math.IsNaN(res.StdErr) {
		sum.StdErr = &res.StdErr
	}
	if f.out != "" {
		lp := make([]float32, n)
		for i, v := range res.LogP {
			lp[i] = float32(v)
		}
		if err := tensorio.WriteNpyFile(f.out, graph.NewFloat32([]int64{int64(n)}, lp)); err != nil {
			return err
		}
	}
	if f.heatmap != "" {
		if err := writeHeatmap(c, e, x, o, f); err != nil {
			return err
		}
	}
	if f.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	printLogp(c.OutOrStdout(), &sum)
	if res.Interpolated {
		fmt.Fprintf(c.ErrOrStderr(), "ebmrun: %s is label-conditioned: its score between levels is interpolated in log σ\n", path)
	}
	return nil
}

func printLogp(w io.Writer, s *logpSummary) {
	span := fmt.Sprintf("σ %.4g → %.4g", s.From, s.To)
	if s.Process == "vp" {
		span = fmt.Sprintf("t %.4g → %.4g", s.From, s.To)
	}
	div := s.Divergence
	if s.Probes > 0 {
		div = fmt.Sprintf("%s, %d probe(s)", div, s.Probes)
	}
	fmt.Fprintf(w, "%s on %s: %d points of %d values (%s, %s ODE %s, %s divergence)\n", s.Model, s.Data, s.N, s.Dim, s.Backend, strings.ToUpper(s.Process), span, div)
	fmt.Fprintf(w, "log p      %.6g ± %s nats\n", s.MeanLogP, optional(s.StdErr, "%.2g"))
	fmt.Fprintf(w, "bits/dim   %.6g%s\n", s.BitsPerDim, map[bool]string{true: " (dequantized 8-bit)", false: ""}[s.Dequantized])
	fmt.Fprintf(w, "ODE evals  %.1f per point (%d over batches), %.2fs\n", s.EvalsPerPoint, s.Evaluations, s.Seconds)
}
