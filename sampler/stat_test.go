package sampler

import (
	"context"
	"math"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
)

// The statistical tests sample Ring8 (eight modes of std 0.1 on a circle of
// radius 2, weights ∝ 1 … 8) with its exact score, 20 000 samples, fixed
// seeds. Their tolerances:
const (
	statSamples = 20000
	// modeTV bounds the total-variation distance between the samples' mode
	// frequencies (nearest mode) and the mixture's weights.
	modeTV = 0.03
	// ulaMinTV is how far plain Langevin at the smallest σ must stay from the
	// weights for the test to show what annealing is for.
	ulaMinTV = 0.1
	// spreadRelTol bounds the relative error of the mean squared distance of
	// samples to their mode against its exact value 2·(s² + σ_end²).
	spreadRelTol = 0.10
)

func ring8Source() Source {
	g := dataset.Ring8()
	return func() (Scorer, error) { return NewGMMScorer(g), nil }
}

// modeStats assigns each 2-D sample to its nearest mode and returns the
// total-variation distance of the mode frequencies from the weights and the
// mean squared distance to the assigned mode.
func modeStats(g *dataset.GMM, x []float32) (tv, spread float64) {
	n := len(x) / 2
	counts := make([]float64, g.Len())
	for i := 0; i < n; i++ {
		p := []float64{float64(x[2*i]), float64(x[2*i+1])}
		k := g.Nearest(p)
		counts[k]++
		dx, dy := p[0]-g.Means[k][0], p[1]-g.Means[k][1]
		spread += dx*dx + dy*dy
	}
	for k, c := range counts {
		tv += math.Abs(c/float64(n) - g.Weights[k])
	}
	return tv / 2, spread / float64(n)
}

func sampleRing8(t *testing.T, smp Sampler, init Init, seed uint64) (tv, spread float64) {
	t.Helper()
	x, st, err := Collect(context.Background(), smp, ring8Source(), Config{N: statSamples, Dim: 2, Seed: seed, Init: init})
	if err != nil {
		t.Fatal(err)
	}
	tv, spread = modeStats(dataset.Ring8(), x)
	t.Logf("%s: mode TV %.4f, spread %.5f, %.2fs", smp.Name(), tv, spread, st.Seconds)
	return tv, spread
}

// ring8Spread is the exact mean squared distance of a sample of Ring8
// convolved with N(0, σ²I) to its mode.
func ring8Spread(sigma float64) float64 { return 2 * (0.1*0.1 + sigma*sigma) }

func checkRing8(t *testing.T, tv, spread, sigmaEnd float64) {
	t.Helper()
	if tv > modeTV {
		t.Errorf("mode frequencies are %.4f from the weights in total variation, want ≤ %v", tv, modeTV)
	}
	if want := ring8Spread(sigmaEnd); math.Abs(spread/want-1) > spreadRelTol {
		t.Errorf("mean squared distance to the mode %.5f, want %.5f ± %v%%", spread, want, 100*spreadRelTol)
	}
}

// ALD at NCSN's settings (σ 1 → 0.01, L = 10) with half the steps per level
// at twice ε, which keeps T·α_i — the Langevin time spent at each level — and
// halves the test's run time.
func TestALDRecoversModeWeights(t *testing.T) {
	t.Parallel()
	tv, spread := sampleRing8(t, &ALD{Steps: 50, StepLR: 2 * DefaultStepLR}, Uniform{-4, 4}, 1)
	checkRing8(t, tv, spread, DefaultSigmaMin)
}

// Plain Langevin with the score at the smallest σ only relaxes each chain
// into the mode nearest its start: low-density gaps between modes stop mass
// from moving, so the frequencies follow the basins' areas (about equal),
// not the weights. This is why annealing exists (Song & Ermon 2019, §3.2).
// The step is large and the run long enough that every chain has settled.
func TestULADoesNotRecoverModeWeights(t *testing.T) {
	t.Parallel()
	tv, spread := sampleRing8(t, &ULA{Sigma: DefaultSigmaMin, Steps: 200, StepSize: 5e-3}, Uniform{-4, 4}, 1)
	if tv < ulaMinTV {
		t.Errorf("ULA's mode frequencies are only %.4f from the weights; expected it to miss them by ≥ %v", tv, ulaMinTV)
	}
	if spread > 4*ring8Spread(DefaultSigmaMin) {
		t.Errorf("ULA chains did not settle into modes: spread %v", spread)
	}
}

// CAS and the PC sampler assume the chains start from p_σmax, which
// N(0, σ_max²I) approximates only when σ_max exceeds the largest distance
// between modes (Song & Ermon 2020's first technique): here 5 > 4. Both
// take one step per level, so they get 100 levels.
func TestCASRecoversModeWeights(t *testing.T) {
	t.Parallel()
	c := &CAS{Sigmas: Geometric(5, DefaultSigmaMin, 100)}
	tv, spread := sampleRing8(t, c, Gaussian{Std: 5}, 2)
	g, _ := c.WithDefaults().gammaMin()
	checkRing8(t, tv, spread, g*DefaultSigmaMin) // CAS ends at σ_{L+1} = γ·σ_L
}

func TestPCRecoversModeWeights(t *testing.T) {
	t.Parallel()
	tv, spread := sampleRing8(t, &PC{Sigmas: Geometric(5, DefaultSigmaMin, 100)}, Gaussian{Std: 5}, 3)
	checkRing8(t, tv, spread, DefaultSigmaMin)
}

func TestALDDenoise(t *testing.T) {
	t.Parallel()
	// NCSNv2's denoising removes most of σ_L's noise: Tweedie's formula
	// maps N(μ, (s²+σ²)I) to N(μ, s⁴/(s²+σ²)·I).
	tv, spread := sampleRing8(t, &ALD{Steps: 50, StepLR: 2 * DefaultStepLR, Denoise: true}, Uniform{-4, 4}, 4)
	if tv > modeTV {
		t.Errorf("mode TV %.4f, want ≤ %v", tv, modeTV)
	}
	s2, v := 0.01, 0.01+DefaultSigmaMin*DefaultSigmaMin
	if want := 2 * s2 * s2 / v; math.Abs(spread/want-1) > spreadRelTol {
		t.Errorf("spread after denoising %.5f, want %.5f", spread, want)
	}
}
