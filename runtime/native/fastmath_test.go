package native

import (
	"math"
	"testing"
)

// expTolULP is how far the fast exp may stray from float64 exp, in units of
// the result's last place.
const expTolULP = 2

func ulpDiff(a, b float32) float64 {
	if a == b {
		return 0
	}
	// the spacing of floats at b (away from zero: the sign bit stays)
	u := math.Abs(float64(math.Float32frombits(math.Float32bits(b)+1) - b))
	return math.Abs(float64(a-b)) / u
}

func TestExpfAgainstReference(t *testing.T) {
	t.Parallel()
	for x := float32(-100); x < 100; x += 0.00731 {
		got, want := expf(x), expRef(x)
		if want > 1e-37 && want < math.MaxFloat32 && ulpDiff(got, want) > expTolULP {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
		if s, w := sigmoidf(x), sigmoidRef(x); math.Abs(float64(s-w)) > 1e-6*math.Max(1, float64(w)) && w > 1e-30 {
			t.Fatalf("sigmoid(%g) = %g, want %g", x, s, w)
		}
	}
	for _, x := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 0, -1000, 1000} {
		if got, want := expf(x), expRef(x); got != want {
			t.Errorf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if v := expf(float32(math.NaN())); v == v {
		t.Errorf("expf(NaN) = %g", v)
	}
}

func TestTanhf(t *testing.T) {
	t.Parallel()
	for x := float32(-12); x < 12; x += 0.0137 {
		if got, want := tanhf(x), float32(math.Tanh(float64(x))); math.Abs(float64(got-want)) > 2e-7*math.Max(1, math.Abs(float64(want))) {
			t.Fatalf("tanhf(%g) = %g, want %g", x, got, want)
		}
	}
}

// expm1TolULP is how far expm1f may stray from float64 Expm1 in units of
// the result's last place (expf's error, and one rounding of the − 1).
const expm1TolULP = 4

func TestExpm1f(t *testing.T) {
	t.Parallel()
	for x := float32(-90); x < 0.5; x += 0.000731 {
		got, want := expm1f(x), expm1Ref(x)
		if ulpDiff(got, want) > expm1TolULP {
			t.Fatalf("expm1f(%g) = %g, want %g (%.1f ulp)", x, got, want, ulpDiff(got, want))
		}
	}
	for _, x := range []float32{0, -1e-30, -1e-7, -0.2499, -0.25, -0.2501} {
		if got, want := expm1f(x), expm1Ref(x); ulpDiff(got, want) > expm1TolULP {
			t.Errorf("expm1f(%g) = %g, want %g", x, got, want)
		}
	}
}

// TestSoftplusf: within 2 ulp of float64 softplus from −100 to 100, and
// NaN and ±Inf pass as they should.
func TestSoftplusf(t *testing.T) {
	t.Parallel()
	for x := float32(-100); x < 100; x += 0.00377 {
		got, want := softplusf(x), softplusRef(x)
		if want > 1e-37 && ulpDiff(got, want) > 2 {
			t.Fatalf("softplus(%g) = %g, want %g (%.1f ulp)", x, got, want, ulpDiff(got, want))
		}
	}
	inf := float32(math.Inf(1))
	if v := softplusf(inf); v != inf {
		t.Errorf("softplus(+Inf) = %g", v)
	}
	if v := softplusf(-inf); v != 0 {
		t.Errorf("softplus(-Inf) = %g", v)
	}
	if v := softplusf(float32(math.NaN())); v == v {
		t.Errorf("softplus(NaN) = %g", v)
	}
}
