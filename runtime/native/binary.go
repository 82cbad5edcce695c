package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// binFns computes one binary op over a contiguous run of elements: both
// operands vectors (vv), or one of them a broadcast scalar (vs, sv).
type binFns[T, U elem] struct {
	vv func(d []U, a, b []T)
	vs func(d []U, a []T, b T)
	sv func(d []U, a T, b []T)
}

// binOf builds the three loops from a scalar function; used for ops that are
// not hot enough to deserve loops written out by hand.
func binOf[T, U elem](f func(a, b T) U) *binFns[T, U] {
	return &binFns[T, U]{
		vv: func(d []U, a, b []T) {
			a, b = a[:len(d)], b[:len(d)]
			for i := range d {
				d[i] = f(a[i], b[i])
			}
		},
		vs: func(d []U, a []T, b T) {
			a = a[:len(d)]
			for i := range d {
				d[i] = f(a[i], b)
			}
		},
		sv: func(d []U, a T, b []T) {
			b = b[:len(d)]
			for i := range d {
				d[i] = f(a, b[i])
			}
		},
	}
}

// Hand-written loops for the arithmetic that score networks spend their
// elementwise time in.

func addFns[T number]() *binFns[T, T] {
	return &binFns[T, T]{
		vv: func(d, a, b []T) {
			a, b = a[:len(d)], b[:len(d)]
			for i := range d {
				d[i] = a[i] + b[i]
			}
		},
		vs: func(d, a []T, b T) {
			a = a[:len(d)]
			for i := range d {
				d[i] = a[i] + b
			}
		},
		sv: func(d []T, a T, b []T) {
			b = b[:len(d)]
			for i := range d {
				d[i] = a + b[i]
			}
		},
	}
}

func subFns[T number]() *binFns[T, T] {
	return &binFns[T, T]{
		vv: func(d, a, b []T) {
			a, b = a[:len(d)], b[:len(d)]
			for i := range d {
				d[i] = a[i] - b[i]
			}
		},
		vs: func(d, a []T, b T) {
			a = a[:len(d)]
			for i := range d {
				d[i] = a[i] - b
			}
		},
		sv: func(d []T, a T, b []T) {
			b = b[:len(d)]
			for i := range d {
				d[i] = a - b[i]
			}
		},
	}
}

func mulFns[T number]() *binFns[T, T] {
	return &binFns[T, T]{
		vv: func(d, a, b []T) {
			a, b = a[:len(d)], b[:len(d)]
			for i := range d {
				d[i] = a[i] * b[i]
			}
		},
		vs: func(d, a []T, b T) {
			a = a[:len(d)]
			for i := range d {
				d[i] = a[i] * b
			}
		},
		sv: func(d []T, a T, b []T) {
			b = b[:len(d)]
			for i := range d {
				d[i] = a * b[i]
			}
		},
	}
}

func divF32Fns() *binFns[float32, float32] {
	return &binFns[float32, float32]{
		vv: func(d, a, b []float32) {
			a, b = a[:len(d)], b[:len(d)]
			for i := range d {
				d[i] = a[i] / b[i]
			}
		},
		vs: func(d, a []float32, b float32) {
			a = a[:len(d)]
			for i := range d {
				d[i] = a[i] / b
			}
		},
		sv: func(d []float32, a float32, b []float32) {
			b = b[:len(d)]
			for i := range d {
				d[i] = a / b[i]
			}
		},
	}
}

// binTask applies fns to one broadcast pair, split over output rows.
type binTask[T, U elem] struct {
	fn    *binFns[T, U]
	s     strider
	a, b  []T
	d     []U
	chunk int // > 0: a single row split into chunks of this many elements
}

func (t *binTask[T, U]) runRange(lo, hi int) {
	if t.chunk > 0 {
		lo, hi = lo*t.chunk, min(hi*t.chunk, t.s.inner)
		if lo < hi {
			t.rowOp(lo, lo, lo, hi-lo)
		}
		return
	}
	n := t.s.inner
	var idx [maxRank]int
	off := t.s.start(lo, &idx)
	for q := lo; q < hi; q++ {
		t.rowOp(q*n, off[0], off[1], n)
		t.s.advance(&idx, &off)
	}
}

func (t *binTask[T, U]) rowOp(o, ia, ib, n int) {
	sa, sb := t.s.innerStride(0), t.s.innerStride(1)
	if t.chunk > 0 { // flat: offsets are element offsets when strides are 1
		if sa == 0 {
			ia = 0
		}
		if sb == 0 {
			ib = 0
		}
	}
	d := t.d[o : o+n]
	switch {
	case sa != 0 && sb != 0:
		t.fn.vv(d, t.a[ia:ia+n], t.b[ib:ib+n])
	case sb == 0:
		t.fn.vs(d, t.a[ia:ia+max(n*sa, 1)], t.b[ib])
	default:
		t.fn.sv(d, t.a[ia], t.b[ib:ib+n])
	}
}

// elementsPerTask is how many elements of cheap elementwise work justify
// handing a share to another goroutine.
const elementsPerTask = 1 << 14

// binaryInto computes d = fn(a, b) with broadcasting; dShape is the
// broadcast shape, already set on the output.
func binaryInto[T, U elem](x *exec, slot *ranger, fn *binFns[T, U], d []U, dShape []int64, a []T, aShape []int64, b []T, bShape []int64) {
	if len(d) == 0 {
		return
	}
	t, ok := (*slot).(*binTask[T, U])
	if !ok {
		t = new(binTask[T, U])
		*slot = t
	}
	t.fn, t.a, t.b, t.d = fn, a, b, d
	t.s = newStrider(dShape, aShape, bShape)
	t.chunk = 0
	if t.s.rows == 1 {
		if t.s.inner < 2*elementsPerTask || x.pool == nil {
			t.runRange(0, 1)
			return
		}
		t.chunk = (t.s.inner + x.pool.threads() - 1) / x.pool.threads()
		x.pool.parallel((t.s.inner+t.chunk-1)/t.chunk, 1, t)
		return
	}
	x.pool.parallel(t.s.rows, max(1, elementsPerTask/max(t.s.inner, 1)), t)
}

// binKernel is an op on two broadcast operands of one element type.
type binKernel struct {
	f32     *binFns[float32, float32]
	i64     *binFns[int64, int64]
	f32Bool *binFns[float32, bool] // comparisons
	i64Bool *binFns[int64, bool]
	bools   *binFns[bool, bool]
}

type taskSlot struct{ t ranger }

func (k *binKernel) newState() any { return new(taskSlot) }

func (k *binKernel) outType(dt graph.DType) (graph.DType, error) {
	switch {
	case dt == graph.Float32 && k.f32 != nil, dt == graph.Int64 && k.i64 != nil:
		return dt, nil
	case dt == graph.Float32 && k.f32Bool != nil, dt == graph.Int64 && k.i64Bool != nil, dt == graph.Bool && k.bools != nil:
		return graph.Bool, nil
	}
	return 0, fmt.Errorf("element type %s is not supported", dt)
}

func (k *binKernel) infer(in, out []*graph.Tensor) error {
	a, b := in[0], in[1]
	if a.DType != b.DType {
		return fmt.Errorf("operands are %s and %s", a.DType, b.DType)
	}
	dt, err := k.outType(a.DType)
	if err != nil {
		return err
	}
	var sh dims
	r, err := broadcastShapes(&sh, a.Shape, b.Shape)
	if err != nil {
		return err
	}
	setShape(out[0], dt, sh[:r])
	return nil
}

func (k *binKernel) run(x *exec, in, out []*graph.Tensor) error {
	a, b, o := in[0], in[1], out[0]
	slot := &x.state.(*taskSlot).t
	switch {
	case a.DType == graph.Float32 && o.DType == graph.Float32:
		binaryInto(x, slot, k.f32, o.F32, o.Shape, a.F32, a.Shape, b.F32, b.Shape)
	case a.DType == graph.Int64 && o.DType == graph.Int64:
		binaryInto(x, slot, k.i64, o.I64, o.Shape, a.I64, a.Shape, b.I64, b.Shape)
	case a.DType == graph.Float32:
		binaryInto(x, slot, k.f32Bool, o.B, o.Shape, a.F32, a.Shape, b.F32, b.Shape)
	case a.DType == graph.Int64:
		binaryInto(x, slot, k.i64Bool, o.B, o.Shape, a.I64, a.Shape, b.I64, b.Shape)
	default:
		binaryInto(x, slot, k.bools, o.B, o.Shape, a.B, a.Shape, b.B, b.Shape)
	}
	return nil
}

func binaryOp(k *binKernel) opFunc {
	return func(c *compileCtx) (kernel, error) {
		if len(c.node.Inputs) != 2 {
			return nil, fmt.Errorf("expected 2 inputs, got %d", len(c.node.Inputs))
		}
		return k, nil
	}
}

func init() {
	register("Add", binaryOp(&binKernel{f32: addF32Fns(), i64: addFns[int64]()}))
	register("Sub", binaryOp(&binKernel{f32: subF32Fns(), i64: subFns[int64]()}))
	register("Mul", binaryOp(&binKernel{f32: mulF32Fns(), i64: mulFns[int64]()}))
	register("Div", binaryOp(&binKernel{f32: divF32VecFns(), i64: binOf(func(a, b int64) int64 {
		if b == 0 {
			return 0 // ONNX leaves integer division by zero undefined; don't crash
		}
		return a / b
	})}))
	register("Equal", binaryOp(&binKernel{
		f32Bool: binOf(func(a, b float32) bool { return a == b }),
		i64Bool: binOf(func(a, b int64) bool { return a == b }),
		bools:   binOf(func(a, b bool) bool { return a == b }),
	}))
	register("Less", binaryOp(&binKernel{
		f32Bool: binOf(func(a, b float32) bool { return a < b }),
		i64Bool: binOf(func(a, b int64) bool { return a < b }),
	}))
	register("LessOrEqual", binaryOp(&binKernel{
		f32Bool: binOf(func(a, b float32) bool { return a <= b }),
		i64Bool: binOf(func(a, b int64) bool { return a <= b }),
	}))
	register("Greater", binaryOp(&binKernel{
		f32Bool: binOf(func(a, b float32) bool { return a > b }),
		i64Bool: binOf(func(a, b int64) bool { return a > b }),
	}))
	register("GreaterOrEqual", binaryOp(&binKernel{
		f32Bool: binOf(func(a, b float32) bool { return a >= b }),
		i64Bool: binOf(func(a, b int64) bool { return a >= b }),
	}))
	register("And", binaryOp(&binKernel{bools: binOf(func(a, b bool) bool { return a && b })}))
	register("Or", binaryOp(&binKernel{bools: binOf(func(a, b bool) bool { return a || b })}))
	register("Xor", binaryOp(&binKernel{bools: binOf(func(a, b bool) bool { return a != b })}))
	register("Pow", compilePow)
	register("Max", variadicOp(&binKernel{f32: binOf(maxF32), i64: binOf(func(a, b int64) int64 { return max(a, b) })}, false))
	register("Min", variadicOp(&binKernel{f32: binOf(minF32), i64: binOf(func(a, b int64) int64 { return min(a, b) })}, false))
	register("Sum", variadicOp(&binKernel{f32: addF32Fns(), i64: addFns[int64]()}, false))
	register("Mean", variadicOp(&binKernel{f32: addF32Fns()}, true))
	register("Mod", compileMod)
	register("PRelu", binaryOp(&binKernel{f32: binOf(func(x, slope float32) float32 {
		if x < 0 {
			return slope * x
		}
		return x
	})}))
}

// maxF32 and minF32 propagate NaN, as ONNX's Max and Min do.
func maxF32(a, b float32) float32 {
	if a != a || b != b {
		return a + b
	}
	return max(a, b)
}

func minF32(a, b float32) float32 {
	if a != a || b != b {
		return a + b
	}
	return min(a, b)
}
