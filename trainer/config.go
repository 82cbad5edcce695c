package trainer

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
)

// Config holds a training run's settings. The zero value of every field
// means its documented default; Validate checks the rest.
type Config struct {
	// Arch is the network; default MLP{} (3 × 128 SiLU).
	Arch Arch
	// Loss is one of LossNames; default LossDSM.
	Loss string
	// Projection is the distribution of SSM's slicing vectors: ProjRademacher
	// (default), ProjGaussian or ProjSphere.
	Projection string
	// FDEps is finite-difference SSM's step relative to σ (ε = FDEps·σ);
	// default 0.01.
	FDEps float64
	// Sigmas is the descending noise schedule; default NCSN's, geometric
	// 1 → 0.01 in 10 levels. Each sample's σ is drawn uniformly from it.
	Sigmas []float64
	// Steps is how many Adam steps Run takes in all; default 3000.
	Steps int
	// Batch is the number of samples per step; default 128.
	Batch int
	// LR is Adam's learning rate; default 1e-3. Beta1, Beta2 and AdamEps
	// default to 0.9, 0.999 and 1e-8.
	LR, Beta1, Beta2, AdamEps float64
	// WeightDecay is decoupled (AdamW) weight decay; default 0.
	WeightDecay float64
	// ClipNorm clips the gradient to this global L2 norm; 0 does not clip.
	ClipNorm float64
	// Warmup raises the learning rate linearly over this many steps; 0: none.
	Warmup int
	// EMA is the decay of the exponential moving average of the weights
	// that Export writes; default 0.999, negative: no average (export the
	// weights themselves).
	EMA float64
	// Seed fixes the initial weights and every batch, σ and noise draw.
	Seed uint64
	// Threads is the backend's thread count; 0: every core.
	Threads int
	// CD holds contrastive divergence's settings (Loss LossCD).
	CD CDConfig
	// Sampler is what the exported model recommends to samplers; default
	// annealed Langevin with T = 100 steps per level, ε = 2e-5 and the
	// final denoising step.
	Sampler importer.SamplerDefaults
}

func (c Config) withDefaults() Config {
	if c.Arch == nil {
		c.Arch = MLP{}
	}
	if c.Loss == "" {
		c.Loss = LossDSM
	}
	if c.Projection == "" {
		c.Projection = ProjRademacher
	}
	if c.FDEps == 0 {
		c.FDEps = 0.01
	}
	if c.Sigmas == nil && c.Loss == LossCD {
		c.Sigmas = []float64{1} // CD trains the energy at one σ
	}
	if c.Sigmas == nil {
		c.Sigmas = sampler.DefaultSigmas()
	}
	if c.Steps == 0 {
		c.Steps = 3000
	}
	if c.Batch == 0 {
		c.Batch = 128
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.Beta1 == 0 {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.999
	}
	if c.AdamEps == 0 {
		c.AdamEps = 1e-8
	}
	if c.EMA == 0 {
		c.EMA = 0.999
	}
	if c.Sampler == (importer.SamplerDefaults{}) && c.Loss == LossCD {
		// Langevin at the one σ CD trained, with its step: ALD's ε is 2α
		// for x + (ε/2)s + √ε z, and no denoising step (σ is not noise).
		cd := c.CD.withDefaults()
		c.Sampler = importer.SamplerDefaults{Sampler: "ald", Steps: 1000, StepLR: 2 * cd.StepSize}
	}
	if c.Sampler == (importer.SamplerDefaults{}) {
		c.Sampler = importer.SamplerDefaults{Sampler: "ald", Steps: sampler.DefaultSteps, StepLR: sampler.DefaultStepLR, Denoise: true}
	}
	return c
}

// Validate reports every setting that cannot work, in one error.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := c.Arch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !has(LossNames, c.Loss) && !has(EnergyLossNames, c.Loss) {
		bad("loss %q is not one of %s", c.Loss, strings.Join(append(LossNames[:len(LossNames):len(LossNames)], EnergyLossNames...), ", "))
	}
	if c.Loss == LossCD {
		if !isEnergy(c.Arch) {
			bad("loss cd needs an energy architecture (energy-mlp or energy-conv), not %s", c.Arch.Name())
		}
		if err := c.CD.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if !has([]string{ProjRademacher, ProjGaussian, ProjSphere}, c.Projection) {
		bad("projection %q is not rademacher, gaussian or sphere", c.Projection)
	}
	if err := sampler.CheckSigmas(c.Sigmas); err != nil {
		errs = append(errs, err)
	}
	if !(c.FDEps > 0) || c.FDEps > 1 {
		bad("finite-difference ε = %v·σ must lie in (0, 1]", c.FDEps)
	}
	if c.Steps < 0 || c.Batch < 1 {
		bad("steps %d and batch %d must be positive", c.Steps, c.Batch)
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		bad("learning rate %v must be positive and finite", c.LR)
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) || !(c.AdamEps > 0) {
		bad("Adam β₁ = %v and β₂ = %v must lie in [0, 1) and ε = %v be positive", c.Beta1, c.Beta2, c.AdamEps)
	}
	if !(c.WeightDecay >= 0) || !(c.ClipNorm >= 0) || c.Warmup < 0 || math.IsInf(c.WeightDecay, 0) || math.IsInf(c.ClipNorm, 0) {
		bad("weight decay %v, clip norm %v and warm-up %d must be finite and not negative", c.WeightDecay, c.ClipNorm, c.Warmup)
	}
	if !(c.EMA < 1) || math.IsInf(c.EMA, 0) {
		bad("EMA decay %v must be below 1 (negative: no average)", c.EMA)
	}
	if len(errs) > 0 {
		// Arch and loss errors carry the package prefix already; say it once.
		for i, e := range errs {
			if msg := e.Error(); strings.HasPrefix(msg, "trainer: ") {
				errs[i] = trimmedErr{msg: strings.TrimPrefix(msg, "trainer: "), err: e}
			}
		}
		return fmt.Errorf("trainer: %w", errors.Join(errs...))
	}
	return nil
}

// fingerprint is what a checkpoint must agree on to be resumed: every
// setting that changes the arithmetic of a step (not Steps or Threads).
func (c Config) fingerprint(data Data) string {
	c = c.withDefaults()
	return fmt.Sprintf("arch=%s %+v data=%s %v loss=%s proj=%s fdeps=%v sigmas=%v batch=%d lr=%v adam=%v,%v,%v wd=%v clip=%v warmup=%d ema=%v seed=%d cd=%+v",
		c.Arch.Name(), c.Arch, data.Name(), data.Shape(), c.Loss, c.Projection, c.FDEps, c.Sigmas, c.Batch, c.LR,
		c.Beta1, c.Beta2, c.AdamEps, c.WeightDecay, c.ClipNorm, c.Warmup, c.EMA, c.Seed, c.CD.withDefaults())
}

// Setting is one named value of a run's fingerprint.
type Setting struct{ Name, Value string }

// settings are the fingerprint's values by name, so a mismatch can be
// reported as the few settings that differ.
func (c Config) settings(data Data) []Setting {
	c = c.withDefaults()
	f := fmt.Sprint
	return []Setting{
		{"arch", c.Arch.Name()}, {"arch settings", fmt.Sprintf("%+v", c.Arch)}, {"data", data.Name()}, {"data shape", f(data.Shape())},
		{"loss", c.Loss}, {"projection", c.Projection}, {"fd-eps", f(c.FDEps)}, {"sigmas", f(c.Sigmas)}, {"batch", f(c.Batch)},
		{"lr", f(c.LR)}, {"adam", fmt.Sprintf("%v,%v,%v", c.Beta1, c.Beta2, c.AdamEps)}, {"weight-decay", f(c.WeightDecay)},
		{"clip", f(c.ClipNorm)}, {"warmup", f(c.Warmup)}, {"ema", f(c.EMA)}, {"seed", f(c.Seed)}, {"cd", fmt.Sprintf("%+v", c.CD.withDefaults())},
	}
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Version is the ebmrun version recorded in exported models: the module
// version, else the VCS revision the binary was built from, else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return "devel-" + rev
}

// trimmedErr shows an error without its package prefix while keeping it
// matchable with errors.Is and errors.As.
type trimmedErr struct {
	msg string
	err error
}

func (e trimmedErr) Error() string { return e.msg }
func (e trimmedErr) Unwrap() error { return e.err }
