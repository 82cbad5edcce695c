package native

// vecBin puts the AVX2 loops of one float32 op in front of its Go loops:
// the kernels take the whole vectors of a run, the Go loops the last few
// elements. Each element is the same single IEEE operation either way, so
// the bits do not depend on which code ran it. The instance and group
// norms that score networks write out by hand (subtract the mean, divide
// by the deviation, scale, shift) spend their time in these loops.
func vecBin(fns *binFns[float32, float32], vv func(d, a, b []float32), vs func(d, a []float32, b float32), sv func(d []float32, a float32, b []float32)) *binFns[float32, float32] {
	if !haveAVX2 {
		return fns
	}
	return &binFns[float32, float32]{
		vv: func(d, a, b []float32) {
			n := len(d) &^ 7
			if n > 0 {
				vv(d[:n], a[:n], b[:n])
			}
			fns.vv(d[n:], a[n:len(d)], b[n:len(d)])
		},
		vs: func(d, a []float32, b float32) {
			n := len(d) &^ 7
			if n > 0 {
				vs(d[:n], a[:n], b)
			}
			fns.vs(d[n:], a[n:len(d)], b)
		},
		sv: func(d []float32, a float32, b []float32) {
			n := len(d) &^ 7
			if n > 0 {
				sv(d[:n], a, b[:n])
			}
			fns.sv(d[n:], a, b[n:len(d)])
		},
	}
}

func addF32Fns() *binFns[float32, float32] {
	return vecBin(addFns[float32](), addVVAVX2, addVSAVX2, addSVAVX2)
}

func subF32Fns() *binFns[float32, float32] {
	return vecBin(subFns[float32](), subVVAVX2, subVSAVX2, subSVAVX2)
}

func mulF32Fns() *binFns[float32, float32] {
	return vecBin(mulFns[float32](), mulVVAVX2, mulVSAVX2, mulSVAVX2)
}

func divF32VecFns() *binFns[float32, float32] {
	return vecBin(divF32Fns(), divVVAVX2, divVSAVX2, divSVAVX2)
}

// addF32 and divF32 are the Add and Div loops called directly: through a
// func value escape analysis loses track of the slices, and a caller's
// stack scratch would move to the heap on every call.
func addF32(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			addVVAVX2(d[:n], a[:n], b[:n])
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = a[i] + b[i]
	}
}

// addScalarF32 is d[i] = a[i] + b.
func addScalarF32(d, a []float32, b float32) {
	a = a[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			addVSAVX2(d[:n], a[:n], b)
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = a[i] + b
	}
}

func divF32(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			divVVAVX2(d[:n], a[:n], b[:n])
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = a[i] / b[i]
	}
}

// mulScalarF32 is d[i] = a[i]·b.
func mulScalarF32(d, a []float32, b float32) {
	a = a[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			mulVSAVX2(d[:n], a[:n], b)
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = a[i] * b
	}
}
