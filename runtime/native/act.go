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
// and d may be s. The AVX2 kernels do all but the last len(d)%8 elements.
func applyAct(a act, d, s, bias []float32) {
	s = s[:len(d)]
	if bias != nil {
		bias = bias[:len(d)]
	}
	if haveAVX2 && len(d) >= 8 {
		n := len(d) &^ 7
		switch {
		case a == actSigmoid && bias == nil:
			sigmoidAVX2(d[:n], s[:n])
		case a == actSiLU && bias == nil:
			siluAVX2(d[:n], s[:n])
		case a == actSigmoid:
			biasSigmoidAVX2(d[:n], s[:n], bias[:n])
		case a == actSiLU:
			biasSiLUAVX2(d[:n], s[:n], bias[:n])
		default:
			n = 0
		}
		if bias != nil {
			bias = bias[n:]
		}
		d, s = d[n:], s[n:]
	}
	applyActRef(a, d, s, bias)
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
