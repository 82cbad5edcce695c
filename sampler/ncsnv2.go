package sampler

import (
	"fmt"
	"math"
)

// NCSNv2's rules for a noise schedule and a step size (Song & Ermon 2020,
// "Improved Techniques for Training Score-Based Generative Models"):
//
//   - Technique 1: σ₁ as large as the largest Euclidean distance between two
//     training points (the caller measures it, see trainer.MaxPairDistance).
//   - Technique 2: a geometric schedule whose ratio γ = σ_{i−1}/σ_i makes
//     Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) = ½, D the data's dimension:
//     the shell a point perturbed at σ_{i−1} lives in then overlaps the
//     shell of σ_i by about half.
//   - Technique 4: given T Langevin steps per level, the ε of
//     α_i = ε·σ_i²/σ_L² that brings the variance ratio after T steps,
//     (1−ε/σ_L²)^{2T}·(γ² − 2ε/(σ_L² − σ_L²(1−ε/σ_L²)²)) + 2ε/(σ_L² − σ_L²(1−ε/σ_L²)²),
//     closest to 1.

// NCSNv2Gamma is Technique 2's ratio γ > 1 for data of dim dimensions.
func NCSNv2Gamma(dim int) (float64, error) {
	if dim < 1 {
		return 0, fmt.Errorf("sampler: ncsnv2: data dimension %d must be positive", dim)
	}
	r := math.Sqrt(2 * float64(dim))
	phi := func(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
	// mass(γ) falls from Φ(3)−Φ(−3) ≈ 0.997 at γ = 1 towards 0.
	mass := func(g float64) float64 { return phi(r*(g-1)+3*g) - phi(r*(g-1)-3*g) }
	lo, hi := 1.0, 2.0
	for mass(hi) > 0.5 {
		hi = 1 + 2*(hi-1)
		if hi > 1e6 {
			return 0, fmt.Errorf("sampler: ncsnv2: no ratio γ for dimension %d", dim)
		}
	}
	for range 200 {
		mid := (lo + hi) / 2
		if mass(mid) > 0.5 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2, nil
}

// NCSNv2Sigmas is the geometric schedule from sigmaMax down to sigmaMin with
// the number of levels Technique 2's ratio asks for (rounded up, so the
// realised ratio is at most γ).
func NCSNv2Sigmas(sigmaMax, sigmaMin float64, dim int) ([]float64, error) {
	if !(sigmaMin > 0) || !(sigmaMax > sigmaMin) || math.IsInf(sigmaMax, 0) {
		return nil, fmt.Errorf("sampler: ncsnv2: want σ_max > σ_min > 0, got %v and %v", sigmaMax, sigmaMin)
	}
	g, err := NCSNv2Gamma(dim)
	if err != nil {
		return nil, err
	}
	levels := int(math.Ceil(math.Log(sigmaMax/sigmaMin)/math.Log(g))) + 1
	if levels > 100_000 {
		return nil, fmt.Errorf("sampler: ncsnv2: %d levels from %v to %v; raise σ_min", levels, sigmaMax, sigmaMin)
	}
	out := Geometric(sigmaMax, sigmaMin, levels)
	return out, CheckSigmas(out)
}

// NCSNv2StepRatio is Technique 4's variance ratio after T steps at the last
// level with base step eps, for a schedule of ratio gamma ending at sigmaL.
func NCSNv2StepRatio(eps, gamma, sigmaL float64, T int) float64 {
	s2 := sigmaL * sigmaL
	a := 1 - eps/s2
	c := 2 * eps / (s2 - s2*a*a)
	return math.Pow(a, 2*float64(T))*(gamma*gamma-c) + c
}

// NCSNv2StepSize is Technique 4's ε for a geometric schedule (its ratio is
// read from the first two levels) and T steps per level: the ε in
// (0, σ_L²) whose variance ratio is closest to 1, found on a fine
// logarithmic grid and refined by golden-section search.
func NCSNv2StepSize(sigmas []float64, T int) (float64, error) {
	if err := CheckSigmas(sigmas); err != nil {
		return 0, err
	}
	if len(sigmas) < 2 || T < 1 {
		return 0, fmt.Errorf("sampler: ncsnv2: the step-size rule needs ≥ 2 levels and T ≥ 1 (got %d levels, T = %d)", len(sigmas), T)
	}
	gamma, sL := sigmas[0]/sigmas[1], sigmas[len(sigmas)-1]
	s2 := sL * sL
	cost := func(eps float64) float64 { return math.Abs(NCSNv2StepRatio(eps, gamma, sL, T) - 1) }
	best, bestCost := 0.0, math.Inf(1)
	const n = 4000
	for i := 1; i < n; i++ {
		eps := s2 * math.Pow(10, -8*float64(n-i)/n) // 1e-8·σ_L² … σ_L²
		if c := cost(eps); c < bestCost {
			best, bestCost = eps, c
		}
	}
	// Refine between the neighbouring grid points.
	lo, hi := best*math.Pow(10, -8.0/n), min(best*math.Pow(10, 8.0/n), s2*(1-1e-12))
	phi := (math.Sqrt(5) - 1) / 2
	for range 100 {
		m1, m2 := hi-phi*(hi-lo), lo+phi*(hi-lo)
		if cost(m1) < cost(m2) {
			hi = m2
		} else {
			lo = m1
		}
	}
	if e := (lo + hi) / 2; cost(e) <= bestCost {
		best = e
	}
	return best, nil
}
