package native

import "math"

// expm1f is e^x − 1 for float32: expf away from zero, and near it, where
// expf(x) − 1 would cancel, the Taylor series to x⁷ (its error below
// 2e-9 relative for |x| < 0.25). ELU spends its time here, and float64
// math.Expm1 made it a third of an NCSNv2 forward pass.
func expm1f(x float32) float32 {
	if x > -0.25 && x < 0.25 {
		return x * (1 + x*(1.0/2+x*(1.0/6+x*(1.0/24+x*(1.0/120+x*(1.0/720+x*(1.0/5040)))))))
	}
	return expf(x) - 1
}

// eluF32 is ELU: x, or alpha·(e^x − 1) below zero.
func eluF32(alpha float32) func(d, s []float32) {
	return func(d, s []float32) { eluInto(d, s, alpha) }
}

// eluInto sets d[i] = ELU(s[i]); d may be s. With AVX2 every element goes
// through the vector kernel, the last partial vector too (through a
// padded copy), so an element's bits do not depend on where it lies in
// the buffer: a sample's activations are the same in any batch.
func eluInto(d, s []float32, alpha float32) {
	eluWith(haveAVX2, haveAVX512, d, s, alpha)
}

// eluWith is eluInto with the kernels chosen: vec for the assembly, wide
// for its ZMM form; neither for plain Go.
func eluWith(vec, wide bool, d, s []float32, alpha float32) {
	s = s[:len(d)]
	if !vec {
		eluRef(d, s, alpha)
		return
	}
	w := 8
	if wide {
		w = 16
	}
	n := len(d) &^ (w - 1)
	if n > 0 {
		eluVec(wide, d[:n], s[:n], alpha)
	}
	if n < len(d) {
		var buf [16]float32
		m := copy(buf[:], s[n:])
		eluVec(wide, buf[:w], buf[:w], alpha)
		copy(d[n:], buf[:m])
	}
}

// eluVec calls the kernel directly (through a func value, buf would escape
// to the heap on every call).
func eluVec(wide bool, d, s []float32, alpha float32) {
	if wide {
		eluAVX512(d, s, alpha)
	} else {
		eluAVX2(d, s, alpha)
	}
}

// eluRef is ELU in plain Go with expm1f.
func eluRef(d, s []float32, alpha float32) {
	for i, v := range s[:len(d)] {
		if v < 0 {
			v = alpha * expm1f(v)
		}
		d[i] = v
	}
}

func expm1Ref(x float32) float32 { return float32(math.Expm1(float64(x))) }
