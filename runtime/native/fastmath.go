package native

import "math"

// expf is exp for float32 with Cephes' polynomial (about 1 ulp), several
// times faster than going through float64 math.Exp. expRef is the plain
// reference it is tested against.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if !(x > -87.3 && x < 88.3) { // also NaN
		return float32(math.Exp(float64(x)))
	}
	// Round x·log2(e) to the nearest integer without going through float64.
	t := log2e * x
	if t < 0 {
		t -= 0.5
	} else {
		t += 0.5
	}
	k := int32(t)
	fn := float32(k)
	r := x - fn*c1 - fn*c2
	z := r * r
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*z + r + 1
	return p * math.Float32frombits(uint32(k+127)<<23)
}

func expRef(x float32) float32 { return float32(math.Exp(float64(x))) }

func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }

func sigmoidRef(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// tanhf uses the sigmoid identity away from zero and float64 near it, where
// the identity loses relative precision.
func tanhf(x float32) float32 {
	if x > -0.5 && x < 0.5 {
		return float32(math.Tanh(float64(x)))
	}
	if x > 9.1 {
		return 1
	}
	if x < -9.1 {
		return -1
	}
	return 2/(1+expf(-2*x)) - 1
}

func logf(x float32) float32 { return float32(math.Log(float64(x))) }

// softplusf is log(1 + e^v) = max(v, 0) + log1p(e^−|v|), with e^−|v| from
// expf and log1p(t), t in (0, 1], as 2·atanh(t/(2+t)): the odd series in
// s = t/(2+t) ≤ 1/3 to s¹⁷ (truncation below 2e-9 relative) in float64.
// Flows' coupling layers spend their time here; float64 Exp and Log1p made
// it three quarters of a NICE forward pass.
func softplusf(v float32) float32 {
	if v != v {
		return v
	}
	a := v
	if a > 0 {
		a = -a
	}
	t := float64(expf(a))
	s := t / (2 + t)
	s2 := s * s
	l := 2 * s * (1 + s2*(1.0/3+s2*(1.0/5+s2*(1.0/7+s2*(1.0/9+s2*(1.0/11+s2*(1.0/13+s2*(1.0/15+s2/17))))))))
	return float32(float64(max(v, 0)) + l)
}

func softplusRef(v float32) float32 {
	x := float64(v)
	return float32(math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))))
}
