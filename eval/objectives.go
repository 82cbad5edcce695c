package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/projection"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Objective is a score-matching objective Evaluate computes.
type Objective string

// Objectives (docs/design.md, "Losses"); every value is a per-sample quantity
// averaged over the data.
const (
	// SSM is sliced score matching: vᵀ∇x(vᵀs) + ½(vᵀs)², one VJP per
	// projection.
	SSM Objective = "ssm"
	// SSMVR is its variance-reduced form: vᵀ∇x(vᵀs) + ½‖s‖².
	SSMVR Objective = "ssm-vr"
	// Exact is score matching itself: tr(∇x s) + ½‖s‖², by d VJPs (one per
	// coordinate basis vector), so only for d ≤ MaxExactDim.
	Exact Objective = "exact"
	// FDSSM is finite-difference SSM (Pang et al. 2020):
	// (vᵀs(x+εv) − vᵀs(x−εv))/(2ε) + ½(vᵀs(x))², forward passes only.
	FDSSM Objective = "fd-ssm"
	// DSM is denoising score matching at each σ: ½‖s(x̃,σ) + z/σ‖² with
	// x̃ = x + σz; over several σ, Evaluate adds the NCSN total NCSNDSM.
	DSM Objective = "dsm"
	// Fisher is the Fisher divergence ½E‖s(x̃,σ) − ∇log p_σ(x̃)‖² against an
	// exact score (ObjectiveOptions.Reference).
	Fisher Objective = "fisher"
	// NCSNDSM labels the NCSN multi-σ loss in DSM's results: the mean over
	// levels of σ²·DSM(σ), which is the expected ½‖σ·s(x̃,σ) + z‖² when σ
	// is drawn uniformly from the levels per sample.
	NCSNDSM Objective = "dsm-ncsn"
)

// ObjectiveNames lists the objectives Evaluate computes.
var ObjectiveNames = []Objective{SSM, SSMVR, Exact, FDSSM, DSM, Fisher}

// Projection is the distribution of SSM's projections v, drawn by package
// projection as the trainer draws them: one seed, the same vectors.
type Projection = projection.Kind

// Projections, all with E[vvᵀ] = I.
const (
	Rademacher = projection.Rademacher // ±1 per coordinate
	Gaussian   = projection.Gaussian   // N(0, I)
	Sphere     = projection.Sphere     // uniform on the sphere of radius √d
)

// Defaults of ObjectiveOptions.
const (
	// DefaultBatch is the number of samples per model call.
	DefaultBatch = 4096
	// MaxExactDim is the largest dimension Exact computes: it costs d
	// backward passes per batch.
	MaxExactDim = 64
	// DefaultFDStep is FD-SSM's ε as a fraction of σ: the perturbed
	// density, and so a good model's score, varies on the scale σ, so the
	// central difference's truncation error is O((ε/σ)²) ≈ 1e-4 relative
	// while float32 rounding, O(u·σ/ε) with u ≈ 6e-8, stays below 1e-5.
	DefaultFDStep = 0.01
	// DefaultFDEpsilonClean is FD-SSM's ε on clean data (σ = 0), where no
	// scale is known.
	DefaultFDEpsilonClean = 1e-3
)

// ObjectiveOptions are the settings of Evaluate. Zero fields take the
// documented defaults.
type ObjectiveOptions struct {
	// Objective is what to compute (default SSM).
	Objective Objective
	// Sigmas are the noise levels. At each σ > 0 the data are perturbed,
	// x̃ = x + σz with z ~ N(0, I) drawn from Seed, and the model is asked
	// for s(x̃, σ) (its σ input, or the index of σ in a label-conditioned
	// model's schedule): every objective then measures the score of
	// p_σ = p * N(0, σ²I), which is what a noise-conditional model is
	// trained to be (the standard NCSN practice for SSM). One σ draws the
	// same x̃ for every objective, so results at a σ are paired. Empty means
	// σ = 0: the clean data, for unconditional models.
	Sigmas []float64
	// Projections is the number K of projections per sample for SSM, SSM-VR
	// and FD-SSM (default 1); a sample's value is the mean over its K.
	Projections int
	// Projection is their distribution (default Rademacher).
	Projection Projection
	// Epsilon is FD-SSM's step ε; 0 means DefaultFDStep·σ, or
	// DefaultFDEpsilonClean at σ = 0.
	Epsilon float64
	// Seed fixes the perturbations and projections. The draws do not depend
	// on Batch.
	Seed uint64
	// Batch is the number of samples per model call (default DefaultBatch).
	Batch int
	// Times are DDPM steps t at which to evaluate a time-conditioned (VP)
	// ε-model instead of Sigmas: the data are noised as
	// x_t = √ᾱ_t·x + √(1−ᾱ_t)·z and the score is −ε̂/√(1−ᾱ_t), so every
	// objective measures the model as the score of p_t. Betas is the
	// model's β schedule (default DDPM's linear 1e-4 → 0.02, T = 1000).
	Times []int
	Betas []float64
	// Reference is the exact score ∇x log p_σ that Fisher compares with,
	// such as sampler.NewGMMScorer of a toy mixture.
	Reference sampler.Scorer
	// Noise and Vectors, when set, replace the draws from Seed with given
	// values, so that another framework can compute the same objective on
	// the same numbers: Noise is z, laid out as the data [N, …] and used at
	// every level (x̃ = x + σz), Vectors the projections of SSM, SSM-VR and
	// FD-SSM, K×N×d values laid out [projection][sample][coordinate] as
	// Draws returns them (K = Projections).
	Noise, Vectors []float32
	// Progress, when set, is advanced by the number of samples done at
	// each σ (so it ends at len(Sigmas)·N, or N).
	Progress *atomic.Int64
}

// Validate reports settings that cannot work.
func (o ObjectiveOptions) Validate() error {
	if !slices.Contains(ObjectiveNames, o.Objective) && o.Objective != "" {
		return fmt.Errorf("eval: unknown objective %q (want one of %v)", o.Objective, ObjectiveNames)
	}
	switch o.Projection {
	case "", Rademacher, Gaussian, Sphere:
	default:
		return fmt.Errorf("eval: unknown projection %q (want rademacher, gaussian or sphere)", o.Projection)
	}
	if o.Projections < 0 {
		return fmt.Errorf("eval: Projections is %d; want 0 (the default, 1) or more", o.Projections)
	}
	if o.Batch < 0 {
		return fmt.Errorf("eval: Batch is %d; want 0 (the default, %d) or more", o.Batch, DefaultBatch)
	}
	if o.Epsilon < 0 || math.IsInf(o.Epsilon, 0) || math.IsNaN(o.Epsilon) {
		return fmt.Errorf("eval: Epsilon is %v; want 0 (the default) or a positive step", o.Epsilon)
	}
	for _, s := range o.Sigmas {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("eval: σ = %v; every noise level must be positive and finite", s)
		}
	}
	if len(o.Times) > 0 {
		if len(o.Sigmas) > 0 {
			return errors.New("eval: give noise levels σ or DDPM time steps, not both")
		}
		if o.Objective == Fisher {
			return errors.New("eval: the Fisher divergence has no exact VP score to compare with; use another objective at a time step")
		}
		T := len(o.Betas)
		if T == 0 {
			T = sampler.DefaultBetaSteps
		}
		for _, t := range o.Times {
			if t < 0 || t >= T {
				return fmt.Errorf("eval: time step %d is outside the schedule's 0 … %d", t, T-1)
			}
		}
	}
	if o.Objective == DSM && len(o.Sigmas) == 0 && len(o.Times) == 0 {
		return errors.New("eval: denoising score matching needs a noise level σ > 0")
	}
	if o.Objective == Fisher && o.Reference == nil {
		return errors.New("eval: the Fisher divergence needs the exact score (Reference), such as a toy Gaussian mixture's")
	}
	return nil
}

func (o ObjectiveOptions) withDefaults() ObjectiveOptions {
	if o.Objective == "" {
		o.Objective = SSM
	}
	if o.Projections == 0 {
		o.Projections = 1
	}
	if o.Projection == "" {
		o.Projection = Rademacher
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	return o
}

// ObjectiveResult is one objective at one noise level.
type ObjectiveResult struct {
	Objective Objective
	// Sigma is the noise level; 0 is the clean data, NaN the NCSN total
	// over every level. At a DDPM step it is √(1−ᾱ_t).
	Sigma float64
	// Time is the DDPM step, or −1.
	Time int
	// Value is the mean over samples, StdErr its standard error (the
	// samples' standard deviation over √N; over levels for the NCSN total).
	Value, StdErr float64
	// N is the number of samples.
	N int
}

// Evaluator computes score-matching objectives of one model on one backend.
// It prepares each graph it needs once, on first use — the forward model,
// and for SSM, SSM-VR and Exact the graph autodiff's sliced-score-matching
// graph — and runs every batch through one session of each. Energy models
// are turned into score models with autodiff.ScoreFromEnergy, ε-models into
// s = −ε/σ. An Evaluator is used by one goroutine at a time.
type Evaluator struct {
	be   runtime.Backend
	ro   runtime.Options
	m    *graph.Model
	spec *importer.ModelSpec

	fwdPlan runtime.Plan
	fwd     *sampler.ModelScorer
	ssm     *ssmRunner
}

// NewEvaluator checks that the model can be evaluated; nothing is prepared
// yet. Time-conditioned models (DDPM ε-models) are evaluated at time steps
// (ObjectiveOptions.Times).
func NewEvaluator(be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, ro runtime.Options) (*Evaluator, error) {
	if spec.Condition == importer.CondLabels && len(spec.Sigmas) == 0 {
		return nil, errors.New("eval: a label-conditioned model needs its σ schedule (metadata ebmrun.sigmas or --sigmas)")
	}
	sm, sspec, err := sampler.EnergyScoreModel(m, spec)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return &Evaluator{be: be, ro: ro, m: sm, spec: sspec}, nil
}

// Close releases the sessions and plans.
func (e *Evaluator) Close() error {
	var errs []error
	if e.fwd != nil {
		errs = append(errs, e.fwd.Close())
	}
	if e.fwdPlan != nil {
		errs = append(errs, e.fwdPlan.Close())
	}
	if e.ssm != nil {
		errs = append(errs, e.ssm.close())
	}
	e.fwd, e.fwdPlan, e.ssm = nil, nil, nil
	return errors.Join(errs...)
}

// Evaluate computes o.Objective on the data x ([N, …], the model's data
// shape per sample) at each of o.Sigmas, one result per σ, and for DSM over
// several σ the NCSN total last.
func (e *Evaluator) Evaluate(ctx context.Context, x *graph.Tensor, o ObjectiveOptions) ([]ObjectiveResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if x.DType != graph.Float32 || len(x.Shape) < 2 || x.Shape[0] < 1 {
		return nil, fmt.Errorf("eval: data must be float32 [N, …] with N ≥ 1, have %s %v", x.DType, x.Shape)
	}
	n := int(x.Shape[0])
	d := int(graph.NumElements(x.Shape[1:]))
	if ds := e.spec.DataShape; len(ds) > 0 && !slices.Equal(ds, x.Shape[1:]) {
		return nil, fmt.Errorf("eval: data samples have shape %v, the model takes %v", x.Shape[1:], ds)
	}
	if o.Objective == Exact && d > MaxExactDim {
		return nil, fmt.Errorf("eval: exact score matching takes d = %d backward passes per batch; it is limited to d ≤ %d — use ssm or ssm-vr (its unbiased estimate)", d, MaxExactDim)
	}
	// The projections of a batch are drawn at once: K×B×d values, checked
	// before they are allocated (K = 10⁹ took a server's memory).
	if o.Objective == SSM || o.Objective == SSMVR || o.Objective == FDSSM {
		b := min(o.Batch, n)
		if err := membudget.Elems(fmt.Sprintf("eval: %d projections of a batch of %d samples of %d values", o.Projections, b, d),
			membudget.Product(int64(o.Projections), int64(b), int64(d)), 4); err != nil {
			return nil, fmt.Errorf("%w; fewer projections or a smaller batch need less", err)
		}
	}
	timed := e.spec.Condition == importer.CondTime
	if timed != (len(o.Times) > 0) {
		if timed {
			return nil, errors.New("eval: the model is conditioned on the diffusion time; give the time steps to evaluate at")
		}
		return nil, fmt.Errorf("eval: time steps are for time-conditioned (DDPM) models; this one's condition is %s", e.spec.Condition)
	}
	sigmas := o.Sigmas
	// At DDPM step t the data are scaled by √ᾱ_t and noised by √(1−ᾱ_t).
	scales := make([]float64, len(o.Times))
	if timed {
		betas := o.Betas
		if betas == nil {
			betas = sampler.LinearBetas(sampler.DefaultBetaStart, sampler.DefaultBetaEnd, sampler.DefaultBetaSteps)
		}
		abar := 1.0
		ab := make([]float64, len(betas))
		for t, b := range betas {
			abar *= 1 - b
			ab[t] = abar
		}
		sigmas = make([]float64, len(o.Times))
		for i, t := range o.Times {
			sigmas[i], scales[i] = math.Sqrt(1-ab[t]), math.Sqrt(ab[t])
		}
	}
	if len(sigmas) == 0 {
		if e.spec.Condition != importer.CondNone {
			return nil, fmt.Errorf("eval: the model is conditioned on the noise level (%s); give the σ to evaluate at", e.spec.Condition)
		}
		if e.spec.Kind == importer.OutEps {
			return nil, errors.New("eval: an ε-model's score −ε/σ needs a noise level σ > 0")
		}
		sigmas = []float64{0}
	}
	levels := make([]int, len(sigmas))
	for i, s := range sigmas {
		var err error
		if levels[i], err = e.level(s); err != nil {
			return nil, err
		}
	}
	if err := o.checkGiven(n, d); err != nil {
		return nil, err
	}
	r := &run{e: e, o: o, x: x.F32, shape: x.Shape[1:], n: n, d: d}
	var out []ObjectiveResult
	for i, s := range sigmas {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nz := sampler.Noise{Sigma: float32(s), Level: levels[i], Time: -1}
		scale := 1.0
		if timed {
			nz.Time, scale = o.Times[i], scales[i]
		}
		v, se, err := r.level(ctx, i, s, scale, nz)
		if err != nil {
			if timed {
				return nil, fmt.Errorf("eval: %s at t=%d: %w", o.Objective, nz.Time, err)
			}
			return nil, fmt.Errorf("eval: %s at σ=%g: %w", o.Objective, s, err)
		}
		out = append(out, ObjectiveResult{Objective: o.Objective, Sigma: s, Time: nz.Time, Value: v, StdErr: se, N: n})
	}
	if o.Objective == DSM && len(out) > 1 {
		out = append(out, ncsnTotal(out))
	}
	return out, nil
}

// checkGiven reports given noise or projections of the wrong size for n
// samples of d values.
func (o ObjectiveOptions) checkGiven(n, d int) error {
	if o.Noise != nil && len(o.Noise) != n*d {
		return fmt.Errorf("eval: %d noise values given for %d samples of %d values; want %d", len(o.Noise), n, d, n*d)
	}
	if o.Vectors != nil && len(o.Vectors) != o.Projections*n*d {
		return fmt.Errorf("eval: %d projection values given; want %d (%d projections of %d samples of %d values)", len(o.Vectors), o.Projections*n*d, o.Projections, n, d)
	}
	return nil
}

// ncsnTotal is (1/L)Σ σ²·DSM(σ); the levels' data perturbations are drawn
// independently, so their errors add in quadrature.
func ncsnTotal(per []ObjectiveResult) ObjectiveResult {
	var v, se2 float64
	l := float64(len(per))
	for _, r := range per {
		w := r.Sigma * r.Sigma / l
		v += w * r.Value
		se2 += w * w * r.StdErr * r.StdErr
	}
	return ObjectiveResult{Objective: NCSNDSM, Sigma: math.NaN(), Time: -1, Value: v, StdErr: math.Sqrt(se2), N: per[0].N}
}

// Draws returns what Evaluate draws at the i-th level of o.Sigmas (i = 0
// and σ = 0 when there are none): the data x̃ = x + σz as it is fed to the
// model, and the projections of SSM, SSM-VR and FD-SSM, K×N×d values laid
// out [projection][sample][coordinate], drawn sample by sample by package
// projection from rand.NewPCG(o.Seed, i<<8 | 2) (the noise z from
// rand.NewPCG(o.Seed, i<<8 | 1)), or o.Noise and o.Vectors where given. It is for reproducing a result
// elsewhere — the same objective in another framework on the same x̃ and v.
func Draws(x *graph.Tensor, o ObjectiveOptions, i int) (xt, v []float32, err error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	o = o.withDefaults()
	if x.DType != graph.Float32 || len(x.Shape) < 2 {
		return nil, nil, fmt.Errorf("eval: data must be float32 [N, …], have %s %v", x.DType, x.Shape)
	}
	sigma := 0.0
	switch {
	case i >= 0 && i < len(o.Sigmas):
		sigma = o.Sigmas[i]
	case i != 0 || len(o.Sigmas) > 0:
		return nil, nil, fmt.Errorf("eval: no noise level %d (have %d)", i, len(o.Sigmas))
	}
	n, d := int(x.Shape[0]), int(graph.NumElements(x.Shape[1:]))
	if err := o.checkGiven(n, d); err != nil {
		return nil, nil, err
	}
	r := &run{o: o, n: n, d: d}
	r.perturb(x.F32, 0, n, sigma, 1, levelRNG(o.Seed, i, streamNoise))
	r.project(0, n, levelRNG(o.Seed, i, streamProjection))
	return r.xt, r.v, nil
}

// labelTol is how close σ must be to an entry of a label-conditioned
// model's schedule (float32 σ against a float64 schedule).
const labelTol = 1e-5

// level is the index of σ in a label-conditioned model's schedule, −1 for
// other models.
func (e *Evaluator) level(sigma float64) (int, error) {
	if e.spec.Condition != importer.CondLabels {
		return -1, nil
	}
	for i, s := range e.spec.Sigmas {
		if math.Abs(s-sigma) <= labelTol*s {
			return i, nil
		}
	}
	sig := e.spec.Sigmas
	return 0, fmt.Errorf("eval: σ=%g is not in the σ schedule of this label-conditioned model (%d levels, %g … %g)", sigma, len(sig), sig[0], sig[len(sig)-1])
}

// forward prepares the score model once.
func (e *Evaluator) forward() (*sampler.ModelScorer, error) {
	if e.fwd != nil {
		return e.fwd, nil
	}
	plan, err := e.be.Prepare(e.m, e.ro)
	if err != nil {
		return nil, fmt.Errorf("eval: prepare the model: %w", err)
	}
	sess, err := plan.NewSession()
	if err != nil {
		plan.Close()
		return nil, fmt.Errorf("eval: new session: %w", err)
	}
	sc, err := sampler.NewModelScorer(plan, sess, e.spec)
	if err != nil {
		sess.Close()
		plan.Close()
		return nil, fmt.Errorf("eval: %w", err)
	}
	e.fwdPlan, e.fwd = plan, sc
	return sc, nil
}

// Random streams of one σ level: the data perturbation and the
// projections, each its own so that one objective's extra draws never shift
// another's.
const (
	streamNoise = iota + 1
	streamProjection
)

func levelRNG(seed uint64, level, stream int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(level)<<8|uint64(stream)))
}

// run is one Evaluate call: the data and the scratch buffers, reused over
// batches and levels.
type run struct {
	e     *Evaluator
	o     ObjectiveOptions
	x     []float32
	shape []int64
	n, d  int

	xt, z, v, s, s2, ref []float32
	acc                  []float64
	cat                  []float32
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// level computes the objective at one σ (index i, schedule label lab): the
// mean and standard error of the per-sample values.
func (r *run) level(ctx context.Context, i int, sigma, scale float64, nz sampler.Noise) (float64, float64, error) {
	noise := levelRNG(r.o.Seed, i, streamNoise)
	proj := levelRNG(r.o.Seed, i, streamProjection)
	var st welford
	for lo := 0; lo < r.n; lo += r.o.Batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		b := min(r.o.Batch, r.n-lo)
		r.perturb(r.x[lo*r.d:(lo+b)*r.d], lo, b, sigma, scale, noise)
		r.acc = grow(r.acc, b)
		var err error
		switch r.o.Objective {
		case SSM, SSMVR:
			err = r.ssm(lo, b, nz, proj)
		case Exact:
			err = r.exact(b, nz)
		case FDSSM:
			err = r.fdssm(lo, b, nz, sigma, proj)
		case DSM:
			err = r.dsm(b, nz, sigma)
		case Fisher:
			err = r.fisher(b, nz)
		}
		if err != nil {
			return 0, 0, err
		}
		for _, a := range r.acc {
			if math.IsNaN(a) || math.IsInf(a, 0) {
				return 0, 0, fmt.Errorf("a sample's value is %v (samples %d…%d)", a, lo, lo+b-1)
			}
			st.add(a)
		}
		if r.o.Progress != nil {
			r.o.Progress.Add(int64(b))
		}
	}
	return st.mean, st.stderr(), nil
}

// perturb sets r.xt = a·x + σz and r.z = z for one batch, the samples from
// lo on (r.xt = x at σ = 0); a is 1 but at DDPM steps, √ᾱ_t. z is drawn
// from rng, or read from o.Noise where given.
func (r *run) perturb(x []float32, lo, b int, sigma, a float64, rng *rand.Rand) {
	r.xt = grow(r.xt, len(x))
	r.z = grow(r.z, len(x))
	if sigma == 0 {
		copy(r.xt, x)
		clear(r.z)
		return
	}
	given := r.o.Noise
	if given != nil {
		given = given[lo*r.d : lo*r.d+len(x)]
	}
	for j, v := range x {
		var z float64
		if given != nil {
			z = float64(given[j])
		} else {
			z = rng.NormFloat64()
		}
		r.z[j] = float32(z)
		r.xt[j] = float32(a*float64(v) + sigma*z)
	}
}

// project draws K projections for each of b samples (from lo on) into r.v,
// laid out [k][sample][coordinate] but drawn sample by sample, so that the
// draws do not depend on the batch size; or copies them from o.Vectors
// where given.
func (r *run) project(lo, b int, rng *rand.Rand) {
	k, d := r.o.Projections, r.d
	r.v = grow(r.v, k*b*d)
	if g := r.o.Vectors; g != nil {
		for p := 0; p < k; p++ {
			copy(r.v[p*b*d:(p+1)*b*d], g[(p*r.n+lo)*d:(p*r.n+lo+b)*d])
		}
		return
	}
	for i := 0; i < b; i++ {
		for p := 0; p < k; p++ {
			projection.Row(r.v[(p*b+i)*d:(p*b+i+1)*d], r.o.Projection, rng)
		}
	}
}

func (r *run) ssm(lo, b int, nz sampler.Noise, rng *rand.Rand) error {
	sr, err := r.e.ssmGraph()
	if err != nil {
		return err
	}
	r.project(lo, b, rng)
	clear(r.acc)
	k := r.o.Projections
	for p := 0; p < k; p++ {
		loss, vr, _, err := sr.run(r.xt, r.v[p*b*r.d:(p+1)*b*r.d], r.shape, b, nz)
		if err != nil {
			return err
		}
		out := loss
		if r.o.Objective == SSMVR {
			out = vr
		}
		for i := range r.acc {
			r.acc[i] += float64(out[i]) / float64(k)
		}
	}
	return nil
}

// exact is Σ_j e_jᵀ∇x(e_jᵀs) + ½‖s‖²: the SSM graph's Hutchinson term at
// every basis vector e_j (one VJP each), plus the VR loss's ½‖s‖².
func (r *run) exact(b int, nz sampler.Noise) error {
	sr, err := r.e.ssmGraph()
	if err != nil {
		return err
	}
	r.v = grow(r.v, b*r.d)
	for j := 0; j < r.d; j++ {
		clear(r.v)
		for i := 0; i < b; i++ {
			r.v[i*r.d+j] = 1
		}
		_, vr, jvp, err := sr.run(r.xt, r.v, r.shape, b, nz)
		if err != nil {
			return err
		}
		for i := range r.acc {
			if j == 0 {
				r.acc[i] = float64(vr[i])
			} else {
				r.acc[i] += float64(jvp[i])
			}
		}
	}
	return nil
}

// fdssm evaluates s at x, x+εv and x−εv in one model call of 3b samples.
func (r *run) fdssm(lo, b int, nz sampler.Noise, sigma float64, rng *rand.Rand) error {
	fwd, err := r.e.forward()
	if err != nil {
		return err
	}
	eps := r.o.Epsilon
	if eps == 0 {
		eps = DefaultFDStep * sigma
		if sigma == 0 {
			eps = DefaultFDEpsilonClean
		}
	}
	r.project(lo, b, rng)
	clear(r.acc)
	d, k, bd := r.d, r.o.Projections, b*r.d
	r.cat = grow(r.cat, 3*bd)
	r.s = grow(r.s, 3*bd)
	for p := 0; p < k; p++ {
		v := r.v[p*bd : (p+1)*bd]
		copy(r.cat, r.xt)
		for j, vj := range v {
			x := float64(r.xt[j])
			r.cat[bd+j] = float32(x + eps*float64(vj))
			r.cat[2*bd+j] = float32(x - eps*float64(vj))
		}
		if err := fwd.Score(r.s, r.cat, 3*b, nz); err != nil {
			return err
		}
		for i := 0; i < b; i++ {
			var vs, vp, vm float64
			for j := i * d; j < (i+1)*d; j++ {
				vj := float64(v[j])
				vs += vj * float64(r.s[j])
				vp += vj * float64(r.s[bd+j])
				vm += vj * float64(r.s[2*bd+j])
			}
			r.acc[i] += ((vp-vm)/(2*eps) + 0.5*vs*vs) / float64(k)
		}
	}
	return nil
}

// dsm is ½‖s(x̃,σ) + z/σ‖².
func (r *run) dsm(b int, nz sampler.Noise, sigma float64) error {
	fwd, err := r.e.forward()
	if err != nil {
		return err
	}
	r.s = grow(r.s, b*r.d)
	if err := fwd.Score(r.s, r.xt, b, nz); err != nil {
		return err
	}
	for i := range r.acc {
		var q float64
		for j := i * r.d; j < (i+1)*r.d; j++ {
			t := float64(r.s[j]) + float64(r.z[j])/sigma
			q += t * t
		}
		r.acc[i] = 0.5 * q
	}
	return nil
}

// fisher is ½‖s(x̃,σ) − ∇log p_σ(x̃)‖².
func (r *run) fisher(b int, nz sampler.Noise) error {
	fwd, err := r.e.forward()
	if err != nil {
		return err
	}
	r.s = grow(r.s, b*r.d)
	r.ref = grow(r.ref, b*r.d)
	if err := fwd.Score(r.s, r.xt, b, nz); err != nil {
		return err
	}
	if err := r.o.Reference.Score(r.ref, r.xt, b, nz); err != nil {
		return fmt.Errorf("exact score: %w", err)
	}
	for i := range r.acc {
		var q float64
		for j := i * r.d; j < (i+1)*r.d; j++ {
			t := float64(r.s[j]) - float64(r.ref[j])
			q += t * t
		}
		r.acc[i] = 0.5 * q
	}
	return nil
}

// welford accumulates a mean and variance in one pass.
type welford struct {
	n        int
	mean, m2 float64
}

func (w *welford) add(v float64) {
	w.n++
	d := v - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (v - w.mean)
}

// stderr is the sample standard deviation over √n; NaN for one sample.
func (w *welford) stderr() float64 {
	if w.n < 2 {
		return math.NaN()
	}
	return math.Sqrt(w.m2 / float64(w.n-1) / float64(w.n))
}

// ssmGraph prepares the sliced-score-matching graph once.
func (e *Evaluator) ssmGraph() (*ssmRunner, error) {
	if e.ssm != nil {
		return e.ssm, nil
	}
	sr, err := newSSMRunner(e.be, e.m, e.spec, e.ro)
	if err != nil {
		return nil, err
	}
	e.ssm = sr
	return sr, nil
}

// ssmRunner runs autodiff.SlicedScoreMatching's graph: inputs x, the
// condition, v (and for ε-models the factor −1/σ that makes the output a
// score); outputs the per-sample SSM loss, VR loss and Hutchinson term.
type ssmRunner struct {
	plan runtime.Plan
	sess runtime.Session
	spec *importer.ModelSpec

	ins, outs         []*graph.Tensor
	x, cond, v, scale *graph.Tensor
	loss, vrLoss, jvp *graph.Tensor
	xShape, condShape []int64
}

// scaleInput names the input of the ε-to-score factor.
const scaleInput = "ebmrun_eval_score_scale"

func newSSMRunner(be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, ro runtime.Options) (*ssmRunner, error) {
	out := spec.Output
	if spec.Kind == importer.OutEps {
		var err error
		if m, out, err = scaledOutput(m, spec.Output); err != nil {
			return nil, err
		}
	}
	gm, names, err := autodiff.SlicedScoreMatching(m, spec.XInput, out)
	if err != nil {
		return nil, fmt.Errorf("eval: sliced score matching graph: %w", err)
	}
	plan, err := be.Prepare(gm, ro)
	if err != nil {
		return nil, fmt.Errorf("eval: prepare the sliced score matching graph: %w", err)
	}
	sess, err := plan.NewSession()
	if err != nil {
		plan.Close()
		return nil, fmt.Errorf("eval: new session: %w", err)
	}
	r := &ssmRunner{plan: plan, sess: sess, spec: spec}
	fail := func(err error) (*ssmRunner, error) { r.close(); return nil, err }
	for _, in := range plan.Inputs() {
		t := &graph.Tensor{DType: in.DType}
		switch in.Name {
		case spec.XInput:
			r.x = t
		case names.V:
			r.v = t
		case scaleInput:
			r.scale = t
			t.Shape, t.F32 = []int64{1}, []float32{0}
		case spec.CondInput:
			r.cond = t
			r.condShape = make([]int64, max(1, spec.CondRank))
			for i := range r.condShape {
				r.condShape[i] = 1
			}
		default:
			return fail(fmt.Errorf("eval: the sliced score matching graph has an input %q with no role", in.Name))
		}
		r.ins = append(r.ins, t)
	}
	for _, o := range plan.Outputs() {
		t := &graph.Tensor{DType: graph.Float32}
		switch o.Name {
		case names.Loss:
			r.loss = t
		case names.VRLoss:
			r.vrLoss = t
		case names.JVP:
			r.jvp = t
		}
		r.outs = append(r.outs, t)
	}
	if r.x == nil || r.v == nil || r.loss == nil || r.vrLoss == nil || r.jvp == nil ||
		(spec.Condition != importer.CondNone && r.cond == nil) {
		return fail(errors.New("eval: the sliced score matching graph lacks an input or output"))
	}
	return r, nil
}

// scaledOutput adds an input c [1] and the output ε·c, which is the score
// when c = −1/σ.
func scaledOutput(m *graph.Model, output string) (*graph.Model, string, error) {
	var info *graph.ValueInfo
	for i := range m.Graph.Outputs {
		if m.Graph.Outputs[i].Name == output {
			info = &m.Graph.Outputs[i]
		}
	}
	if info == nil {
		return nil, "", fmt.Errorf("eval: the model has no output %q", output)
	}
	const score = "ebmrun_eval_score"
	g := *m.Graph
	g.Inputs = append(slices.Clip(g.Inputs), graph.ValueInfo{Name: scaleInput, DType: graph.Float32, Shape: graph.Fixed(1), HasShape: true})
	g.Nodes = append(slices.Clip(g.Nodes), &graph.Node{Name: score, OpType: "Mul", Inputs: []string{output, scaleInput}, Outputs: []string{score}})
	o := *info
	o.Name = score
	g.Outputs = []graph.ValueInfo{o}
	sm := *m
	sm.Graph = &g
	return &sm, score, nil
}

// run feeds one batch of b samples and projections v; the returned slices
// are the session's until the next call.
func (r *ssmRunner) run(x, v []float32, shape []int64, b int, nz sampler.Noise) (loss, vr, jvp []float32, err error) {
	r.xShape = append(append(r.xShape[:0], int64(b)), shape...)
	r.x.Shape, r.x.F32 = r.xShape, x
	r.v.Shape, r.v.F32 = r.xShape, v
	if r.scale != nil {
		r.scale.F32[0] = -1 / nz.Sigma
	}
	if c := r.cond; c != nil {
		r.condShape[0] = int64(b)
		c.Shape = r.condShape
		switch r.spec.Condition {
		case importer.CondSigma:
			c.F32 = fillN(c.F32, b, nz.Sigma)
		case importer.CondLabels:
			c.I64 = fillN(c.I64, b, int64(nz.Level))
		case importer.CondTime:
			if c.DType == graph.Int64 {
				c.I64 = fillN(c.I64, b, int64(nz.Time))
			} else {
				c.F32 = fillN(c.F32, b, float32(nz.Time))
			}
		}
	}
	if err := r.sess.Run(r.ins, r.outs); err != nil {
		return nil, nil, nil, fmt.Errorf("sliced score matching graph: %w", err)
	}
	for _, t := range []*graph.Tensor{r.loss, r.vrLoss, r.jvp} {
		if len(t.F32) != b {
			return nil, nil, nil, fmt.Errorf("sliced score matching graph gave %d values for %d samples", len(t.F32), b)
		}
	}
	return r.loss.F32, r.vrLoss.F32, r.jvp.F32, nil
}

func (r *ssmRunner) close() error {
	return errors.Join(r.sess.Close(), r.plan.Close())
}

func fillN[T any](buf []T, n int, v T) []T {
	buf = grow(buf, n)
	for i := range buf {
		buf[i] = v
	}
	return buf
}
