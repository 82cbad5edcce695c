package sampler

import (
	"errors"
	"fmt"
	"math"
)

// Sampler advances a batch of chains from their initial states to samples.
type Sampler interface {
	// Name is the command-line name: ula, ald, cas, pc, ddpm.
	Name() string
	// Validate reports a setting that cannot run, after defaults.
	Validate() error
	// Evals is the number of score evaluations each chain takes.
	Evals() int
	// Sample runs the chains of b to the end, calling s once per step.
	Sample(s Scorer, b *Batch) error
}

// grouped is implemented by samplers whose update couples chains in groups
// of a fixed size; Run aligns batches and shards to whole groups so the
// result does not depend on the batch size.
type grouped interface{ group() int }

var (
	_ Sampler = (*ULA)(nil)
	_ Sampler = (*ALD)(nil)
	_ Sampler = (*CAS)(nil)
	_ Sampler = (*PC)(nil)
	_ Sampler = (*DDPM)(nil)
)

// Begin names the sampler and its numbers of levels and steps per level,
// for error messages.
func (b *Batch) Begin(name string, levels, steps int) {
	b.sampler, b.levels, b.steps = name, levels, steps
}

// langevin is x ← x + a·s + c·z.
func langevin(x []float32, a float32, s []float32, c float32, z []float32) {
	s, z = s[:len(x)], z[:len(x)]
	for i := range x {
		x[i] += a*s[i] + c*z[i]
	}
}

// ULA is the unadjusted Langevin algorithm at one noise level:
// x ← x + α·s(x, σ) + √(2α)·z, Steps times (Roberts & Tweedie 1996; the
// sampler of Song & Ermon 2019 before annealing).
type ULA struct {
	Sigma    float64 // σ the score is evaluated at; default 0.01 (NCSN's σ_L)
	Steps    int     // default 1000
	StepSize float64 // α; default 2e-5 (NCSN's ε)
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (u ULA) WithDefaults() ULA {
	if u.Sigma == 0 {
		u.Sigma = DefaultSigmaMin
	}
	if u.Steps == 0 {
		u.Steps = 1000
	}
	if u.StepSize == 0 {
		u.StepSize = DefaultStepLR
	}
	return u
}

func (u *ULA) Name() string { return "ula" }
func (u *ULA) Evals() int   { return u.WithDefaults().Steps }

func (u *ULA) Validate() error {
	p := u.WithDefaults()
	switch {
	case !(p.Sigma > 0) || math.IsInf(p.Sigma, 0):
		return fmt.Errorf("sampler: ula: σ = %v must be positive and finite", p.Sigma)
	case p.Steps < 0:
		return fmt.Errorf("sampler: ula: steps = %d must be positive", p.Steps)
	case !(p.StepSize > 0) || math.IsInf(p.StepSize, 0):
		return fmt.Errorf("sampler: ula: step size = %v must be positive and finite", p.StepSize)
	}
	return nil
}

func (u *ULA) Sample(s Scorer, b *Batch) error {
	p := u.WithDefaults()
	b.Begin(u.Name(), 1, p.Steps)
	nz := VENoise(-1, p.Sigma)
	a, c := float32(p.StepSize), float32(math.Sqrt(2*p.StepSize))
	for t := 0; t < p.Steps; t++ {
		sc, err := b.Score(s, 0, t, nz)
		if err != nil {
			return err
		}
		langevin(b.X, a, sc, c, b.Normal())
		if err := b.Done(0, t, nz); err != nil {
			return err
		}
	}
	return nil
}

// ALD is annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling
// by Estimating Gradients of the Data Distribution", Algorithm 1): for each
// level i, α_i = ε·σ_i²/σ_L² and T steps of x ← x + α_i·s(x, σ_i) + √(2α_i)·z,
// each level starting where the last ended. With Denoise, a final
// x ← x + σ_L²·s(x, σ_L) (Song & Ermon 2020, "Improved Techniques for
// Training Score-Based Generative Models", NCSNv2).
type ALD struct {
	Sigmas  []float64 // descending; default geometric 1 → 0.01, L = 10
	Steps   int       // T per level; default 100
	StepLR  float64   // ε; default 2e-5
	Denoise bool      // NCSNv2's final denoising step
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (a ALD) WithDefaults() ALD {
	if a.Sigmas == nil {
		a.Sigmas = DefaultSigmas()
	}
	if a.Steps == 0 {
		a.Steps = DefaultSteps
	}
	if a.StepLR == 0 {
		a.StepLR = DefaultStepLR
	}
	return a
}

func (a *ALD) Name() string { return "ald" }

func (a *ALD) Evals() int {
	p := a.WithDefaults()
	return len(p.Sigmas)*p.Steps + btoi(p.Denoise)
}

func (a *ALD) Validate() error {
	p := a.WithDefaults()
	if err := CheckSigmas(p.Sigmas); err != nil {
		return fmt.Errorf("ald: %w", err)
	}
	if p.Steps < 0 {
		return fmt.Errorf("sampler: ald: steps per level = %d must be positive", p.Steps)
	}
	if !(p.StepLR > 0) || math.IsInf(p.StepLR, 0) {
		return fmt.Errorf("sampler: ald: step size ε = %v must be positive and finite", p.StepLR)
	}
	return nil
}

func (a *ALD) Sample(s Scorer, b *Batch) error {
	p := a.WithDefaults()
	b.Begin(a.Name(), len(p.Sigmas), p.Steps)
	sL := p.Sigmas[len(p.Sigmas)-1]
	for i, sig := range p.Sigmas {
		alpha := p.StepLR * sig * sig / (sL * sL)
		st, c := float32(alpha), float32(math.Sqrt(2*alpha))
		nz := VENoise(i, sig)
		for t := 0; t < p.Steps; t++ {
			sc, err := b.Score(s, i, t, nz)
			if err != nil {
				return err
			}
			langevin(b.X, st, sc, c, b.Normal())
			if err := b.Done(i, t, nz); err != nil {
				return err
			}
		}
	}
	if p.Denoise {
		return b.denoise(s, len(p.Sigmas)-1, p.Steps, sL)
	}
	return nil
}

// denoise is NCSNv2's x ← x + σ_L²·s(x, σ_L), counted as one more step of
// the last level.
func (b *Batch) denoise(s Scorer, level, step int, sigma float64) error {
	nz := VENoise(level, sigma)
	sc, err := b.Score(s, level, step, nz)
	if err != nil {
		return err
	}
	x := b.X
	f := float32(sigma * sigma)
	for i := range x {
		x[i] += f * sc[i]
	}
	return b.Done(level, step, nz)
}

// CAS is consistent annealed sampling (Jolicoeur-Martineau, Piché-Taillefer,
// Tachet des Combes & Mitliagkas 2021, "Adversarial score matching and
// improved sampling for image generation", Algorithm 2): with η = ε/σ_L²,
// γ_i = σ_{i+1}/σ_i and β_i = √(1 − ((1−η)/γ_i)²), one step per level:
// x ← x + η·σ_i²·s(x, σ_i); x ← x + σ_{i+1}·β_i·z, where past the last level
// σ_{L+1} = γ_{L−1}·σ_L continues the schedule's last ratio. β_i is real only
// when 1−γ_i < η < 1+γ_i; Validate refuses other settings. With Denoise,
// NCSNv2's final step follows.
type CAS struct {
	Sigmas  []float64 // descending, at least two levels; default geometric 1 → 0.01, L = 10
	StepLR  float64   // ε; default η = min(1, 2·(1−γ_min))·σ_L², see below
	Denoise bool
}

// WithDefaults is a copy with the zero fields set to their defaults.
// The default η sits in the lower half of the allowed band (1−γ, 1+γ):
// each step shrinks the data's own spread by a term of order η², so η = 1
// (denoise fully, then renoise) loses the variance of modes as wide as σ,
// while small η stays consistent.
func (c CAS) WithDefaults() CAS {
	if c.Sigmas == nil {
		c.Sigmas = DefaultSigmas()
	}
	if c.StepLR == 0 && len(c.Sigmas) >= 2 {
		sL := c.Sigmas[len(c.Sigmas)-1]
		c.StepLR = min(1, 2*(1-c.minGamma())) * sL * sL
	}
	return c
}

// minGamma is the smallest ratio σ_{i+1}/σ_i and its level.
func (c CAS) minGamma() float64 {
	g, _ := c.gammaMin()
	return g
}

func (c CAS) gammaMin() (float64, int) {
	gmin, at := math.Inf(1), 0
	for i := range c.Sigmas {
		if g := c.next(i) / c.Sigmas[i]; g < gmin*(1-1e-9) { // the first of equal ratios
			gmin, at = g, i
		}
	}
	return gmin, at
}

func (c *CAS) Name() string { return "cas" }
func (c *CAS) Evals() int   { p := c.WithDefaults(); return len(p.Sigmas) + btoi(p.Denoise) }

// next is σ_{i+1}, continuing the last ratio past the end.
func (c CAS) next(i int) float64 {
	s := c.Sigmas
	if i+1 < len(s) {
		return s[i+1]
	}
	return s[i] * s[i] / s[i-1]
}

func (c *CAS) Validate() error {
	if c.Sigmas != nil && len(c.Sigmas) < 2 {
		return errors.New("sampler: cas: needs at least two σ levels (γ = σ_{i+1}/σ_i)")
	}
	p := c.WithDefaults()
	if err := CheckSigmas(p.Sigmas); err != nil {
		return fmt.Errorf("cas: %w", err)
	}
	sL := p.Sigmas[len(p.Sigmas)-1]
	eta := p.StepLR / (sL * sL)
	if !(p.StepLR > 0) || math.IsInf(p.StepLR, 0) {
		return fmt.Errorf("sampler: cas: step size ε = %v must be positive and finite", p.StepLR)
	}
	// The tightest bound over the levels: η must exceed 1−γ_min and stay
	// below 1+γ_min, where γ_min is the smallest ratio.
	gmin, at := p.gammaMin()
	if !(1-gmin < eta && eta < 1+gmin) {
		return fmt.Errorf("sampler: cas: η = ε/σ_L² = %.4g is outside 1−γ < η < 1+γ = (%.4g, %.4g), where γ = σ_{i+1}/σ_i = %.4g at level %d: choose ε (--step-lr) in (%.4g, %.4g), or more σ levels",
			eta, 1-gmin, 1+gmin, gmin, at+1, (1-gmin)*sL*sL, (1+gmin)*sL*sL)
	}
	return nil
}

func (c *CAS) Sample(s Scorer, b *Batch) error {
	p := c.WithDefaults()
	b.Begin(c.Name(), len(p.Sigmas), 1)
	sL := p.Sigmas[len(p.Sigmas)-1]
	eta := p.StepLR / (sL * sL)
	for i, sig := range p.Sigmas {
		next := p.next(i)
		g := next / sig
		beta := math.Sqrt(1 - ((1-eta)/g)*((1-eta)/g))
		nz := VENoise(i, sig)
		sc, err := b.Score(s, i, 0, nz)
		if err != nil {
			return err
		}
		langevin(b.X, float32(eta*sig*sig), sc, float32(next*beta), b.Normal())
		if err := b.Done(i, 0, nz); err != nil {
			return err
		}
	}
	if p.Denoise {
		return b.denoise(s, len(p.Sigmas)-1, 1, sL)
	}
	return nil
}

// DefaultSNR is the corrector's signal-to-noise ratio Song et al. use for
// VE SDEs on CIFAR-10.
const DefaultSNR = 0.16

// DefaultNormGroup is how many consecutive chains share PC's averaged norms.
const DefaultNormGroup = 64

// PC is the predictor–corrector sampler of the VE SDE (Song, Sohl-Dickstein,
// Kingma, Kumar, Ermon & Poole 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations", Algorithms 2 and 4), levels from high to
// low σ. Corrector (Langevin at signal-to-noise ratio r), CorrectorSteps
// times: ε_c = 2·(r·‖z‖/‖s‖)², x ← x + ε_c·s(x, σ_i) + √(2ε_c)·z. Predictor
// (reverse diffusion): x_mean = x + (σ_i² − σ_{i+1}²)·s(x, σ_i),
// x = x_mean + √(σ_i² − σ_{i+1}²)·z with σ_{L+1} = 0; the result is the last
// x_mean.
//
// ‖·‖ is each chain's L2 norm averaged over a group of chains, as the
// reference implementation averages over its batch. The groups are NormGroup
// consecutive chains by index, not the batch, so results do not depend on the
// batch size: Run makes batches and shards whole groups.
type PC struct {
	Sigmas         []float64 // descending; default geometric 1 → 0.01, L = 10
	SNR            float64   // r; default 0.16
	CorrectorSteps int       // default 1; −1 for none (predictor only)
	NormGroup      int       // chains per norm average; default 64, 1 for per-chain norms
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (p PC) WithDefaults() PC {
	if p.Sigmas == nil {
		p.Sigmas = DefaultSigmas()
	}
	if p.SNR == 0 {
		p.SNR = DefaultSNR
	}
	if p.CorrectorSteps == 0 {
		p.CorrectorSteps = 1
	} else if p.CorrectorSteps < 0 {
		p.CorrectorSteps = 0
	}
	if p.NormGroup == 0 {
		p.NormGroup = DefaultNormGroup
	}
	return p
}

func (p *PC) Name() string { return "pc" }
func (p *PC) group() int   { return p.WithDefaults().NormGroup }

func (p *PC) Evals() int {
	q := p.WithDefaults()
	return len(q.Sigmas) * (q.CorrectorSteps + 1)
}

func (p *PC) Validate() error {
	q := p.WithDefaults()
	if err := CheckSigmas(q.Sigmas); err != nil {
		return fmt.Errorf("pc: %w", err)
	}
	if !(q.SNR > 0) || math.IsInf(q.SNR, 0) {
		return fmt.Errorf("sampler: pc: snr = %v must be positive and finite", q.SNR)
	}
	if q.NormGroup < 1 {
		return fmt.Errorf("sampler: pc: norm group = %d must be at least 1", q.NormGroup)
	}
	return nil
}

func (p *PC) Sample(s Scorer, b *Batch) error {
	q := p.WithDefaults()
	b.Begin(p.Name(), len(q.Sigmas), q.CorrectorSteps+1)
	xmean := b.tmp[:len(b.X)]
	for i, sig := range q.Sigmas {
		nz := VENoise(i, sig)
		for c := 0; c < q.CorrectorSteps; c++ {
			sc, err := b.Score(s, i, c, nz)
			if err != nil {
				return err
			}
			b.correct(sc, b.Normal(), q.SNR, q.NormGroup)
			if err := b.Done(i, c, nz); err != nil {
				return err
			}
		}
		sc, err := b.Score(s, i, q.CorrectorSteps, nz)
		if err != nil {
			return err
		}
		next := 0.0
		if i+1 < len(q.Sigmas) {
			next = q.Sigmas[i+1]
		}
		d2 := sig*sig - next*next
		z := b.Normal()
		f, g := float32(d2), float32(math.Sqrt(d2))
		for k := range b.X {
			m := b.X[k] + f*sc[k]
			xmean[k] = m
			b.X[k] = m + g*z[k]
		}
		if err := b.Done(i, q.CorrectorSteps, nz); err != nil {
			return err
		}
	}
	copy(b.X, xmean)
	return nil
}

// correct is the Langevin corrector step with the group-averaged norms.
func (b *Batch) correct(sc, z []float32, snr float64, group int) {
	d := b.Dim
	for g0 := 0; g0 < b.N; g0 += group {
		g1 := min(g0+group, b.N)
		var sn, zn float64
		for i := g0; i < g1; i++ {
			sn += norm(sc[i*d : (i+1)*d])
			zn += norm(z[i*d : (i+1)*d])
		}
		// The group size cancels in the ratio of the two means.
		eps := 0.0
		if sn > 0 {
			r := snr * zn / sn
			eps = 2 * r * r
		}
		langevin(b.X[g0*d:g1*d], float32(eps), sc[g0*d:g1*d], float32(math.Sqrt(2*eps)), z[g0*d:g1*d])
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// DDPM is ancestral sampling of a denoising diffusion model (Ho, Jain &
// Abbeel 2020, "Denoising Diffusion Probabilistic Models", Algorithm 2): for
// t = T−1 … 0, x ← (x − β_t/√(1−ᾱ_t)·ε(x, t))/√(1−β_t) + √β_t·z, with no z at
// t = 0 and ᾱ_t = Π_{s≤t}(1−β_s). The scorer is asked at σ = √(1−ᾱ_t) and
// time t; as s = −ε/√(1−ᾱ_t), the update is x ← (x + β_t·s)/√(1−β_t) + √β_t·z.
//
// With Steps = K < T the chain visits only the strided steps τ (Strided)
// and each transition τ_{i−1} → τ_i uses β' = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}, the
// β that gives the same ᾱ over the skipped steps (the respacing of Nichol &
// Dhariwal 2021).
type DDPM struct {
	Betas []float64 // β_0 … β_{T−1}; default linear 1e-4 → 0.02, T = 1000
	Steps int       // K steps strided over the schedule; 0: all T
}

// WithDefaults is a copy with the zero fields set to their defaults.
func (d DDPM) WithDefaults() DDPM {
	if d.Betas == nil {
		d.Betas = LinearBetas(DefaultBetaStart, DefaultBetaEnd, DefaultBetaSteps)
	}
	return d
}

func (d *DDPM) Name() string { return "ddpm" }
func (d *DDPM) Evals() int   { p := d.WithDefaults(); return len(Strided(len(p.Betas), p.Steps)) }

func (d *DDPM) Validate() error {
	p := d.WithDefaults()
	if len(p.Betas) == 0 {
		return errors.New("sampler: ddpm: the β schedule is empty")
	}
	if p.Steps < 0 {
		return fmt.Errorf("sampler: ddpm: steps = %d must be positive", p.Steps)
	}
	for t, b := range p.Betas {
		if !(b > 0 && b < 1) {
			return fmt.Errorf("sampler: ddpm: β_%d = %v must lie in (0, 1)", t, b)
		}
	}
	return nil
}

func (d *DDPM) Sample(s Scorer, b *Batch) error {
	p := d.WithDefaults()
	times := Strided(len(p.Betas), p.Steps)
	strided := len(times) < len(p.Betas)
	K := len(times)
	b.Begin(d.Name(), K, 1)
	abar := alphaBars(p.Betas)
	for i := K - 1; i >= 0; i-- {
		t := times[i]
		beta := p.Betas[t]
		if strided {
			prev := 1.0
			if i > 0 {
				prev = abar[times[i-1]]
			}
			beta = 1 - abar[t]/prev
		}
		level := K - 1 - i
		nz := Noise{Sigma: float32(math.Sqrt(1 - abar[t])), Level: -1, Time: t}
		sc, err := b.Score(s, level, 0, nz)
		if err != nil {
			return err
		}
		inv := float32(1 / math.Sqrt(1-beta))
		fb := float32(beta)
		if i > 0 {
			z := b.Normal()
			g := float32(math.Sqrt(beta))
			for k := range b.X {
				b.X[k] = (b.X[k]+fb*sc[k])*inv + g*z[k]
			}
		} else {
			for k := range b.X {
				b.X[k] = (b.X[k] + fb*sc[k]) * inv
			}
		}
		if err := b.Done(level, 0, nz); err != nil {
			return err
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
