package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// actTolULP is how far the vector sigmoid and SiLU may stray from float64,
// in units of the result's last place, where the result is at least
// actTinyResult in magnitude; below that the error is at most actTinyResult
// (the kernels clamp exp's argument, so σ(x) for x below about -88 comes out
// 0 or near 4e-39 rather than the denormal it is).
const (
	actTolULP     = 4
	actTinyResult = 1e-36
)

func actWant(a act, v float64) float64 {
	s := 1 / (1 + math.Exp(-v))
	if a == actSiLU {
		return v * s
	}
	return s
}

func checkAct(t *testing.T, name string, got float32, want float64) {
	t.Helper()
	w := float32(want)
	switch {
	case math.IsNaN(want):
		if got == got {
			t.Fatalf("%s = %g, want NaN", name, got)
		}
	case math.Abs(want) < actTinyResult:
		if math.Abs(float64(got)-want) > actTinyResult {
			t.Fatalf("%s = %g, want %g", name, got, want)
		}
	case ulpDiff(got, w) > actTolULP:
		t.Fatalf("%s = %g, want %g (%.1f ulp)", name, got, w, ulpDiff(got, w))
	}
}

func TestApplyActAgainstFloat64(t *testing.T) {
	t.Parallel()
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		88.3, -88.3, 88.4, -88.4, 100, -100, 1e30, -1e30, 1e-30, -1e-30, 15.9, -15.9}
	r := rand.New(rand.NewPCG(12, 12))
	xs := append([]float32(nil), specials...)
	for x := float32(-95); x < 95; x += 0.00937 {
		xs = append(xs, x)
	}
	for range 1000 {
		xs = append(xs, float32(r.NormFloat64()*4))
	}
	bias := randVec(r, len(xs))
	for _, impl := range actImpls() {
		for _, a := range []act{actSigmoid, actSiLU} {
			for _, withBias := range []bool{false, true} {
				var bs []float32
				if withBias {
					bs = bias
				}
				got, ref := make([]float32, len(xs)), make([]float32, len(xs))
				applyActWith(impl, a, got, xs, bs)
				applyActRef(a, ref, xs, bs)
				for i, x := range xs {
					v := x
					if withBias {
						v += bias[i]
					}
					name := fmt.Sprintf("impl %d act %d bias=%v at %g", impl, a, withBias, v)
					checkAct(t, name, got[i], actWant(a, float64(v)))
					checkAct(t, name+" (reference)", ref[i], actWant(a, float64(v)))
				}
			}
		}
	}
}

// actImpls lists the activation kernel sets this CPU runs: implAVX2 stops
// at YMM, implAuto uses ZMM where it can.
func actImpls() []gemmImpl {
	impls := []gemmImpl{implGo}
	if haveAVX2 {
		impls = append(impls, implAVX2)
	}
	if haveAVX512 {
		impls = append(impls, implAuto)
	}
	return impls
}

// TestApplyActLengths covers the vector loop's tails and in-place use.
func TestApplyActLengths(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 13))
	for n := 0; n <= 50; n++ {
		s := randVec(r, n)
		for _, impl := range actImpls() {
			for _, a := range []act{actSigmoid, actSiLU} {
				d := append([]float32(nil), s...)
				applyActWith(impl, a, d, d, nil)
				for i := range d {
					checkAct(t, fmt.Sprintf("n=%d impl %d act %d [%d]", n, impl, a, i), d[i], actWant(a, float64(s[i])))
				}
			}
		}
	}
}

func BenchmarkAct(b *testing.B) {
	s := randVec(rand.New(rand.NewPCG(14, 14)), 1<<14)
	d := make([]float32, len(s))
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"sigmoid", func() { applyAct(actSigmoid, d, s, nil) }},
		{"sigmoid-avx2", func() { applyActWith(implAVX2, actSigmoid, d, s, nil) }},
		{"sigmoid-ref", func() { applyActRef(actSigmoid, d, s, nil) }},
		{"silu", func() { applyAct(actSiLU, d, s, nil) }},
		{"silu-avx2", func() { applyActWith(implAVX2, actSiLU, d, s, nil) }},
		{"silu-ref", func() { applyActRef(actSiLU, d, s, nil) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.f()
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/float64(len(s)), "ns/elem")
		})
	}
}
