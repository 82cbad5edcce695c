package sampler

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ebmrun/ebmrun/importer"
)

// NCSN's defaults (Song & Ermon 2019), used wherever a setting is left zero
// and the model recommends nothing.
const (
	DefaultSigmaMax = 1.0
	DefaultSigmaMin = 0.01
	DefaultLevels   = 10
	DefaultSteps    = 100  // T, steps per σ level
	DefaultStepLR   = 2e-5 // ε, the step size at the smallest σ
)

// DefaultSigmas is NCSN's schedule: geometric from 1 to 0.01 in 10 levels.
func DefaultSigmas() []float64 { return Geometric(DefaultSigmaMax, DefaultSigmaMin, DefaultLevels) }

// Geometric is the descending schedule σ_i = σ_max·(σ_min/σ_max)^(i/(L−1)),
// i = 0 … L−1, with both ends exact (numpy.geomspace's values, to rounding).
func Geometric(sigmaMax, sigmaMin float64, levels int) []float64 {
	if levels <= 0 {
		return nil
	}
	out := make([]float64, levels)
	out[0] = sigmaMax
	if levels == 1 {
		return out
	}
	lmax, lmin := math.Log(sigmaMax), math.Log(sigmaMin)
	for i := 1; i < levels-1; i++ {
		out[i] = math.Exp(lmax + float64(i)/float64(levels-1)*(lmin-lmax))
	}
	out[levels-1] = sigmaMin
	return out
}

// ParseSigmas reads a schedule written as "geom:MAX,MIN,L" or as a comma
// list of σ values, largest first.
func ParseSigmas(s string) ([]float64, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "geom:"); ok {
		parts := strings.Split(rest, ",")
		if len(parts) != 3 {
			return nil, fmt.Errorf("sampler: σ schedule %q: want geom:MAX,MIN,L", s)
		}
		hi, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		l, err3 := strconv.Atoi(strings.TrimSpace(parts[2]))
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("sampler: σ schedule %q: want geom:MAX,MIN,L with numbers MAX > MIN > 0 and a whole L", s)
		}
		if l > importer.MaxLevels {
			return nil, fmt.Errorf("sampler: σ schedule %q: %d levels, more than %d", s, l, importer.MaxLevels)
		}
		if !(lo > 0) || l < 1 || (l > 1 && !(hi > lo)) || (l == 1 && hi != lo) {
			return nil, fmt.Errorf("sampler: σ schedule %q: want MAX > MIN > 0 and L ≥ 2 (or MAX = MIN with L = 1)", s)
		}
		out := Geometric(hi, lo, l)
		return out, CheckSigmas(out)
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("sampler: σ schedule %q: %q is not a number (want geom:MAX,MIN,L or a comma list)", s, p)
		}
		out = append(out, v)
	}
	return out, CheckSigmas(out)
}

// CheckSigmas reports whether a schedule is usable: at least one level,
// every σ positive and finite, strictly decreasing.
func CheckSigmas(s []float64) error {
	if len(s) == 0 {
		return fmt.Errorf("sampler: the σ schedule is empty")
	}
	for i, v := range s {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("sampler: σ level %d is %v; every σ must be positive and finite", i+1, v)
		}
		if i > 0 && !(v < s[i-1]) {
			return fmt.Errorf("sampler: σ level %d (%g) is not below level %d (%g); schedules go from large σ to small", i+1, v, i, s[i-1])
		}
	}
	return nil
}

// DDPM's defaults (Ho et al. 2020): β linear from 1e-4 to 0.02 over 1000 steps.
const (
	DefaultBetaStart = 1e-4
	DefaultBetaEnd   = 0.02
	DefaultBetaSteps = 1000
)

// LinearBetas is β_t = start + (end−start)·t/(T−1), t = 0 … T−1.
func LinearBetas(start, end float64, steps int) []float64 {
	if steps <= 0 {
		return nil
	}
	out := make([]float64, steps)
	for t := range out {
		if steps == 1 {
			out[t] = start
			continue
		}
		out[t] = start + (end-start)*float64(t)/float64(steps-1)
	}
	return out
}
