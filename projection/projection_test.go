package projection

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKinds checks each kind's defining property: Rademacher rows are ±1,
// sphere rows have norm √d, and every kind has E‖v‖² = d and uncorrelated
// coordinates (E[vvᵀ] = I).
func TestKinds(t *testing.T) {
	const d, n = 5, 4000
	r := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, n*d)
	for _, kind := range Kinds {
		Fill(v, d, kind, r)
		var mean, cross float64
		for i := 0; i < n; i++ {
			row := v[i*d : (i+1)*d]
			var ss float64
			for _, x := range row {
				ss += float64(x) * float64(x)
				if kind == Rademacher && x != 1 && x != -1 {
					t.Fatalf("rademacher value %v", x)
				}
			}
			if kind == Sphere && math.Abs(ss-d) > 1e-4 {
				t.Fatalf("sphere row with ‖v‖² = %v, want %d", ss, d)
			}
			mean += ss / n
			cross += float64(row[0]) * float64(row[1]) / n
		}
		// The Gaussian's ‖v‖² has standard error √(2d/n) ≈ 0.05; a cross
		// moment has standard error about 1/√n ≈ 0.016.
		if math.Abs(mean-d) > 0.25 || math.Abs(cross) > 0.08 {
			t.Errorf("%s: mean ‖v‖² = %.3f (want %d), E[v₀v₁] = %.3f (want 0)", kind, mean, d, cross)
		}
	}
}

// TestRowsDoNotDependOnBatching: rows drawn one by one from a source are
// the rows Fill draws at once.
func TestRowsDoNotDependOnBatching(t *testing.T) {
	const d, n = 3, 7
	for _, kind := range Kinds {
		all := make([]float32, n*d)
		Fill(all, d, kind, rand.New(rand.NewPCG(4, 2)))
		r := rand.New(rand.NewPCG(4, 2))
		one := make([]float32, n*d)
		for i := 0; i < n; i++ {
			Row(one[i*d:(i+1)*d], kind, r)
		}
		if !slices.Equal(all, one) {
			t.Errorf("%s: Fill and Row differ", kind)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, k := range Kinds {
		if err := k.Validate(); err != nil {
			t.Error(err)
		}
	}
	if err := Kind("uniform").Validate(); err == nil {
		t.Error("Validate accepted an unknown kind")
	}
}
