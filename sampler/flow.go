package sampler

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/ebmrun/ebmrun/internal/ode"
)

var (
	_ Sampler = (*ODE)(nil)
	_ Sampler = (*DDIM)(nil)
	_ Sampler = (*EM)(nil)
)

// evalCounter is implemented by samplers whose number of evaluations is
// known only after the run (adaptive steps): Run reports the count.
type evalCounter interface {
	resetEvals()
	// evalsPerChain is the mean over the chains run since the reset.
	evalsPerChain() float64
}

// counter accumulates evaluations × chains over batches, shared by the
// workers.
type counter struct{ evals, chains atomic.Int64 }

func (c *counter) add(evals, chains int) {
	c.evals.Add(int64(evals) * int64(chains))
	c.chains.Add(int64(chains))
}

func (c *counter) reset() { c.evals.Store(0); c.chains.Store(0) }

func (c *counter) mean() float64 {
	n := c.chains.Load()
	if n == 0 {
		return 0
	}
	return float64(c.evals.Load()) / float64(n)
}

// Integration methods of the ODE sampler.
const (
	MethodRK45 = "rk45" // Dormand–Prince 5(4), adaptive unless Steps is set
	MethodHeun = "heun" // Heun's second-order method at Steps steps
)

// DefaultODEEvals is the evaluation count an adaptive ODE run is expected
// to take, for progress bars before the run; Run reports the real count.
const DefaultODEEvals = 100

// ODE samples by integrating the probability-flow ODE of the VE SDE
// backward, dx/dσ = −σ·s(x, σ) from σ_max to σ_min (Song et al. 2021,
// "Score-based generative modeling through stochastic differential
// equations", Sec. 4.3), deterministic given the initial state, which should
// be N(0, σ_max²I). It integrates in log σ (dx/d log σ = −σ²·s), so fixed
// steps are geometric in σ. A label-conditioned model is asked between its
// levels (Noise.Between).
type ODE struct {
	Sigmas     []float64 // σ_max = Sigmas[0], σ_min = the last; default geometric 1 → 0.01
	Method     string    // rk45 (default) or heun
	Steps      int       // fixed steps; 0 = adaptive (rk45 only)
	RTol, ATol float64   // adaptive tolerances; default 1e-5
	Denoise    bool      // finish with x + σ_min²·s(x, σ_min)

	count *counter
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (o ODE) WithDefaults() ODE {
	if o.Sigmas == nil {
		o.Sigmas = DefaultSigmas()
	}
	if o.Method == "" {
		o.Method = MethodRK45
	}
	if o.RTol == 0 {
		o.RTol = ode.DefaultTol
	}
	if o.ATol == 0 {
		o.ATol = ode.DefaultTol
	}
	return o
}

func (o *ODE) Name() string { return "ode" }

// Evals is exact for fixed steps and DefaultODEEvals for adaptive ones.
func (o *ODE) Evals() int {
	p := o.WithDefaults()
	n := DefaultODEEvals
	switch {
	case p.Steps > 0 && p.Method == MethodHeun:
		n = 2 * p.Steps
	case p.Steps > 0:
		n = 1 + 6*p.Steps
	}
	return n + btoi(p.Denoise)
}

func (o *ODE) resetEvals() {
	if o.count == nil {
		o.count = &counter{}
	}
	o.count.reset()
}

func (o *ODE) evalsPerChain() float64 { return o.count.mean() }

func (o *ODE) Validate() error {
	p := o.WithDefaults()
	if err := CheckSigmas(p.Sigmas); err != nil {
		return fmt.Errorf("ode: %w", err)
	}
	switch {
	case len(p.Sigmas) < 2 || !(p.Sigmas[0] > p.Sigmas[len(p.Sigmas)-1]):
		return errors.New("sampler: ode: needs σ_max > σ_min (two σ levels at least)")
	case p.Method != MethodRK45 && p.Method != MethodHeun:
		return fmt.Errorf("sampler: ode: method %q: want rk45 or heun", p.Method)
	case p.Method == MethodHeun && p.Steps == 0:
		return errors.New("sampler: ode: heun needs a number of steps")
	case p.Steps < 0:
		return fmt.Errorf("sampler: ode: steps = %d must be positive", p.Steps)
	case !(p.RTol > 0) || !(p.ATol > 0):
		return fmt.Errorf("sampler: ode: tolerances rtol=%v atol=%v must be positive", p.RTol, p.ATol)
	}
	return nil
}

func (o *ODE) Sample(s Scorer, b *Batch) error {
	p := o.WithDefaults()
	b.Begin(o.Name(), 1, p.Evals())
	n, d := b.N, b.Dim
	y := make([]float64, n*d)
	for i, v := range b.X {
		y[i] = float64(v)
	}
	xs := b.tmp[:n*d]
	evals := 0
	rhs := func(u float64, y, dy []float64) error {
		sigma := math.Exp(u)
		for i, v := range y {
			xs[i] = float32(v)
		}
		nz := Noise{Sigma: float32(sigma), Level: -1, Time: -1, Between: true}
		sc := b.score[:n*d]
		if err := s.Score(sc, xs, n, nz); err != nil {
			return fmt.Errorf("sampler: ode at σ=%.4g: %w", sigma, err)
		}
		if bad := b.countNonFinite(sc); bad > 0 {
			return b.diverged(0, evals, nz, bad, true)
		}
		evals++
		s2 := sigma * sigma
		for i := range dy {
			dy[i] = -s2 * float64(sc[i])
		}
		// Progress, trace and cancellation once per evaluation.
		if b.hook != nil {
			b.step++
			b.hook(b, 0, evals-1, sigma)
		}
		return b.ctx.Err()
	}
	sig := p.Sigmas
	lo, hi := sig[len(sig)-1], sig[0]
	_, err := ode.Solve(rhs, math.Log(hi), math.Log(lo), y, ode.Options{RTol: p.RTol, ATol: p.ATol, Steps: p.Steps, Heun: p.Method == MethodHeun})
	if err != nil {
		return fmt.Errorf("sampler: ode: %w", err)
	}
	for i, v := range y {
		b.X[i] = float32(v)
	}
	if p.Denoise {
		evals++
		nz := Noise{Sigma: float32(lo), Level: len(sig) - 1, Time: -1, Between: true}
		if err := b.denoiseAt(s, nz); err != nil {
			return err
		}
	}
	if o.count != nil {
		o.count.add(evals, n)
	}
	return b.Done(0, evals, VENoise(len(sig)-1, lo))
}

// denoiseAt is x ← x + σ²·s(x, σ) without counting a step.
func (b *Batch) denoiseAt(s Scorer, nz Noise) error {
	sc := b.score[:b.N*b.Dim]
	if err := s.Score(sc, b.X, b.N, nz); err != nil {
		return fmt.Errorf("sampler: %s denoising: %w", b.sampler, err)
	}
	f := nz.Sigma * nz.Sigma
	for i := range b.X {
		b.X[i] += f * sc[i]
	}
	return nil
}

// EM is the Euler–Maruyama discretisation of the reverse VE SDE
// dx = −d[σ²]·s(x, σ) + √(d[σ²])·dw̄ over the levels σ_1 > … > σ_L, then to
// σ = 0: x_mean = x + (σ_i² − σ_{i+1}²)·s(x, σ_i), x = x_mean +
// √(σ_i² − σ_{i+1}²)·z, returning the last x_mean (the predictor of Song et
// al.'s reverse-diffusion sampler). With Steps, the levels are Steps
// geometric ones between Sigmas' ends (a label-conditioned model is then
// asked between its levels).
type EM struct {
	Sigmas []float64 // default geometric 1 → 0.01, L = 10
	Steps  int       // 0: the levels of Sigmas
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (e EM) WithDefaults() EM {
	if e.Sigmas == nil {
		e.Sigmas = DefaultSigmas()
	}
	return e
}

func (e *EM) levels() ([]float64, bool) {
	p := e.WithDefaults()
	if p.Steps > 0 && len(p.Sigmas) > 0 {
		return Geometric(p.Sigmas[0], p.Sigmas[len(p.Sigmas)-1], p.Steps), true
	}
	return p.Sigmas, false
}

func (e *EM) Name() string { return "em" }
func (e *EM) Evals() int   { l, _ := e.levels(); return len(l) }

func (e *EM) Validate() error {
	if e.Steps < 0 {
		return fmt.Errorf("sampler: em: steps = %d must be positive", e.Steps)
	}
	l, _ := e.levels()
	if err := CheckSigmas(l); err != nil {
		return fmt.Errorf("em: %w", err)
	}
	return nil
}

func (e *EM) Sample(s Scorer, b *Batch) error {
	sig, between := e.levels()
	b.Begin(e.Name(), len(sig), 1)
	xmean := b.tmp[:len(b.X)]
	for i, sigma := range sig {
		nz := VENoise(i, sigma)
		nz.Between = between
		sc, err := b.Score(s, i, 0, nz)
		if err != nil {
			return err
		}
		next := 0.0
		if i+1 < len(sig) {
			next = sig[i+1]
		}
		d2 := sigma*sigma - next*next
		z := b.Normal()
		f, g := float32(d2), float32(math.Sqrt(d2))
		for k := range b.X {
			m := b.X[k] + f*sc[k]
			xmean[k] = m
			b.X[k] = m + g*z[k]
		}
		if err := b.Done(i, 0, nz); err != nil {
			return err
		}
	}
	copy(b.X, xmean)
	return nil
}

// Strided is K time steps spread over 0 … T−1, ascending, starting at 0:
// ⌊i·T/K⌋ (DDIM's uniform sub-sequence). K ≥ T gives every step.
func Strided(T, K int) []int {
	if K <= 0 || K >= T {
		K = T
	}
	out := make([]int, K)
	for i := range out {
		out[i] = i * T / K
	}
	return out
}

// alphaBars is ᾱ_t = Π_{s≤t}(1 − β_s).
func alphaBars(betas []float64) []float64 {
	out := make([]float64, len(betas))
	prod := 1.0
	for t, b := range betas {
		prod *= 1 - b
		out[t] = prod
	}
	return out
}

// DDIM is denoising diffusion implicit sampling (Song, Meng & Ermon 2021)
// of an ε-model with a time input, over a sub-sequence τ of its steps: with
// ε = −√(1−ᾱ_t)·s, x̂₀ = (x − √(1−ᾱ_t)·ε)/√ᾱ_t and
// x ← √ᾱ_prev·x̂₀ + √(1−ᾱ_prev−σ_t²)·ε + σ_t·z,
// σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev), ᾱ_prev = 1 after the last.
// η = 0 is deterministic; η = 1 is DDPM's ancestral sampler on τ.
type DDIM struct {
	Betas []float64 // β_0 … β_{T−1}; default linear 1e-4 → 0.02, T = 1000
	Steps int       // K steps strided over the schedule (Strided); 0: all T
	Times []int     // an explicit ascending sub-sequence, instead of Steps
	Eta   float64   // η ≥ 0
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (d DDIM) WithDefaults() DDIM {
	if d.Betas == nil {
		d.Betas = LinearBetas(DefaultBetaStart, DefaultBetaEnd, DefaultBetaSteps)
	}
	if d.Times == nil {
		d.Times = Strided(len(d.Betas), d.Steps)
	}
	return d
}

func (d *DDIM) Name() string { return "ddim" }
func (d *DDIM) Evals() int   { return len(d.WithDefaults().Times) }

func (d *DDIM) Validate() error {
	if err := (&DDPM{Betas: d.Betas}).Validate(); err != nil {
		return fmt.Errorf("sampler: ddim: %w", errors.Unwrap(err))
	}
	p := d.WithDefaults()
	switch {
	case d.Steps < 0:
		return fmt.Errorf("sampler: ddim: steps = %d must be positive", d.Steps)
	case !(p.Eta >= 0) || math.IsInf(p.Eta, 0):
		return fmt.Errorf("sampler: ddim: η = %v must be non-negative and finite", p.Eta)
	case len(p.Times) == 0:
		return errors.New("sampler: ddim: no time steps")
	}
	for i, t := range p.Times {
		if t < 0 || t >= len(p.Betas) || (i > 0 && t <= p.Times[i-1]) {
			return fmt.Errorf("sampler: ddim: time steps must ascend within 0 … %d, have %v", len(p.Betas)-1, p.Times)
		}
	}
	return nil
}

func (d *DDIM) Sample(s Scorer, b *Batch) error {
	p := d.WithDefaults()
	K := len(p.Times)
	b.Begin(d.Name(), K, 1)
	abar := alphaBars(p.Betas)
	for i := K - 1; i >= 0; i-- {
		t := p.Times[i]
		level := K - 1 - i
		at, prev := abar[t], 1.0
		if i > 0 {
			prev = abar[p.Times[i-1]]
		}
		sd := math.Sqrt(1 - at)
		nz := Noise{Sigma: float32(sd), Level: -1, Time: t}
		sc, err := b.Score(s, level, 0, nz)
		if err != nil {
			return err
		}
		sigma := p.Eta * math.Sqrt((1-prev)/(1-at)) * math.Sqrt(1-at/prev)
		dir := math.Sqrt(math.Max(0, 1-prev-sigma*sigma))
		ra, rp := math.Sqrt(at), math.Sqrt(prev)
		var z []float32
		if sigma > 0 {
			z = b.Normal()
		}
		for k, x := range b.X {
			eps := -sd * float64(sc[k])
			x0 := (float64(x) - sd*eps) / ra
			v := rp*x0 + dir*eps
			if z != nil {
				v += sigma * float64(z[k])
			}
			b.X[k] = float32(v)
		}
		if err := b.Done(level, 0, nz); err != nil {
			return err
		}
	}
	return nil
}
