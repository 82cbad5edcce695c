package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// unaryKernel applies a vector function elementwise; nil functions mark
// element types the op does not take.
type unaryKernel struct {
	f32 func(d, s []float32)
	i64 func(d, s []int64)
	b   func(d, s []bool)
	// heavy: a transcendental costing tens of nanoseconds an element, worth
	// splitting over the workers from a few hundred elements on
	heavy bool
}

type unaryTask struct {
	k    *unaryKernel
	d, s *graph.Tensor
}

func (t *unaryTask) runRange(lo, hi int) {
	switch t.s.DType {
	case graph.Float32:
		t.k.f32(t.d.F32[lo:hi], t.s.F32[lo:hi])
	case graph.Int64:
		t.k.i64(t.d.I64[lo:hi], t.s.I64[lo:hi])
	default:
		t.k.b(t.d.B[lo:hi], t.s.B[lo:hi])
	}
}

func (k *unaryKernel) newState() any { return &unaryTask{k: k} }

func (k *unaryKernel) infer(in, out []*graph.Tensor) error {
	ok := false
	switch in[0].DType {
	case graph.Float32:
		ok = k.f32 != nil
	case graph.Int64:
		ok = k.i64 != nil
	case graph.Bool:
		ok = k.b != nil
	}
	if !ok {
		return fmt.Errorf("element type %s is not supported", in[0].DType)
	}
	setShape(out[0], in[0].DType, in[0].Shape)
	return nil
}

func (k *unaryKernel) run(x *exec, in, out []*graph.Tensor) error {
	t := x.state.(*unaryTask)
	t.d, t.s = out[0], in[0]
	grain := elementsPerTask / 4
	if k.heavy {
		grain = 512
	}
	x.pool.parallel(int(prod(in[0].Shape)), grain, t)
	return nil
}

// mapF32 turns a scalar function into a vector one.
func mapF32(f func(float32) float32) func(d, s []float32) {
	return func(d, s []float32) {
		s = s[:len(d)]
		for i := range d {
			d[i] = f(s[i])
		}
	}
}

func mapF64(f func(float64) float64) func(d, s []float32) {
	return func(d, s []float32) {
		s = s[:len(d)]
		for i := range d {
			d[i] = float32(f(float64(s[i])))
		}
	}
}

func unaryOp(k *unaryKernel) opFunc {
	return func(*compileCtx) (kernel, error) { return k, nil }
}

// unaryAttrOp builds the kernel from the node's attributes.
func unaryAttrOp(build func(n *graph.Node) *unaryKernel) opFunc {
	return func(c *compileCtx) (kernel, error) { return build(c.node), nil }
}

func copyF32(d, s []float32) { copy(d, s) }
func copyI64(d, s []int64)   { copy(d, s) }
func copyB(d, s []bool)      { copy(d, s) }

func init() {
	register("Identity", unaryOp(&unaryKernel{f32: copyF32, i64: copyI64, b: copyB}))
	register("Neg", unaryOp(&unaryKernel{
		f32: func(d, s []float32) {
			s = s[:len(d)]
			for i := range d {
				d[i] = -s[i]
			}
		},
		i64: func(d, s []int64) {
			for i := range d {
				d[i] = -s[i]
			}
		}}))
	register("Abs", unaryOp(&unaryKernel{
		f32: mapF32(func(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }),
		i64: func(d, s []int64) {
			for i := range d {
				d[i] = max(s[i], -s[i])
			}
		}}))
	register("Relu", unaryOp(&unaryKernel{
		f32: func(d, s []float32) {
			s = s[:len(d)]
			for i := range d {
				d[i] = max(s[i], 0)
			}
		},
		i64: func(d, s []int64) {
			for i := range d {
				d[i] = max(s[i], 0)
			}
		}}))
	register("Sign", unaryOp(&unaryKernel{
		f32: mapF32(func(v float32) float32 {
			switch {
			case v > 0:
				return 1
			case v < 0:
				return -1
			}
			return v // 0 and NaN
		}),
		i64: func(d, s []int64) {
			for i := range d {
				d[i] = int64(min(max(s[i], -1), 1))
			}
		}}))
	register("Not", unaryOp(&unaryKernel{b: func(d, s []bool) {
		for i := range d {
			d[i] = !s[i]
		}
	}}))
	register("Exp", unaryOp(&unaryKernel{f32: mapF32(expf)}))
	register("Log", unaryOp(&unaryKernel{f32: mapF32(logf), heavy: true}))
	register("Sqrt", unaryOp(&unaryKernel{f32: mapF32(func(v float32) float32 { return float32(math.Sqrt(float64(v))) })}))
	register("Reciprocal", unaryOp(&unaryKernel{f32: mapF32(func(v float32) float32 { return 1 / v })}))
	register("Sigmoid", unaryOp(sigmoidKernel))
	register("Tanh", unaryOp(&unaryKernel{f32: mapF32(tanhf), heavy: true}))
	register("Erf", unaryOp(&unaryKernel{f32: mapF64(math.Erf), heavy: true}))
	register("Sin", unaryOp(&unaryKernel{f32: mapF64(math.Sin), heavy: true}))
	register("Cos", unaryOp(&unaryKernel{f32: mapF64(math.Cos), heavy: true}))
	register("Tan", unaryOp(&unaryKernel{f32: mapF64(math.Tan), heavy: true}))
	register("Floor", unaryOp(&unaryKernel{f32: mapF64(math.Floor)}))
	register("Ceil", unaryOp(&unaryKernel{f32: mapF64(math.Ceil)}))
	register("Round", unaryOp(&unaryKernel{f32: mapF64(math.RoundToEven)}))
	register("Softsign", unaryOp(&unaryKernel{f32: mapF32(func(v float32) float32 {
		return v / (1 + float32(math.Abs(float64(v))))
	})}))
	register("Softplus", unaryOp(&unaryKernel{f32: mapF32(softplusf), heavy: true}))
	register("LeakyRelu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		alpha := n.AttrFloat("alpha", 0.01)
		return &unaryKernel{f32: mapF32(func(v float32) float32 {
			if v < 0 {
				return alpha * v
			}
			return v
		})}
	}))
	register("Elu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		return &unaryKernel{f32: eluF32(n.AttrFloat("alpha", 1))}
	}))
	register("Selu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		alpha := float64(n.AttrFloat("alpha", 1.67326319217681884765625))
		gamma := float64(n.AttrFloat("gamma", 1.05070102214813232421875))
		return &unaryKernel{f32: mapF64(func(v float64) float64 {
			if v <= 0 {
				return gamma * alpha * math.Expm1(v)
			}
			return gamma * v
		})}
	}))
	register("HardSigmoid", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		alpha, beta := n.AttrFloat("alpha", 0.2), n.AttrFloat("beta", 0.5)
		return &unaryKernel{f32: mapF32(func(v float32) float32 { return max(0, min(1, alpha*v+beta)) })}
	}))
	register("HardSwish", unaryOp(&unaryKernel{f32: mapF32(func(v float32) float32 {
		return v * max(0, min(1, v/6+0.5))
	})}))
	register("ThresholdedRelu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		alpha := n.AttrFloat("alpha", 1)
		return &unaryKernel{f32: mapF32(func(v float32) float32 {
			if v > alpha {
				return v
			}
			return 0
		})}
	}))
	register("Celu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		alpha := float64(n.AttrFloat("alpha", 1))
		return &unaryKernel{f32: mapF64(func(v float64) float64 {
			return max(0, v) + min(0, alpha*math.Expm1(v/alpha))
		})}
	}))
	register("Mish", unaryOp(&unaryKernel{f32: mapF64(func(v float64) float64 {
		return v * math.Tanh(math.Log1p(math.Exp(v)))
	})}))
	register("Gelu", unaryAttrOp(func(n *graph.Node) *unaryKernel {
		if n.AttrString("approximate", "none") == "tanh" {
			return &unaryKernel{f32: mapF64(func(v float64) float64 {
				return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
			})}
		}
		return &unaryKernel{f32: mapF64(func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) })}
	}))
	register("IsNaN", compileIsNaN)
	register("Dropout", compileDropout)
}

// Dropout in inference is the identity; its optional mask output is all true.
type dropoutKernel struct{ unaryKernel }

func compileDropout(c *compileCtx) (kernel, error) {
	if t := c.constInput(2); t != nil && t.DType == graph.Bool && len(t.B) == 1 && t.B[0] && !zeroRatio(c.constInput(1)) {
		return nil, unsupported("Dropout in training mode")
	}
	if c.node.AttrInt("is_test", 1) == 0 && c.opset < 7 {
		return nil, unsupported("Dropout in training mode")
	}
	return &dropoutKernel{unaryKernel{f32: copyF32, i64: copyI64, b: copyB}}, nil
}

func (k *dropoutKernel) infer(in, out []*graph.Tensor) error {
	if err := k.unaryKernel.infer(in, out); err != nil {
		return err
	}
	if len(out) > 1 && out[1] != nil {
		setShape(out[1], graph.Bool, in[0].Shape)
	}
	return nil
}

func (k *dropoutKernel) run(x *exec, in, out []*graph.Tensor) error {
	if t := arg(in, 2); t != nil && len(t.B) == 1 && t.B[0] && !zeroRatio(arg(in, 1)) {
		return unsupported("Dropout in training mode with a nonzero ratio")
	}
	if err := k.unaryKernel.run(x, in, out); err != nil {
		return err
	}
	if len(out) > 1 && out[1] != nil {
		for i := range out[1].B {
			out[1].B[i] = true
		}
	}
	return nil
}

// zeroRatio reports a Dropout ratio of 0, with which training mode is the
// identity too.
func zeroRatio(t *graph.Tensor) bool {
	return t != nil && t.DType == graph.Float32 && len(t.F32) == 1 && t.F32[0] == 0
}

type isNaNKernel struct{}

func compileIsNaN(*compileCtx) (kernel, error) { return isNaNKernel{}, nil }

func (isNaNKernel) infer(in, out []*graph.Tensor) error {
	if in[0].DType != graph.Float32 {
		return fmt.Errorf("element type %s is not supported", in[0].DType)
	}
	setShape(out[0], graph.Bool, in[0].Shape)
	return nil
}

func (isNaNKernel) run(_ *exec, in, out []*graph.Tensor) error {
	for i, v := range in[0].F32 {
		out[0].B[i] = v != v
	}
	return nil
}
