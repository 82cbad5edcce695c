package native

// act is an activation applied elementwise, on its own (Sigmoid, the fused
// SiLU) or in a matrix product's epilogue.
type act uint8

const (
	actNone act = iota
	actSigmoid
	actSiLU // x·σ(x), what Sigmoid followed by Mul(x, σ(x)) computes
)

// applyAct sets d[i] = f(s[i] + bias[i]) for activation a; bias may be nil
// and d may be s. The assembly kernels do whole vectors (16 or 8 elements),
// applyActRef the rest.
func applyAct(a act, d, s, bias []float32) { applyActWith(implAuto, a, d, s, bias) }

// applyActWith is applyAct with the kernels of impl: implAuto for the
// widest this CPU runs, implAVX2 for YMM only, implGo for none.
func applyActWith(impl gemmImpl, a act, d, s, bias []float32) {
	s = s[:len(d)]
	if bias != nil {
		bias = bias[:len(d)]
	}
	if a != actNone && impl != implGo {
		if haveAVX512 && impl != implAVX2 && len(d) >= 16 {
			n := len(d) &^ 15
			actVec(true, a, d[:n], s[:n], bias)
			d, s = d[n:], s[n:]
			if bias != nil {
				bias = bias[n:]
			}
		}
		if haveAVX2 && len(d) >= 8 {
			n := len(d) &^ 7
			actVec(false, a, d[:n], s[:n], bias)
			d, s = d[n:], s[n:]
			if bias != nil {
				bias = bias[n:]
			}
		}
		if haveAVX2 && len(d) > 0 {
			// the last few through the same kernel, padded: an element's
			// bits must not depend on where the buffer ends (a sample's
			// activations are the same in any batch)
			var sb, bb [8]float32
			copy(sb[:], s)
			var bp []float32
			if bias != nil {
				copy(bb[:], bias)
				bp = bb[:]
			}
			actVec(false, a, sb[:], sb[:], bp)
			copy(d, sb[:len(d)])
			return
		}
	}
	applyActRef(a, d, s, bias)
}

// actVec runs the assembly kernel (ZMM when wide) over all of d, whose
// length is a multiple of the vector width.
func actVec(wide bool, a act, d, s, bias []float32) {
	switch {
	case a == actSigmoid && bias == nil && wide:
		sigmoidAVX512(d, s)
	case a == actSigmoid && bias == nil:
		sigmoidAVX2(d, s)
	case a == actSiLU && bias == nil && wide:
		siluAVX512(d, s)
	case a == actSiLU && bias == nil:
		siluAVX2(d, s)
	case a == actSigmoid && wide:
		biasSigmoidAVX512(d, s, bias[:len(d)])
	case a == actSigmoid:
		biasSigmoidAVX2(d, s, bias[:len(d)])
	case a == actSiLU && wide:
		biasSiLUAVX512(d, s, bias[:len(d)])
	case a == actSiLU:
		biasSiLUAVX2(d, s, bias[:len(d)])
	}
}

// applyActRef is applyAct in plain Go, the reference for the assembly.
func applyActRef(a act, d, s, bias []float32) {
	s = s[:len(d)]
	if bias != nil {
		bias = bias[:len(d)]
	}
	for i := range d {
		v := s[i]
		if bias != nil {
			v += bias[i]
		}
		switch a {
		case actSigmoid:
			v = sigmoidf(v)
		case actSiLU:
			v *= sigmoidf(v)
		}
		d[i] = v
	}
}

func sigmoidF32(d, s []float32) { applyAct(actSigmoid, d, s, nil) }
func siluF32(d, s []float32)    { applyAct(actSiLU, d, s, nil) }
