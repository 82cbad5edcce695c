package trainer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestProject checks each projection's defining property: Rademacher rows
// are ±1, sphere rows have norm √d, Gaussian rows have E‖v‖² = d.
func TestProject(t *testing.T) {
	const d, n = 5, 2000
	r := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, n*d)
	for _, kind := range []string{ProjRademacher, ProjSphere, ProjGaussian} {
		project(v, d, kind, r)
		var mean float64
		for i := 0; i < n; i++ {
			var ss float64
			for _, x := range v[i*d : (i+1)*d] {
				ss += float64(x) * float64(x)
				if kind == ProjRademacher && x != 1 && x != -1 {
					t.Fatalf("rademacher value %v", x)
				}
			}
			if kind == ProjSphere && math.Abs(ss-d) > 1e-4 {
				t.Fatalf("sphere row with ‖v‖² = %v, want %d", ss, d)
			}
			mean += ss / n
		}
		// E‖v‖² = d for all three; the Gaussian's sample mean has standard
		// error √(2d/n) ≈ 0.07.
		if math.Abs(mean-d) > 0.3 {
			t.Errorf("%s: mean ‖v‖² = %.3f, want %d", kind, mean, d)
		}
	}
}
