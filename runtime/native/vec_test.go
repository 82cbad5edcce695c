package native

import (
	"math"
	"math/rand/v2"
	"testing"
)

// eluRef64 is ELU in float64, rounded once.
func eluRef64(v, alpha float32) float32 {
	if v < 0 {
		return float32(float64(alpha) * math.Expm1(float64(v)))
	}
	return v
}

// TestELUKernels: every path (plain Go, AVX2, AVX-512) is within
// expm1TolULP of float64 ELU across the negative range, including tiny
// negatives where e^x − 1 cancels, keeps NaN and ±Inf, and the two vector
// widths agree to the bit.
func TestELUKernels(t *testing.T) {
	t.Parallel()
	var xs []float32
	for x := float32(-95); x < 3; x += 0.000931 {
		xs = append(xs, x)
	}
	for e := -40; e <= 0; e++ {
		xs = append(xs, -float32(math.Ldexp(1.37, e)), float32(math.Ldexp(1.37, e)))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), -87.3, -88.3, -88.8, -103, -1e30, 1e30)
	paths := []struct {
		name      string
		vec, wide bool
	}{{"go", false, false}, {"avx2", true, false}, {"avx512", true, true}}
	outs := make([][]float32, len(paths))
	for pi, p := range paths {
		if (p.vec && !haveAVX2) || (p.wide && !haveAVX512) {
			continue
		}
		for _, alpha := range []float32{1, 0.3} {
			d := make([]float32, len(xs))
			eluWith(p.vec, p.wide, d, xs, alpha)
			for i, x := range xs {
				if w := eluRef64(x, alpha); ulpDiff(d[i], w) > expm1TolULP && math.Abs(float64(d[i]-w)) > 1e-44 {
					t.Fatalf("%s: ELU(%g; alpha %g) = %g, want %g (%.1f ulp)", p.name, x, alpha, d[i], w, ulpDiff(d[i], w))
				}
			}
			if alpha == 1 {
				outs[pi] = d
			}
		}
		d := make([]float32, 11)
		s := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), -1, 2}
		eluWith(p.vec, p.wide, d[:5], s, 1)
		if d[0] == d[0] || d[1] != s[1] || d[2] != -1 || d[3] != float32(math.Expm1(-1)) || d[4] != 2 {
			t.Errorf("%s: ELU(NaN, +Inf, -Inf, -1, 2) = %v", p.name, d[:5])
		}
	}
	if outs[1] != nil && outs[2] != nil {
		for i := range xs {
			if math.Float32bits(outs[1][i]) != math.Float32bits(outs[2][i]) {
				t.Fatalf("ELU(%g): AVX2 %g, AVX-512 %g", xs[i], outs[1][i], outs[2][i])
			}
		}
	}
}

// TestELUPlaceInvariant: an element's ELU has the same bits wherever it lies
// in the buffer — in a whole vector or in the padded last one — which the
// batch invariance of samples rests on.
func TestELUPlaceInvariant(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	s := make([]float32, 67)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * 3)
	}
	whole := make([]float32, len(s))
	eluInto(whole, s, 1)
	for start := range s {
		for _, n := range []int{1, 5, 8, 13, 16, 17} {
			end := min(start+n, len(s))
			part := make([]float32, end-start)
			eluInto(part, s[start:end], 1)
			for i, v := range part {
				if math.Float32bits(v) != math.Float32bits(whole[start+i]) {
					t.Fatalf("ELU(%g) at %d of a run of %d: %g, %g in the whole buffer", s[start+i], i, n, v, whole[start+i])
				}
			}
		}
	}
}

// TestExpSubInto: softmax's exponentials are within expTolULP of float64
// exp wherever the result is a normal number, and an element's bits do not
// depend on its place in the row.
func TestExpSubInto(t *testing.T) {
	t.Parallel()
	var xs []float32
	for x := float32(-90); x < 5; x += 0.00377 {
		xs = append(xs, x)
	}
	const m = 3
	d := make([]float32, len(xs))
	expSubInto(d, xs, m)
	for i, x := range xs {
		w := float32(math.Exp(float64(x - m)))
		if w > 1.2e-38 && ulpDiff(d[i], w) > expTolULP {
			t.Fatalf("e^(%g − %g) = %g, want %g (%.1f ulp)", x, float32(m), d[i], w, ulpDiff(d[i], w))
		}
		if w <= 1.2e-38 && d[i] > 1.2e-38 {
			t.Fatalf("e^(%g − %g) = %g, want about %g", x, float32(m), d[i], w)
		}
	}
	for start := 0; start < 40; start++ {
		for _, n := range []int{1, 3, 8, 15, 16, 17, 33} {
			part := make([]float32, n)
			expSubInto(part, xs[start:start+n], m)
			for i, v := range part {
				if math.Float32bits(v) != math.Float32bits(d[start+i]) {
					t.Fatalf("e^(%g − %g) at %d of a run of %d: %g, %g in the whole row", xs[start+i], float32(m), i, n, v, d[start+i])
				}
			}
		}
	}
	nan := []float32{float32(math.NaN())}
	expSubInto(nan, nan, 0)
	if nan[0] == nan[0] {
		t.Errorf("e^NaN = %g", nan[0])
	}
}

// TestRowMaxAndSum: the vector maximum agrees with Go's max (NaN
// anywhere gives NaN) and the vector float64 sum is within rounding of the
// exact sum, for every length around the block sizes.
func TestRowMaxAndSum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, 300)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 100)
	}
	for n := 0; n <= len(x); n++ {
		want := float32(math.Inf(-1))
		exact := 0.0
		for _, v := range x[:n] {
			want = max(want, v)
			exact += float64(v)
		}
		if got := rowMax(x[:n]); got != want {
			t.Fatalf("max of %d: %g, want %g", n, got, want)
		}
		if got := sumF64(x[:n]); math.Abs(got-exact) > 1e-9*(1+math.Abs(exact)) {
			t.Fatalf("sum of %d: %g, want %g", n, got, exact)
		}
	}
	for _, at := range []int{0, 13, 31, 32, 63, 64, 299} {
		y := append([]float32(nil), x...)
		y[at] = float32(math.NaN())
		if m := rowMax(y); m == m {
			t.Errorf("max with a NaN at %d = %g", at, m)
		}
	}
}

// TestMeanVarAndAffine: the norms' statistics are within rounding of the
// exact ones for every length around the block sizes, and the vector
// scale-and-shift loops give the Go expression's bits.
func TestMeanVarAndAffine(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, 200)
	for i := range x {
		x[i] = float32(rng.NormFloat64()*3 + 1)
	}
	for n := 1; n <= len(x); n++ {
		var s, q float64
		for _, v := range x[:n] {
			s += float64(v)
			q += float64(v) * float64(v)
		}
		wm := s / float64(n)
		wv := max(0, q/float64(n)-wm*wm)
		m, v := meanVar4(x[:n])
		if math.Abs(m-wm) > 1e-12*(1+math.Abs(wm)) || math.Abs(v-wv) > 1e-11*(1+wv) {
			t.Fatalf("mean, variance of %d: %g, %g; want %g, %g", n, m, v, wm, wv)
		}
		d, d2 := make([]float32, n), make([]float32, n)
		affineF32(d, x[:n], 0.37, -1.5)
		affine2F32(d2, x[:n], 0.37, -1.5, 2.25, 0.125)
		for i, v := range x[:n] {
			if w := float32(v*0.37) - 1.5; math.Float32bits(d[i]) != math.Float32bits(w) {
				t.Fatalf("affine of %g: %g, want %g", v, d[i], w)
			}
			if w := float32(float32(float32(v*0.37)-1.5)*2.25) + 0.125; math.Float32bits(d2[i]) != math.Float32bits(w) {
				t.Fatalf("affine2 of %g: %g, want %g", v, d2[i], w)
			}
		}
	}
}

// TestActPlaceInvariant: Sigmoid's and SiLU's bits (with and without a
// bias) do not depend on where an element lies in the buffer — the last
// partial vector goes through the vector kernel too.
func TestActPlaceInvariant(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 22))
	s := make([]float32, 75)
	bias := make([]float32, 75)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * 4)
		bias[i] = float32(rng.NormFloat64())
	}
	for _, a := range []act{actSigmoid, actSiLU} {
		for _, bs := range [][]float32{nil, bias} {
			whole := make([]float32, len(s))
			applyAct(a, whole, s, bs)
			for start := 0; start < 40; start++ {
				for _, n := range []int{1, 5, 8, 13, 16, 17, 35} {
					part := make([]float32, n)
					var pb []float32
					if bs != nil {
						pb = bs[start : start+n]
					}
					applyAct(a, part, s[start:start+n], pb)
					for i, v := range part {
						if math.Float32bits(v) != math.Float32bits(whole[start+i]) {
							t.Fatalf("act %d bias %v: element %d of a run of %d at %d: %g, %g in the whole buffer", a, bs != nil, i, n, start, v, whole[start+i])
						}
					}
				}
			}
		}
	}
}
