package sampler

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ebmrun/ebmrun/importer"
)

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

// ParseInit reads a starting distribution as the sample command's --init
// and the service's "init" write it: uniform:LO,HI (LO < HI) or gaussian:STD
// (STD > 0), every number finite.
func ParseInit(s string) (Init, error) {
	kind, args, _ := strings.Cut(s, ":")
	var vals []float64
	for _, a := range strings.Split(args, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("sampler: init %q: want uniform:LO,HI or gaussian:STD", s)
		}
		vals = append(vals, v)
	}
	switch {
	case kind == "uniform" && len(vals) == 2 && vals[0] < vals[1]:
		return Uniform{Lo: vals[0], Hi: vals[1]}, nil
	case kind == "gaussian" && len(vals) == 1 && vals[0] > 0:
		return Gaussian{Std: vals[0]}, nil
	}
	return nil, fmt.Errorf("sampler: init %q: want uniform:LO,HI with LO < HI or gaussian:STD with STD > 0", s)
}

// PlausibleBox is the range samples should stay in, as `ebmrun sample` and
// `ebmrun serve` both report escapes from it: the data range widened tenfold
// about its centre, else ±10; while the chains carry noise of level σ, 10σ
// more on each side.
func PlausibleBox(spec *importer.ModelSpec) *Box {
	if r := spec.DataRange; len(r) == 2 {
		mid, half := (r[0]+r[1])/2, (r[1]-r[0])/2
		return &Box{Lo: mid - 10*half, Hi: mid + 10*half, PerSigma: 10}
	}
	return &Box{Lo: -10, Hi: 10, PerSigma: 10}
}
