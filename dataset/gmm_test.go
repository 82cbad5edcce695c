package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	fdStep       = 1e-5 // central-difference step for the score check
	fdTol        = 1e-6 // absolute agreement of score and finite differences
	weightTol    = 0.01 // |empirical − true| mode frequency with 100 000 draws
	spreadRelTol = 0.02
)

func TestGMMScoreMatchesFiniteDifferences(t *testing.T) {
	t.Parallel()
	g := Ring8()
	r := rand.New(rand.NewPCG(1, 2))
	for _, sigma := range []float64{0, 0.01, 0.1, 1, 10} {
		for trial := 0; trial < 50; trial++ {
			x := []float64{4 * (2*r.Float64() - 1), 4 * (2*r.Float64() - 1)}
			s := g.Score(nil, x, sigma)
			for j := range x {
				xp := append([]float64(nil), x...)
				xm := append([]float64(nil), x...)
				xp[j] += fdStep
				xm[j] -= fdStep
				fd := (g.LogProbSigma(xp, sigma) - g.LogProbSigma(xm, sigma)) / (2 * fdStep)
				if math.Abs(fd-s[j]) > fdTol*math.Max(1, math.Abs(fd)) {
					t.Fatalf("σ=%v x=%v: score[%d] = %v, finite differences %v", sigma, x, j, s[j], fd)
				}
			}
		}
	}
}

func TestGMMLogProbNormalised(t *testing.T) {
	t.Parallel()
	// Integrate p over a grid wide enough to hold every mode.
	g := Ring8()
	const h, lim = 0.01, 3.0
	var sum float64
	for x := -lim; x < lim; x += h {
		for y := -lim; y < lim; y += h {
			sum += math.Exp(g.LogProb([]float64{x + h/2, y + h/2}))
		}
	}
	if math.Abs(sum*h*h-1) > 1e-3 {
		t.Fatalf("∫p = %v, want 1", sum*h*h)
	}
}

func TestGMMSample(t *testing.T) {
	t.Parallel()
	g := Ring8()
	const n = 100000
	x := g.Sample(nil, n, rand.New(rand.NewPCG(3, 4)))
	counts := make([]float64, g.Len())
	var spread float64
	for i := 0; i < n; i++ {
		k := g.Nearest(x[2*i : 2*i+2])
		counts[k]++
		spread += sqDist(x[2*i:2*i+2], g.Means[k])
	}
	for k := range counts {
		if math.Abs(counts[k]/n-g.Weights[k]) > weightTol {
			t.Errorf("mode %d: frequency %.4f, weight %.4f", k, counts[k]/n, g.Weights[k])
		}
	}
	if want := 2 * 0.1 * 0.1; math.Abs(spread/n/want-1) > spreadRelTol {
		t.Errorf("mean squared distance to the mode %v, want %v", spread/n, want)
	}
}

func TestNewGMMErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		w    []float64
		m    [][]float64
		s    []float64
		want string
	}{
		{nil, nil, nil, "at least one component"},
		{[]float64{1}, [][]float64{{0}, {1}}, []float64{1}, "one of each"},
		{[]float64{-1}, [][]float64{{0}}, []float64{1}, "positive"},
		{[]float64{1, 1}, [][]float64{{0}, {1, 2}}, []float64{1, 1}, "dimensions"},
		{[]float64{1}, [][]float64{{0}}, []float64{0}, "std 0"},
	} {
		if _, err := NewGMM(tc.w, tc.m, tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewGMM(%v, %v, %v) = %v, want an error containing %q", tc.w, tc.m, tc.s, err, tc.want)
		}
	}
}

func ExampleGMM_Score() {
	// One standard normal component: the score at σ is −x/(1+σ²).
	g, _ := NewGMM([]float64{1}, [][]float64{{0, 0}}, []float64{1})
	fmt.Println(g.Score(nil, []float64{1, -2}, 1))
	// Output: [-0.5 1]
}

func ExampleRing8() {
	g := Ring8()
	fmt.Printf("%d modes in %d-D, weights %.3f … %.3f\n", g.Len(), g.Dim(), g.Weights[0], g.Weights[7])
	// Output: 8 modes in 2-D, weights 0.028 … 0.222
}
