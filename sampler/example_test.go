package sampler_test

import (
	"context"
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/sampler"
)

// Annealed Langevin dynamics with the exact score of the 8-mode ring: the
// heaviest mode (weight 8/36 ≈ 0.22) gets about that share of the samples.
func Example() {
	g := dataset.Ring8()
	src := func() (sampler.Scorer, error) { return sampler.NewGMMScorer(g), nil }
	ald := &sampler.ALD{Steps: 50, StepLR: 4e-5} // σ 1 → 0.01 over 10 levels
	x, st, err := sampler.Collect(context.Background(), ald, src, sampler.Config{
		N: 2000, Dim: 2, Seed: 1, Init: sampler.Uniform{Lo: -4, Hi: 4},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	heaviest := 0
	for i := 0; i < len(x); i += 2 {
		if g.Nearest([]float64{float64(x[i]), float64(x[i+1])}) == 7 {
			heaviest++
		}
	}
	fmt.Printf("%d samples, %d score evaluations each\n", st.End-st.Start, ald.Evals())
	fmt.Printf("share of the heaviest mode: %.2f\n", float64(heaviest)/2000)
	// Output:
	// 2000 samples, 500 score evaluations each
	// share of the heaviest mode: 0.21
}

// Consistent annealed sampling refuses step sizes for which β is not real.
func ExampleCAS_Validate() {
	cas := &sampler.CAS{Sigmas: sampler.Geometric(1, 0.01, 10), StepLR: 2e-5}
	fmt.Println(cas.Validate())
	// Output:
	// sampler: cas: η = ε/σ_L² = 0.2 is outside 1−γ < η < 1+γ = (0.4005, 1.599), where γ = σ_{i+1}/σ_i = 0.5995 at level 1: choose ε (--step-lr) in (4.005e-05, 0.0001599), or more σ levels
}

func ExampleGeometric() {
	for _, s := range sampler.Geometric(1, 0.01, 5) {
		fmt.Printf("%.4f ", s)
	}
	fmt.Println()
	// Output: 1.0000 0.3162 0.1000 0.0316 0.0100
}

// Every chain draws from its own stream, so a sample depends only on the
// seed and its index.
func ExampleStream() {
	a := sampler.Stream(7, 12).NormFloat64()
	b := sampler.Stream(7, 12).NormFloat64()
	fmt.Println(a == b, math.Abs(a) < 10)
	// Output: true true
}
