package native

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVecBinMatchesGoLoops: the AVX2 loops of Add, Sub, Mul and Div give the
// Go loops' bits for every length (whole blocks of 32, single vectors, the
// tail), each operand form, and in place; Pow by a broadcast 2 is a·a.
func TestVecBinMatchesGoLoops(t *testing.T) {
	t.Parallel()
	if !haveAVX2 {
		t.Skip("no AVX2 on this CPU: only the Go loops run")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	a := make([]float32, 133)
	b := make([]float32, 133)
	for i := range a {
		a[i] = float32(rng.NormFloat64() * 10)
		b[i] = float32(rng.NormFloat64())
	}
	b[3], a[40], b[77] = 0, float32(math.NaN()), float32(math.Inf(-1))
	same := func(t *testing.T, what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d is %g, the Go loop gives %g", what, i, got[i], want[i])
			}
		}
	}
	for _, op := range []struct {
		name     string
		vec, ref *binFns[float32, float32]
	}{
		{"add", addF32Fns(), addFns[float32]()},
		{"sub", subF32Fns(), subFns[float32]()},
		{"mul", mulF32Fns(), mulFns[float32]()},
		{"div", divF32VecFns(), divF32Fns()},
	} {
		for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 40, 64, 97, 133} {
			got, want := make([]float32, n), make([]float32, n)
			op.vec.vv(got, a[:n], b[:n])
			op.ref.vv(want, a[:n], b[:n])
			same(t, op.name+" vv", got, want)
			op.vec.vs(got, a[:n], b[5])
			op.ref.vs(want, a[:n], b[5])
			same(t, op.name+" vs", got, want)
			op.vec.sv(got, a[7], b[:n])
			op.ref.sv(want, a[7], b[:n])
			same(t, op.name+" sv", got, want)
			in := append([]float32(nil), a[:n]...)
			op.vec.vv(in, in, b[:n])
			op.ref.vv(want, a[:n], b[:n])
			same(t, op.name+" vv in place", in, want)
		}
	}
	got, want := make([]float32, 45), make([]float32, 45)
	powF32.vs(got, a[:45], 2)
	powF32Scalar.vs(want, a[:45], 2)
	same(t, "pow 2", got, want)
	powF32.vs(got, b[:45], 3)
	powF32Scalar.vs(want, b[:45], 3)
	same(t, "pow 3", got, want)
}
