package sampler

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/importer"
)

// Overrides are sampler settings chosen by the caller (a command line, a
// request); a zero field is not set. They win over the model's
// recommendations, which win over each sampler's own defaults.
type Overrides struct {
	Sampler string    // ald, ula, cas, pc, ddpm, …; "" picks the model's, else DefaultName's
	Sigmas  []float64 // σ schedule; nil: the model's (spec.Sigmas)
	Steps   int       // ald: per level; ula: total; pc: corrector steps per level (−1: none)
	StepLR  float64   // ald, cas: ε; ula: α
	SNR     float64   // pc
	Denoise *bool     // ald, cas, ode: NCSNv2's final step
	Method  string    // ode: rk45 (default) or heun
	Eta     float64   // ddim: η
	Times   []int     // ddim: an ascending sub-sequence of time steps instead of Steps strided
	RTol    float64   // ode: adaptive tolerances
	ATol    float64
}

// Settings are what a constructor gets: the overrides merged with the
// model's recommendations when those were made for the same sampler. A zero
// field is left to the sampler's own default.
type Settings struct {
	Sigmas  []float64
	Steps   int
	StepLR  float64
	SNR     float64
	Denoise bool
	Betas   *importer.Betas // the model's DDPM schedule; nil: the sampler's default
	Method  string
	Eta     float64
	Times   []int
	RTol    float64
	ATol    float64
}

// family is the kind of model a sampler draws from.
type family int

const (
	familySigma family = iota // a σ schedule: score models with a σ or label input, or none
	familyTime                // a diffusion time input: ε-models with a β schedule
	familyNoise               // a σ schedule and a model that is told σ (the probability flow, the reverse SDE)
)

// constructor is one sampler's entry in the table FromSpec reads: the
// models it draws from, how to make it from settings, and how to list its
// effective settings (after its own defaults) for reports.
type constructor struct {
	family   family
	build    func(Settings) Sampler
	describe func(Sampler, map[string]any)
}

// constructors is every sampler FromSpec can make; a new sampler is one
// more entry here.
var constructors = map[string]constructor{
	"ald": {familySigma,
		func(s Settings) Sampler {
			return &ALD{Sigmas: s.Sigmas, Steps: s.Steps, StepLR: s.StepLR, Denoise: s.Denoise}
		},
		func(smp Sampler, out map[string]any) {
			d := smp.(*ALD).WithDefaults()
			out["sigmas"], out["steps"], out["step_lr"], out["denoise"] = d.Sigmas, d.Steps, d.StepLR, d.Denoise
		}},
	"ula": {familySigma,
		func(s Settings) Sampler {
			u := &ULA{Steps: s.Steps, StepSize: s.StepLR}
			if len(s.Sigmas) > 0 {
				u.Sigma = s.Sigmas[len(s.Sigmas)-1]
			}
			return u
		},
		func(smp Sampler, out map[string]any) {
			d := smp.(*ULA).WithDefaults()
			out["sigma"], out["steps"], out["step_lr"] = d.Sigma, d.Steps, d.StepSize
		}},
	"cas": {familySigma,
		func(s Settings) Sampler { return &CAS{Sigmas: s.Sigmas, StepLR: s.StepLR, Denoise: s.Denoise} },
		func(smp Sampler, out map[string]any) {
			d := smp.(*CAS).WithDefaults()
			out["sigmas"], out["step_lr"], out["denoise"] = d.Sigmas, d.StepLR, d.Denoise
		}},
	"pc": {familySigma,
		func(s Settings) Sampler { return &PC{Sigmas: s.Sigmas, SNR: s.SNR, CorrectorSteps: s.Steps} },
		func(smp Sampler, out map[string]any) {
			d := smp.(*PC).WithDefaults()
			out["sigmas"], out["snr"], out["corrector_steps"], out["norm_group"] = d.Sigmas, d.SNR, d.CorrectorSteps, d.NormGroup
		}},
	"ddpm": {familyTime,
		func(s Settings) Sampler { return &DDPM{Betas: betasOf(s.Betas), Steps: s.Steps} },
		func(smp Sampler, out map[string]any) {
			d := smp.(*DDPM).WithDefaults()
			out["steps"], out["beta_start"], out["beta_end"] = d.Evals(), d.Betas[0], d.Betas[len(d.Betas)-1]
		}},
	"ddim": {familyTime,
		func(s Settings) Sampler {
			return &DDIM{Betas: betasOf(s.Betas), Steps: s.Steps, Eta: s.Eta, Times: s.Times}
		},
		func(smp Sampler, out map[string]any) {
			d := smp.(*DDIM).WithDefaults()
			out["steps"], out["eta"], out["beta_start"], out["beta_end"] = d.Evals(), d.Eta, d.Betas[0], d.Betas[len(d.Betas)-1]
		}},
	"ode": {familyNoise,
		func(s Settings) Sampler {
			return &ODE{Sigmas: s.Sigmas, Method: s.Method, Steps: s.Steps, RTol: s.RTol, ATol: s.ATol, Denoise: s.Denoise}
		},
		func(smp Sampler, out map[string]any) {
			d := smp.(*ODE).WithDefaults()
			out["sigmas"], out["method"], out["denoise"] = d.Sigmas, d.Method, d.Denoise
			if d.Steps > 0 {
				out["steps"] = d.Steps
			} else {
				out["rtol"], out["atol"] = d.RTol, d.ATol
			}
		}},
	"em": {familyNoise,
		func(s Settings) Sampler { return &EM{Sigmas: s.Sigmas, Steps: s.Steps} },
		func(smp Sampler, out map[string]any) {
			d := smp.(*EM).WithDefaults()
			out["sigmas"], out["levels"] = d.Sigmas, smp.Evals()
		}},
}

// Names lists the samplers FromSpec makes, sorted.
func Names() []string {
	out := make([]string, 0, len(constructors))
	for k := range constructors {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrNoSchedule is returned by FromSpec for a model told its noise level
// (a σ or label input) whose σ schedule is unknown: sampling it with some
// default schedule would give wrong samples for a model trained on other σ.
var ErrNoSchedule = errors.New("sampler: the model's σ schedule is unknown")

// DefaultName is the sampler used when neither the caller nor the model
// names one: ddpm for time-conditioned models, else ald.
func DefaultName(spec *importer.ModelSpec) string {
	if spec.Condition == importer.CondTime {
		return "ddpm"
	}
	return "ald"
}

// FromSpec makes the sampler for a model: the name from the overrides,
// else the model's recommendation, else DefaultName. Each setting comes from
// the overrides, else from the model's recommended settings — only when they
// were recommended for this same sampler (or for the default one, when the
// model names none) — else from the sampler's own defaults, so one sampler's
// recommended step count never reaches another. The result is validated.
func FromSpec(spec *importer.ModelSpec, ov Overrides) (Sampler, error) {
	rec := spec.Sampler
	name := ov.Sampler
	if name == "" {
		name = rec.Sampler
	}
	if name == "" {
		name = DefaultName(spec)
	}
	c, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("sampler: unknown sampler %q (want %s)", name, strings.Join(Names(), ", "))
	}
	switch isTime := spec.Condition == importer.CondTime; {
	case isTime && c.family != familyTime:
		return nil, fmt.Errorf("sampler: %s: a time-conditioned model is sampled with a diffusion sampler (%s)", name, strings.Join(namesOf(familyTime), ", "))
	case !isTime && c.family == familyTime:
		return nil, fmt.Errorf("sampler: %s: needs a model with a time input; this model's condition is %s", name, spec.Condition)
	case c.family == familyNoise && spec.Condition == importer.CondNone:
		// The ODE and the reverse SDE integrate s(x, σ) over σ; an unconditional
		// score has no σ to follow, so their output would not be a sample.
		return nil, fmt.Errorf("sampler: %s: follows the score across noise levels, but this model takes no noise condition; use ald or ula", name)
	}
	recName := rec.Sampler
	if recName == "" {
		recName = DefaultName(spec)
	}
	if recName != name {
		rec = importer.SamplerDefaults{}
	}
	s := Settings{
		Sigmas:  ov.Sigmas,
		Steps:   cmpOr(ov.Steps, rec.Steps),
		StepLR:  cmpOr(ov.StepLR, rec.StepLR),
		SNR:     cmpOr(ov.SNR, rec.SNR),
		Denoise: rec.Denoise,
		Betas:   spec.Betas,
		Method:  ov.Method,
		Eta:     ov.Eta,
		Times:   ov.Times,
		RTol:    ov.RTol,
		ATol:    ov.ATol,
	}
	if ov.Denoise != nil {
		s.Denoise = *ov.Denoise
	}
	if s.Sigmas == nil {
		s.Sigmas = spec.Sigmas
	}
	if c.family != familyTime && s.Sigmas == nil && (spec.Condition == importer.CondSigma || spec.Condition == importer.CondLabels) {
		return nil, fmt.Errorf("%w: a %s-conditioned model must be sampled on the σ it was trained on; give them (--sigmas, or store them in the model with `ebmrun meta --sigmas`)", ErrNoSchedule, spec.Condition)
	}
	smp := c.build(s)
	if err := smp.Validate(); err != nil {
		return nil, err
	}
	return smp, nil
}

func betasOf(b *importer.Betas) []float64 {
	if b == nil {
		return nil
	}
	return LinearBetas(b.Start, b.End, b.Steps)
}

func namesOf(f family) []string {
	var out []string
	for _, n := range Names() {
		if constructors[n].family == f {
			out = append(out, n)
		}
	}
	return out
}

func cmpOr[T int | float64](a, b T) T {
	if a != 0 {
		return a
	}
	return b
}

// Describe lists a sampler's effective settings (after its defaults) by
// name, with the score evaluations each sample takes, for reports.
func Describe(smp Sampler) map[string]any {
	out := map[string]any{"evaluations_per_sample": smp.Evals()}
	if c, ok := constructors[smp.Name()]; ok && c.describe != nil {
		c.describe(smp, out)
	}
	return out
}
