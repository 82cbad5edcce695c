package sampler

import "github.com/ebmrun/ebmrun/importer"

// DefaultInit is where a sampler's chains start when the caller does not
// say, as `ebmrun sample` and `ebmrun serve` both choose it: N(0, I) for the
// diffusion samplers (ddpm, ddim); N(0, σ_max²I) for ode and em, which
// integrate from p_σmax; else uniform over the model's data range, else
// N(0, σ_max²I) of the sampler's schedule.
func DefaultInit(spec *importer.ModelSpec, smp Sampler) Init {
	switch smp.Name() {
	case "ddpm", "ddim":
		return Gaussian{Std: 1}
	case "ode", "em":
		sigmas := spec.Sigmas
		if sigmas == nil {
			sigmas = DefaultSigmas()
		}
		return Gaussian{Std: sigmas[0]}
	}
	if len(spec.DataRange) == 2 {
		return Uniform{Lo: spec.DataRange[0], Hi: spec.DataRange[1]}
	}
	if sigmas, ok := Describe(smp)["sigmas"].([]float64); ok {
		return Gaussian{Std: sigmas[0]}
	}
	if spec.Sigmas != nil {
		return Gaussian{Std: spec.Sigmas[0]}
	}
	return Gaussian{Std: DefaultSigmaMax}
}
