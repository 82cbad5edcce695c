package density

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"sync"
	"sync/atomic"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/ode"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Divergence is how tr ∇x s is computed along the ODE.
type Divergence string

// Divergences.
const (
	// Exact takes d vector–Jacobian products (basis vectors) per evaluation.
	Exact Divergence = "exact"
	// Hutchinson is E_v[vᵀ∇x(vᵀs)] over K probes per point, the same
	// probes along the whole trajectory (so the ODE stays deterministic).
	Hutchinson Divergence = "hutchinson"
)

// Probe distributions for Hutchinson's estimator (E[vvᵀ] = I).
const (
	Rademacher = "rademacher"
	Gaussian   = "gaussian"
)

// Defaults.
const (
	// MaxExactDim is the largest d whose divergence is exact by default.
	MaxExactDim = 64
	// DefaultBatch is the number of points integrated together.
	DefaultBatch = 1000
	// DefaultVPEpsilon is the VP ODE's starting time, as score_sde's
	// likelihood uses (t = 0 itself divides by √(1−ᾱ) = 0).
	DefaultVPEpsilon = 1e-5
)

// Options are the settings of LogP; zero fields take the defaults.
type Options struct {
	// Sigma is σ₀ of a VE model: LogP is log p_σ₀, the density of the data
	// noised at σ₀ (default: the model's smallest σ). SigmaMax is where the
	// ODE ends and N(0, σ_max²I) is taken as the density (default: its
	// largest σ).
	Sigma, SigmaMax float64
	// Time is the VP (time-conditioned ε-model) starting time in diffusion
	// steps: t₀ = Time/(T−1), at least DefaultVPEpsilon.
	Time float64
	// Divergence: Exact (default for d ≤ MaxExactDim) or Hutchinson.
	Divergence Divergence
	// Probes is Hutchinson's K per point (default 1); Probe its
	// distribution (default Rademacher).
	Probes int
	Probe  string
	// RTol, ATol are the adaptive Dormand–Prince tolerances (default 1e-5);
	// Steps > 0 takes that many fixed steps instead; with Heun, Heun's
	// method at Steps steps.
	RTol, ATol float64
	Steps      int
	Heun       bool
	// Batch is the number of points integrated together, with one adaptive
	// step size (as solve_ivp integrates a batch); Workers the goroutines,
	// each with its own session. Results depend on Batch within the
	// tolerance, never on Workers.
	Batch, Workers int
	// Seed fixes Hutchinson's probes and the dequantization noise: point i
	// draws from stream (Seed, i), whatever the batch.
	Seed uint64
	// Dequantize adds uniform noise to 8-bit data scaled to the model's
	// data range (DataRange, or the spec's), so that log p of the
	// continuous density bounds the discrete one, and BitsPerDim is
	// comparable with the literature.
	Dequantize bool
	DataRange  []float64
	// Progress, when set, is advanced by the points done.
	Progress *atomic.Int64
	// KeepPrior keeps each point's ODE end state in Result.Prior.
	KeepPrior bool
}

// Result is the log-density of each point and their summary.
type Result struct {
	LogP          []float64 // nats, per point
	Mean, StdErr  float64   // of LogP
	BitsPerDim    float64   // of the mean; with the 8-bit offset when dequantized
	N, Dim        int
	Evals         int64   // ODE function evaluations summed over batches
	EvalsPerPoint float64 // the mean number of evaluations along one point's trajectory
	ModelRows     int64   // rows of the model the evaluations ran
	From, To      float64 // σ₀ → σ_max (VE) or t₀ → 1 (VP)
	Process       string  // "ve" or "vp"
	Divergence    Divergence
	Probes        int
	Interpolated  bool      // a label-conditioned score interpolated in log σ between levels
	Prior         []float32 // the end states, N×Dim, with KeepPrior
	Dequantized   bool
	DequantBits   float64 // bits/dim added for 8-bit data: log₂(256/range)
}

// Estimator computes log-densities of one model on one backend. Make it
// with New; it prepares the divergence graph (the model and one VJP) once.
type Estimator struct {
	g    *divGraph
	spec *importer.ModelSpec
	d    int
	vp   *vpSchedule
}

// New prepares the log-density of a score, ε or energy model: VE models
// conditioned on σ or on a label (an index into their σ schedule), and
// time-conditioned ε-models (VP, with spec.Betas or DDPM's default).
// Unconditional models have no noise levels to integrate over and are
// refused.
func New(be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, ro runtime.Options) (*Estimator, error) {
	if spec.Condition == importer.CondNone {
		return nil, errors.New("density: an unconditional model has no noise levels for the probability-flow ODE; log p needs a σ-, label- or time-conditioned model")
	}
	if spec.Condition == importer.CondLabels && len(spec.Sigmas) == 0 {
		return nil, errors.New("density: a label-conditioned model needs its σ schedule (metadata ebmrun.sigmas or --sigmas)")
	}
	if spec.FixedBatch > 0 {
		// The divergence stacks d (or K) copies of a batch in one run.
		return nil, fmt.Errorf("density: the model was exported with a fixed batch size of %d; log p needs a dynamic batch axis (re-export with dynamic_axes)", spec.FixedBatch)
	}
	if len(spec.DataShape) == 0 {
		return nil, errors.New("density: the shape of one sample is unknown (no ebmrun.data_shape metadata and the data input's shape is not fixed)")
	}
	sm, sspec, err := sampler.EnergyScoreModel(m, spec)
	if err != nil {
		return nil, fmt.Errorf("density: %w", err)
	}
	e := &Estimator{spec: sspec, d: int(graph.NumElements(sspec.DataShape))}
	if spec.Condition == importer.CondTime {
		e.vp = newVPSchedule(spec.Betas)
	}
	if e.g, err = newDivGraph(be, sm, sspec, ro); err != nil {
		return nil, err
	}
	return e, nil
}

// Close releases the prepared graph.
func (e *Estimator) Close() error { return e.g.close() }

// Dim is the number of values of one point.
func (e *Estimator) Dim() int { return e.d }

func (o Options) withDefaults(e *Estimator) (Options, error) {
	if o.Divergence == "" {
		o.Divergence = Exact
		if e.d > MaxExactDim {
			o.Divergence = Hutchinson
		}
	}
	if o.Probes == 0 {
		o.Probes = 1
	}
	if o.Probe == "" {
		o.Probe = Rademacher
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Workers == 0 {
		o.Workers = goruntime.GOMAXPROCS(0)
	}
	if o.RTol == 0 {
		o.RTol = ode.DefaultTol
	}
	if o.ATol == 0 {
		o.ATol = ode.DefaultTol
	}
	if o.DataRange == nil {
		o.DataRange = e.spec.DataRange
	}
	sig := e.spec.Sigmas
	if e.vp == nil {
		if o.Sigma == 0 && len(sig) > 0 {
			o.Sigma = sig[len(sig)-1]
		}
		if o.SigmaMax == 0 && len(sig) > 0 {
			o.SigmaMax = sig[0]
		}
		if o.Sigma == 0 || o.SigmaMax == 0 {
			return o, errors.New("density: the model has no σ schedule; give σ₀ and σ_max (--sigma, --sigma-max)")
		}
	}
	switch {
	case o.Divergence != Exact && o.Divergence != Hutchinson:
		return o, fmt.Errorf("density: unknown divergence %q (want exact or hutchinson)", o.Divergence)
	case o.Probe != Rademacher && o.Probe != Gaussian:
		return o, fmt.Errorf("density: unknown probe distribution %q (want rademacher or gaussian)", o.Probe)
	case o.Probes < 0 || o.Batch < 0 || o.Workers < 0 || o.Steps < 0:
		return o, errors.New("density: probes, batch, workers and steps must not be negative")
	case o.Heun && o.Steps == 0:
		return o, errors.New("density: Heun's method needs a number of steps")
	case !(o.RTol > 0) || !(o.ATol > 0) || math.IsInf(o.RTol, 0) || math.IsInf(o.ATol, 0):
		return o, fmt.Errorf("density: tolerances rtol=%v atol=%v must be positive and finite", o.RTol, o.ATol)
	case e.vp == nil && !(0 < o.Sigma && o.Sigma < o.SigmaMax && !math.IsInf(o.SigmaMax, 0)):
		return o, fmt.Errorf("density: want 0 < σ₀ < σ_max, have σ₀=%v, σ_max=%v", o.Sigma, o.SigmaMax)
	case e.vp != nil && !(o.Time >= 0 && o.Time < float64(e.vp.n-1)):
		return o, fmt.Errorf("density: time %v is outside the model's 0 … %d steps", o.Time, e.vp.n-1)
	case o.Dequantize && (len(o.DataRange) != 2 || !(o.DataRange[1] > o.DataRange[0])):
		return o, errors.New("density: dequantization needs the data range (metadata ebmrun.data_range)")
	}
	return o, nil
}

// checkBudget refuses, before anything is allocated, a run whose model
// inputs and outputs alone do not fit the memory budget: each worker's
// model call holds (conditions × probes or d) rows of each point of a batch,
// in five buffers of d values (state, probe, probe copy, score, gradient).
func (o Options) checkBudget(e *Estimator, d, batch, workers int) error {
	per, unit := int64(d), "basis vectors" // rows per point
	if o.Divergence == Hutchinson {
		per, unit = int64(o.Probes), "probes"
	}
	parts := int64(1)
	if e.vp == nil && e.spec.Condition == importer.CondLabels {
		parts = 2 // between two levels the score mixes two model calls
	}
	rows := membudget.Product(parts, per, int64(batch))
	what := fmt.Sprintf("density: model calls of %d rows of %d values (batch %d × %d %s), %d at once,",
		rows, d, batch, per, unit, workers)
	if err := membudget.Check(what, membudget.Product(rows, int64(d), 5*4, int64(workers))); err != nil {
		return fmt.Errorf("%w; fewer probes, a smaller batch or fewer workers need less", err)
	}
	return nil
}

// LogP computes log p of each of the n points in x (n×Dim values): for a VE
// model log p_σ₀(x) = log N(x(σ_max); 0, σ_max²I) − ∫ σ·div s(x(σ), σ) dσ
// along the probability-flow ODE dx/dσ = −σ·s(x, σ) from σ₀ to σ_max; for a
// VP model log p(x) = log N(x(1); 0, I) + ∫ div f dt along
// dx/dt = f = −½β(t)(x + s(x, t)) from t₀ to 1.
func (e *Estimator) LogP(ctx context.Context, x []float32, n int, o Options) (*Result, error) {
	o, err := o.withDefaults(e)
	if err != nil {
		return nil, err
	}
	d := e.d
	if n < 1 || len(x) != n*d {
		return nil, fmt.Errorf("density: %d points of %d values need %d values, have %d", n, d, n*d, len(x))
	}
	res := &Result{LogP: make([]float64, n), N: n, Dim: d, Divergence: o.Divergence, Dequantized: o.Dequantize}
	if o.Divergence == Hutchinson {
		res.Probes = o.Probes
	}
	// Each worker makes its own condition: the function reuses its result's
	// buffer between calls, so one shared by workers is a data race.
	newCond := func() condFunc { return veCond(e.spec) }
	if e.vp != nil {
		res.Process, res.From, res.To = "vp", math.Max(DefaultVPEpsilon, o.Time/float64(e.vp.n-1)), 1
		newCond = func() condFunc { return e.vp.cond(e.spec) }
	} else {
		res.Process, res.From, res.To = "ve", o.Sigma, o.SigmaMax
		if e.spec.Condition == importer.CondLabels {
			res.Interpolated = !onSchedule(o.Sigma, e.spec.Sigmas) || !onSchedule(o.SigmaMax, e.spec.Sigmas) || len(e.spec.Sigmas) > 2
		}
	}
	if o.KeepPrior {
		res.Prior = make([]float32, n*d)
	}
	batches := (n + o.Batch - 1) / o.Batch
	workers := min(o.Workers, batches)
	if err := o.checkBudget(e, d, min(o.Batch, n), workers); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next          atomic.Int64
		evals, rows   atomic.Int64
		wg            sync.WaitGroup
		perPointEvals atomic.Int64
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := e.g.newField(d, newCond())
			if err != nil {
				cancel(err)
				return
			}
			defer f.close()
			w := &worker{e: e, f: f, o: o, res: res}
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= batches {
					return
				}
				lo, hi := k*o.Batch, min(n, (k+1)*o.Batch)
				nfe, err := w.batch(x[lo*d:hi*d], lo, hi-lo)
				if err != nil {
					cancel(fmt.Errorf("density: points %d…%d: %w", lo, hi-1, err))
					return
				}
				evals.Add(int64(nfe))
				perPointEvals.Add(int64(nfe) * int64(hi-lo))
				if o.Progress != nil {
					o.Progress.Add(int64(hi - lo))
				}
			}
			rows.Add(f.rows)
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	res.Evals = evals.Load()
	res.EvalsPerPoint = float64(perPointEvals.Load()) / float64(n)
	res.ModelRows = rows.Load()
	var st welford
	for _, v := range res.LogP {
		st.add(v)
	}
	res.Mean, res.StdErr = st.mean, st.stderr()
	res.BitsPerDim = -res.Mean / (float64(d) * math.Ln2)
	if o.Dequantize {
		res.DequantBits = math.Log2(256 / (o.DataRange[1] - o.DataRange[0]))
		res.BitsPerDim += res.DequantBits
	}
	return res, nil
}

func onSchedule(s float64, sig []float64) bool {
	for _, v := range sig {
		if math.Abs(v-s) <= labelTol*v {
			return true
		}
	}
	return false
}

// worker integrates batches with one field (session).
type worker struct {
	e   *Estimator
	f   *field
	o   Options
	res *Result

	y, s, div []float64
}

// batch integrates the b points of x, global indices from start, and writes
// their log-densities; it returns the number of ODE evaluations.
func (w *worker) batch(x []float32, start, b int) (int, error) {
	d, o, f := w.e.d, w.o, w.f
	w.y = grow(w.y, b*d+b)
	w.s = grow(w.s, b*d)
	w.div = grow(w.div, b)
	y := w.y
	for j, v := range x {
		y[j] = float64(v)
	}
	clear(y[b*d:])
	needRNG := o.Dequantize || o.Divergence == Hutchinson
	var rngs []*rand.Rand
	if needRNG {
		rngs = make([]*rand.Rand, b)
		for i := range rngs {
			rngs[i] = sampler.Stream(o.Seed, start+i)
		}
	}
	if o.Dequantize {
		lo, hi := o.DataRange[0], o.DataRange[1]
		for i := 0; i < b; i++ {
			for j := i * d; j < (i+1)*d; j++ {
				// The 8-bit level the value was scaled from, and a uniform
				// point inside its bin of width range/256.
				k := math.Round((y[j] - lo) / (hi - lo) * 255)
				k = math.Max(0, math.Min(255, k))
				y[j] = lo + (hi-lo)*(k+rngs[i].Float64())/256
			}
		}
	}
	f.probes = nil
	if o.Divergence == Hutchinson {
		f.k = o.Probes
		f.probes = grow(f.probes, o.Probes*b*d)
		for i := 0; i < b; i++ {
			for k := 0; k < o.Probes; k++ {
				v := f.probes[(k*b+i)*d : (k*b+i+1)*d]
				for j := range v {
					if o.Probe == Gaussian {
						v[j] = float32(rngs[i].NormFloat64())
					} else {
						v[j] = float32(2*rngs[i].IntN(2) - 1)
					}
				}
			}
		}
	}
	vp := w.e.vp
	rhs := func(u float64, y, dy []float64) error {
		xs := y[:b*d]
		if err := f.eval(w.s, w.div, xs, b, u); err != nil {
			return err
		}
		if vp == nil {
			// dx/dσ = −σ·s; d(∫div f)/dσ = −σ·div s.
			for j := range xs {
				dy[j] = -u * w.s[j]
			}
			for i := 0; i < b; i++ {
				dy[b*d+i] = -u * w.div[i]
			}
			return nil
		}
		beta := vp.beta(u)
		for j := range xs {
			dy[j] = -0.5 * beta * (xs[j] + w.s[j])
		}
		for i := 0; i < b; i++ {
			dy[b*d+i] = -0.5 * beta * (float64(d) + w.div[i])
		}
		return nil
	}
	from, to := w.res.From, w.res.To
	st, err := ode.Solve(rhs, from, to, y, ode.Options{RTol: o.RTol, ATol: o.ATol, Steps: o.Steps, Heun: o.Heun})
	if err != nil {
		return st.Evals, err
	}
	prior := to // the prior's standard deviation: σ_max, or 1 for VP
	if vp != nil {
		prior = 1
	}
	for i := 0; i < b; i++ {
		var q float64
		for _, v := range y[i*d : (i+1)*d] {
			q += v * v
		}
		lp := -0.5*float64(d)*math.Log(2*math.Pi*prior*prior) - 0.5*q/(prior*prior)
		w.res.LogP[start+i] = lp + y[b*d+i]
		if w.res.Prior != nil {
			for j, v := range y[i*d : (i+1)*d] {
				w.res.Prior[(start+i)*d+j] = float32(v)
			}
		}
	}
	return st.Evals, nil
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

func (w *welford) stderr() float64 {
	if w.n < 2 {
		return math.NaN()
	}
	return math.Sqrt(w.m2 / float64(w.n-1) / float64(w.n))
}
