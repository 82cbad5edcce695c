package sampler

import (
	"math"
	"testing"
)

func TestNCSNv2GammaHalvesTheOverlap(t *testing.T) {
	for _, dim := range []int{10, 784, 3072, 12288} {
		g, err := NCSNv2Gamma(dim)
		if err != nil {
			t.Fatal(err)
		}
		r := math.Sqrt(2 * float64(dim))
		// Φ through erf rather than erfc: a second route to the same mass.
		phi := func(z float64) float64 { return 0.5 * (1 + math.Erf(z/math.Sqrt2)) }
		if m := phi(r*(g-1)+3*g) - phi(r*(g-1)-3*g); math.Abs(m-0.5) > 1e-9 || !(g > 1) {
			t.Errorf("D = %d: γ = %v leaves mass %v, want 0.5", dim, g, m)
		}
	}
	// Below √(2D) = 3 the two shells overlap by more than half for any γ.
	if _, err := NCSNv2Gamma(2); err == nil {
		t.Error("D = 2: want an error, got a ratio")
	}
}

// The paper's CIFAR-10 settings (D = 3 072, σ₁ = 50, σ_L = 0.01, T = 5)
// were L = 232 and ε = 6.2e-6; ours come out within a few per cent (the
// paper rounded its ratio differently).
func TestNCSNv2MatchesThePapersCIFAR10Settings(t *testing.T) {
	s, err := NCSNv2Sigmas(50, 0.01, 3072)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) < 210 || len(s) > 240 || s[0] != 50 || s[len(s)-1] != 0.01 {
		t.Fatalf("L = %d from %v to %v, want ≈ 232 from 50 to 0.01", len(s), s[0], s[len(s)-1])
	}
	g, _ := NCSNv2Gamma(3072)
	if s[0]/s[1] > g*(1+1e-12) {
		t.Errorf("realised ratio %v exceeds γ = %v", s[0]/s[1], g)
	}
	eps, err := NCSNv2StepSize(s, 5)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(eps/6.2e-6-1) > 0.1 {
		t.Errorf("ε = %v, want within 10%% of the paper's 6.2e-6", eps)
	}
	// ε is the best on a dense independent grid.
	best := math.Abs(NCSNv2StepRatio(eps, s[0]/s[1], 0.01, 5) - 1)
	for e := 1e-9; e < 1e-4; e *= 1.001 {
		if c := math.Abs(NCSNv2StepRatio(e, s[0]/s[1], 0.01, 5) - 1); c < best-1e-12 {
			t.Fatalf("ε = %v gives |ratio−1| = %v, better than the chosen %v's %v", e, c, eps, best)
		}
	}
	// More steps per level let a smaller ε mix: the ratio gets closer to 1.
	eps100, _ := NCSNv2StepSize(s, 100)
	if !(eps100 < eps) || !(math.Abs(NCSNv2StepRatio(eps100, s[0]/s[1], 0.01, 100)-1) < best) {
		t.Errorf("T = 100: ε = %v (T = 5: %v)", eps100, eps)
	}
}

func TestNCSNv2RefusesBadSchedules(t *testing.T) {
	for _, c := range []struct{ hi, lo float64 }{{1, 1}, {0.5, 1}, {1, 0}, {math.Inf(1), 0.01}, {math.NaN(), 0.01}} {
		if _, err := NCSNv2Sigmas(c.hi, c.lo, 784); err == nil {
			t.Errorf("σ from %v to %v: want an error", c.hi, c.lo)
		}
	}
	if _, err := NCSNv2StepSize([]float64{1}, 5); err == nil {
		t.Error("one level: want an error")
	}
	if _, err := NCSNv2StepSize([]float64{1, 0.5}, 0); err == nil {
		t.Error("T = 0: want an error")
	}
}
