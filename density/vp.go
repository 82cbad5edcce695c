package density

import (
	"math"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
)

// vpSchedule is the continuous form of a linear DDPM schedule β_1 … β_N
// (Song et al. 2021): β(t) = β_min + t(β_max − β_min) on t ∈ [0, 1] with
// β_min = N·β_1, β_max = N·β_N, so ᾱ(t) = exp(−½t²(β_max−β_min) − t·β_min).
type vpSchedule struct {
	n          int
	bmin, bmax float64
}

func newVPSchedule(b *importer.Betas) *vpSchedule {
	start, end, n := sampler.DefaultBetaStart, sampler.DefaultBetaEnd, sampler.DefaultBetaSteps
	if b != nil {
		start, end, n = b.Start, b.End, b.Steps
	}
	return &vpSchedule{n: n, bmin: float64(n) * start, bmax: float64(n) * end}
}

func (v *vpSchedule) beta(t float64) float64 { return v.bmin + t*(v.bmax-v.bmin) }

// alphaBar is ᾱ(t).
func (v *vpSchedule) alphaBar(t float64) float64 {
	return math.Exp(-0.5*t*t*(v.bmax-v.bmin) - t*v.bmin)
}

// cond asks a time-conditioned model at continuous t for step t·(N−1)
// (rounded for an integer time input), and turns ε into the score
// −ε/√(1−ᾱ(t)).
func (v *vpSchedule) cond(spec *importer.ModelSpec) condFunc {
	one := make([]part, 1)
	eps := spec.Kind == importer.OutEps
	return func(t float64) []part {
		step := t * float64(v.n-1)
		w := 1.0
		if eps {
			w = -1 / math.Sqrt(1-v.alphaBar(t))
		}
		one[0] = part{sigma: float32(step), label: int64(math.Round(step)), w: w}
		return one
	}
}
