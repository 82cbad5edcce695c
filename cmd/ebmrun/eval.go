package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

func init() { commands = append(commands, newEvalCmd) }

// evalFlags are the settings of `ebmrun eval`.
type evalFlags struct {
	spec        specFlags
	data        string
	sigma       float64
	allSigmas   bool
	times       []int
	sigmas      string
	objective   string
	projections int
	projection  string
	epsilon     float64
	seed        uint64
	backend     string
	batch       int
	threads     int
	asJSON      bool
}

// evalResult is one line of --json: sigma is null for the NCSN total over
// levels, 0 for clean data.
type evalResult struct {
	Objective string   `json:"objective"`
	Sigma     *float64 `json:"sigma"`
	Time      *int     `json:"time,omitempty"`
	Value     float64  `json:"value"`
	StdErr    *float64 `json:"stderr"`
	N         int      `json:"n"`
	Backend   string   `json:"backend"`
}

func newEvalCmd() *cobra.Command {
	var f evalFlags
	c := &cobra.Command{
		Use:   "eval MODEL --data FILE [--sigma S | --all-sigmas]",
		Short: "Score-matching objectives of a model on data: SSM, SSM-VR, exact, FD-SSM, DSM, Fisher divergence",
		Long: `eval computes a score-matching objective of the score model in MODEL on a data
set, with its standard error over samples (docs/design.md, "Losses"):

  ssm      sliced score matching  vᵀ∇x(vᵀs) + ½(vᵀs)²   (one VJP per projection)
  ssm-vr   its variance-reduced form  vᵀ∇x(vᵀs) + ½‖s‖²
  exact    score matching  tr(∇x s) + ½‖s‖²   (d VJPs; d ≤ 64)
  fd-ssm   finite-difference SSM  (vᵀs(x+εv) − vᵀs(x−εv))/(2ε) + ½(vᵀs)²
           (forward passes only; ε = --epsilon, default 0.01·σ, 1e-3 on clean data)
  dsm      denoising score matching  ½‖s(x̃,σ) + z/σ‖²; with --all-sigmas also
           the NCSN total (1/L)Σ σ²·DSM(σ) as "dsm-ncsn"
  fisher   Fisher divergence  ½E‖s(x̃,σ) − ∇log p_σ(x̃)‖²  against an exact score

At a noise level σ (--sigma, or every level of the model's schedule with
--all-sigmas) the data are perturbed, x̃ = x + σz, and the model is asked for
s(x̃, σ): each objective then measures the model as the score of the noised
data p_σ, which is what a noise-conditional model is trained for. Without a
σ the clean data are used, which suits unconditional models. Projections v
are Rademacher (±1), Gaussian, or uniform on the sphere of radius √d.
Energy models are differentiated (s = −∇x E), ε-models give s = −ε/σ.

--data is a .npy or .csv file (anything ebmrun reads as data), or
toy:NAME:N — N points of a toy distribution (` + strings.Join(dataset.ToyNames(), ", ") + `)
drawn with --seed; the Gaussian-mixture toys (8gaussians, 25gaussians,
ring8) have exact scores at every σ, which fisher needs.

A time-conditioned DDPM ε-model is evaluated at diffusion steps (--time T,
repeatable or a comma list): the data are noised as
x_t = √ᾱ_T·x + √(1−ᾱ_T)·ε with the model's β schedule (metadata, else DDPM's
1e-4 → 0.02, T = 1000) and its score is −ε̂/√(1−ᾱ_T).

One --seed fixes the perturbations and projections, whatever --batch is.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runEval(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "data: a .npy/.csv file or toy:NAME:N (required)")
	fl.Float64Var(&f.sigma, "sigma", 0, "noise level σ to evaluate at")
	fl.BoolVar(&f.allSigmas, "all-sigmas", false, "evaluate at every level of the model's σ schedule")
	fl.IntSliceVar(&f.times, "time", nil, "DDPM time steps T to evaluate a time-conditioned ε-model at")
	fl.StringVar(&f.sigmas, "sigmas", "", "the model's σ schedule, if its metadata lacks it: geom:MAX,MIN,L or a comma list")
	fl.StringVar(&f.objective, "objective", string(eval.SSM), "ssm, ssm-vr, exact, fd-ssm, dsm or fisher")
	countVar(fl, &f.projections, "projections", "", 1, "projections per sample (ssm, ssm-vr, fd-ssm)")
	fl.StringVar(&f.projection, "projection", string(eval.Rademacher), "rademacher, gaussian or sphere")
	fl.Float64Var(&f.epsilon, "epsilon", 0, "fd-ssm's step ε (default 0.01·σ, 1e-3 on clean data)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the perturbations, projections and toy data")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	countVar(fl, &f.batch, "batch", "", eval.DefaultBatch, "samples per model call")
	threadsVar(fl, &f.threads, 0, "threads of the session (default: all cores)")
	fl.BoolVar(&f.asJSON, "json", false, "print the results as JSON: one object, or a list for several σ")
	f.spec.register(c)
	return c
}

func runEval(c *cobra.Command, path string, f *evalFlags) (err error) {
	o, err := f.options(c)
	if err != nil {
		return err
	}
	// From here a signal ends the command with one line: at once while
	// evaluating, within signalGrace while loading.
	ctx, finish := onSignals(context.Background(), c.ErrOrStderr(), "no result")
	defer func() { err = finish(err) }()
	ov, err := f.spec.withSigmas(f.sigmas)
	if err != nil {
		return err
	}
	x, ref, err := evalData(f.data, f.seed)
	if err != nil {
		return err
	}
	if o.Objective == eval.Fisher {
		if ref == nil {
			return usagef("fisher needs an exact score: give --data toy:NAME:N with a Gaussian-mixture toy (8gaussians, 25gaussians, ring8)")
		}
		o.Reference = ref
	}
	m, err := importer.Load(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	timeSet := c.Flags().Changed("time")
	switch {
	case timeSet && spec.Condition != importer.CondTime:
		return usagef("--time: %s is not time-conditioned (its condition is %s); give --sigma", path, spec.Condition)
	case timeSet && (f.allSigmas || c.Flags().Changed("sigma")):
		return usagef("--time excludes --sigma and --all-sigmas")
	case timeSet:
		o.Times = f.times
		if b := spec.Betas; b != nil {
			o.Betas = sampler.LinearBetas(b.Start, b.End, b.Steps)
		}
	case spec.Condition == importer.CondTime:
		return usagef("%s is a time-conditioned (DDPM) model; give --time T", path)
	case f.allSigmas && len(spec.Sigmas) == 0:
		return usagef("--all-sigmas: %s has no σ schedule (metadata ebmrun.sigmas); give it with --sigmas", path)
	case f.allSigmas:
		o.Sigmas = spec.Sigmas
	case c.Flags().Changed("sigma"):
		o.Sigmas = []float64{f.sigma}
	case spec.Condition != importer.CondNone:
		return usagef("%s is conditioned on the noise level (%s); give --sigma S or --all-sigmas", path, spec.Condition)
	case o.Objective == eval.DSM:
		return usagef("dsm needs a noise level: give --sigma S or --all-sigmas")
	}
	if err := o.Validate(); err != nil {
		return usageError{trimPrefix(err, "eval: ")}
	}

	backend, err := getBackend(c, f.backend)
	if err != nil {
		return err
	}
	e, err := eval.NewEvaluator(backend, m, spec, runtime.Options{Threads: f.threads})
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "eval: "))
	}
	defer e.Close()
	var progress atomic.Int64
	o.Progress = &progress
	stop := showProgress(c.ErrOrStderr(), &progress, x.Shape[0]*int64(max(1, len(o.Sigmas))), string(o.Objective), "samples")
	res, err := e.Evaluate(ctx, x, o)
	stop()
	if err = finish(err); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "eval: "))
	}
	out := make([]evalResult, len(res))
	for i, r := range res {
		out[i] = evalResult{Objective: string(r.Objective), Value: r.Value, N: r.N, Backend: backend.Name()}
		if !math.IsNaN(r.Sigma) {
			out[i].Sigma = &r.Sigma
		}
		if r.Time >= 0 {
			out[i].Time = &r.Time
		}
		if !math.IsNaN(r.StdErr) {
			out[i].StdErr = &r.StdErr
		}
	}
	if f.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		if len(out) == 1 {
			return enc.Encode(out[0])
		}
		return enc.Encode(out)
	}
	fmt.Fprintf(c.OutOrStdout(), "%s on %s: %d samples of shape %v (%s)\n\n", path, f.data, x.Shape[0], x.Shape[1:], backend.Name())
	printEval(c.OutOrStdout(), out)
	return nil
}

// options checks the flags that need no model.
func (f *evalFlags) options(c *cobra.Command) (eval.ObjectiveOptions, error) {
	o := eval.ObjectiveOptions{
		Objective: eval.Objective(f.objective), Projections: f.projections, Projection: eval.Projection(f.projection),
		Epsilon: f.epsilon, Seed: f.seed, Batch: f.batch,
	}
	switch {
	case f.data == "":
		return o, usagef("--data FILE is required")
	case !slices.Contains(eval.ObjectiveNames, o.Objective):
		return o, usagef("--objective %q: want ssm, ssm-vr, exact, fd-ssm, dsm or fisher", f.objective)
	case f.projections < 1:
		return o, usagef("--projections is %d; want at least 1", f.projections)
	case f.batch < 1:
		return o, usagef("--batch is %d; want at least 1", f.batch)
	case f.threads < 0:
		return o, usagef("--threads is %d; want 0 (all cores) or more", f.threads)
	case f.allSigmas && c.Flags().Changed("sigma"):
		return o, usagef("--sigma and --all-sigmas exclude each other")
	case c.Flags().Changed("sigma") && !(f.sigma > 0 && !math.IsInf(f.sigma, 0)):
		return o, usagef("--sigma is %v; want a positive noise level", f.sigma)
	case f.epsilon < 0:
		return o, usagef("--epsilon is %v; want a positive step", f.epsilon)
	}
	switch o.Projection {
	case eval.Rademacher, eval.Gaussian, eval.Sphere:
	default:
		return o, usagef("--projection %q: want rademacher, gaussian or sphere", f.projection)
	}
	return o, nil
}

// evalData reads --data: a file, or toy:NAME:N drawn with seed, which comes
// with the exact score when the toy is a Gaussian mixture.
func evalData(spec string, seed uint64) (*graph.Tensor, sampler.Scorer, error) {
	rest, ok := strings.CutPrefix(spec, "toy:")
	if !ok {
		t, err := loadSamples(spec)
		return t, nil, err
	}
	name, count, ok := strings.Cut(rest, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		return nil, nil, usagef("--data %q: want toy:NAME:N with N ≥ 1 points", spec)
	}
	toy, err := dataset.Toy(name)
	if err != nil {
		return nil, nil, usageError{trimPrefix(err, "dataset: ")}
	}
	// A stream of its own: the evaluation's draws use (seed, level).
	x, err := toyTensor(toy, name, n, rand.New(rand.NewPCG(seed, 1<<32)))
	if err != nil {
		return nil, nil, err
	}
	if toy.GMM == nil {
		return x, nil, nil
	}
	return x, sampler.NewGMMScorer(toy.GMM), nil
}

// toyTensor draws n points of a toy once the memory budget says they fit:
// they are drawn as float64 and kept as float32, 12 bytes a value.
func toyTensor(toy *dataset.ToyDist, name string, n int, r *rand.Rand) (*graph.Tensor, error) {
	if err := membudget.Elems(fmt.Sprintf("%d points of %s", n, name), int64(n), dataset.ToyDim*12); err != nil {
		return nil, err
	}
	return toy.Tensor(n, r), nil
}

func printEval(w io.Writer, rs []evalResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "objective\tσ\tvalue\tstderr\tn")
	for _, r := range rs {
		sigma := "all"
		if r.Sigma != nil {
			sigma = fmt.Sprintf("%.4g", *r.Sigma)
		}
		if r.Time != nil {
			sigma = fmt.Sprintf("%s (t=%d)", sigma, *r.Time)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.6g\t%s\t%d\n", r.Objective, sigma, r.Value, optional(r.StdErr, "%.2g"), r.N)
	}
	tw.Flush()
}
