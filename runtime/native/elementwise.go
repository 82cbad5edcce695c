package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// variadicKernel folds a binary op over any number of broadcast inputs
// (Sum, Mean, Max, Min).
type variadicKernel struct {
	bin  *binKernel
	mean bool
}

func variadicOp(k *binKernel, mean bool) opFunc {
	return func(c *compileCtx) (kernel, error) {
		if len(c.node.Inputs) == 0 {
			return nil, fmt.Errorf("needs at least one input")
		}
		return &variadicKernel{bin: k, mean: mean}, nil
	}
}

func (k *variadicKernel) newState() any { return new(taskSlot) }

func (k *variadicKernel) infer(in, out []*graph.Tensor) error {
	var sh dims
	r := 0
	for _, t := range in {
		if t == nil {
			return fmt.Errorf("inputs may not be omitted")
		}
		if t.DType != in[0].DType {
			return fmt.Errorf("inputs are %s and %s", in[0].DType, t.DType)
		}
		var err error
		if r, err = broadcastInto(&sh, r, t.Shape); err != nil {
			return err
		}
	}
	dt, err := k.bin.outType(in[0].DType)
	if err != nil {
		return err
	}
	setShape(out[0], dt, sh[:r])
	return nil
}

func (k *variadicKernel) run(x *exec, in, out []*graph.Tensor) error {
	o := out[0]
	slot := &x.state.(*taskSlot).t
	if o.DType == graph.Float32 {
		variadicInto(x, slot, k.bin.f32, o.F32, o.Shape, in)
		if k.mean {
			s := 1 / float32(len(in))
			for i := range o.F32 {
				o.F32[i] *= s
			}
		}
		return nil
	}
	variadicInto(x, slot, k.bin.i64, o.I64, o.Shape, in)
	return nil
}

func variadicInto[T number](x *exec, slot *ranger, fn *binFns[T, T], d []T, dShape []int64, in []*graph.Tensor) {
	if len(in) == 1 {
		broadcastCopy(d, dShape, data[T](in[0]), in[0].Shape)
		return
	}
	start := 2
	if sameShape(in[0].Shape, dShape) || sameShape(in[1].Shape, dShape) {
		binaryInto(x, slot, fn, d, dShape, data[T](in[0]), in[0].Shape, data[T](in[1]), in[1].Shape)
	} else {
		broadcastCopy(d, dShape, data[T](in[0]), in[0].Shape)
		start = 1
	}
	for _, t := range in[start:] {
		binaryInto(x, slot, fn, d, dShape, d, dShape, data[T](t), t.Shape)
	}
}

// broadcastCopy writes src broadcast to dShape into d.
func broadcastCopy[T elem](d []T, dShape []int64, src []T, sShape []int64) {
	if len(d) == 0 {
		return
	}
	s := newStrider(dShape, sShape)
	n := s.inner
	st := s.innerStride(0)
	for q := 0; q < s.rows; q++ {
		off := s.row(q)[0]
		row := d[q*n : q*n+n]
		if st == 0 {
			v := src[off]
			for i := range row {
				row[i] = v
			}
		} else {
			copy(row, src[off:off+n])
		}
	}
}

func compilePow(c *compileCtx) (kernel, error) { return &powKernel{}, nil }

// powKernel raises float32 or int64 bases to float32 or int64 exponents.
type powKernel struct{}

type powState struct {
	taskSlot
	exp []float32 // integer exponents converted for a float32 base
	ib  []int64   // float exponents of an integer base, as float32 bits
}

// castI64 stores float32 exponents' bits in int64s, so the integer-base path
// can share the int64 loops; powI64F32 decodes them.
func castI64(dst *[]int64, s []float32) []int64 {
	*dst = growSlice(*dst, len(s))
	for i, v := range s {
		(*dst)[i] = int64(math.Float32bits(v))
	}
	return *dst
}

var powI64F32 = binOf(func(a, b int64) int64 {
	return int64(math.Pow(float64(a), float64(math.Float32frombits(uint32(b)))))
})

// powF32 squares a run with the multiply loops when the exponent is a
// broadcast 2 (the variance in hand-written norms); a·a is what the scalar
// function returns for 2, so the bits are the same.
var powF32 = func() *binFns[float32, float32] {
	fns := *powF32Scalar
	mul := mulF32Fns()
	fns.vs = func(d, a []float32, b float32) {
		if b == 2 {
			mul.vv(d, a, a)
			return
		}
		powF32Scalar.vs(d, a, b)
	}
	return &fns
}()

var powF32Scalar = binOf(func(a, b float32) float32 {
	switch b {
	case 2:
		return a * a
	case 1:
		return a
	case 0.5:
		return float32(math.Sqrt(float64(a)))
	}
	return float32(math.Pow(float64(a), float64(b)))
})

var powI64 = binOf(func(a, b int64) int64 {
	if b < 0 {
		switch a {
		case 1:
			return 1
		case -1:
			return 1 - 2*(b&1)
		}
		return 0
	}
	r := int64(1)
	for ; b > 0; b >>= 1 {
		if b&1 == 1 {
			r *= a
		}
		a *= a
	}
	return r
})

func (*powKernel) newState() any { return new(powState) }

func (*powKernel) infer(in, out []*graph.Tensor) error {
	a, b := in[0], in[1]
	ok := (a.DType == graph.Float32 || a.DType == graph.Int64) && (b.DType == graph.Float32 || b.DType == graph.Int64)
	if !ok {
		return fmt.Errorf("base %s with exponent %s is not supported", a.DType, b.DType)
	}
	var sh dims
	r, err := broadcastShapes(&sh, a.Shape, b.Shape)
	if err != nil {
		return err
	}
	setShape(out[0], a.DType, sh[:r])
	return nil
}

func (*powKernel) run(x *exec, in, out []*graph.Tensor) error {
	st := x.state.(*powState)
	a, b, o := in[0], in[1], out[0]
	switch {
	case a.DType == graph.Int64 && b.DType == graph.Float32:
		// An integer base with a float exponent: compute in float64, truncate.
		binaryInto(x, &st.t, powI64F32, o.I64, o.Shape, a.I64, a.Shape, castI64(&st.ib, b.F32), b.Shape)
	case a.DType == graph.Int64:
		binaryInto(x, &st.t, powI64, o.I64, o.Shape, a.I64, a.Shape, b.I64, b.Shape)
	case b.DType == graph.Int64:
		st.exp = growSlice(st.exp, len(b.I64))
		for i, v := range b.I64 {
			st.exp[i] = float32(v)
		}
		binaryInto(x, &st.t, powF32, o.F32, o.Shape, a.F32, a.Shape, st.exp, b.Shape)
	default:
		binaryInto(x, &st.t, powF32, o.F32, o.Shape, a.F32, a.Shape, b.F32, b.Shape)
	}
	return nil
}

func compileMod(c *compileCtx) (kernel, error) {
	if c.node.AttrInt("fmod", 0) != 0 {
		return &binKernel{
			f32: binOf(func(a, b float32) float32 { return float32(math.Mod(float64(a), float64(b))) }),
			i64: binOf(func(a, b int64) int64 {
				if b == 0 {
					return 0
				}
				return a % b
			}),
		}, nil
	}
	return &binKernel{i64: binOf(func(a, b int64) int64 {
		if b == 0 {
			return 0
		}
		m := a % b
		if m != 0 && (m < 0) != (b < 0) {
			m += b
		}
		return m
	})}, nil
}

// whereKernel selects between two broadcast operands by a bool condition.
type whereKernel struct{}

func (whereKernel) infer(in, out []*graph.Tensor) error {
	c, a, b := in[0], in[1], in[2]
	if c.DType != graph.Bool {
		return fmt.Errorf("condition is %s, not bool", c.DType)
	}
	if a.DType != b.DType {
		return fmt.Errorf("operands are %s and %s", a.DType, b.DType)
	}
	var sh dims
	r, err := broadcastShapes(&sh, c.Shape, a.Shape, b.Shape)
	if err != nil {
		return err
	}
	setShape(out[0], a.DType, sh[:r])
	return nil
}

func (whereKernel) run(_ *exec, in, out []*graph.Tensor) error {
	switch out[0].DType {
	case graph.Float32:
		where(out[0].F32, out[0].Shape, in[0], in[1].F32, in[1].Shape, in[2].F32, in[2].Shape)
	case graph.Int64:
		where(out[0].I64, out[0].Shape, in[0], in[1].I64, in[1].Shape, in[2].I64, in[2].Shape)
	default:
		where(out[0].B, out[0].Shape, in[0], in[1].B, in[1].Shape, in[2].B, in[2].Shape)
	}
	return nil
}

func where[T elem](d []T, dShape []int64, c *graph.Tensor, a []T, aShape []int64, b []T, bShape []int64) {
	if len(d) == 0 {
		return
	}
	s := newStrider(dShape, c.Shape, aShape, bShape)
	n := s.inner
	sc, sa, sb := s.innerStride(0), s.innerStride(1), s.innerStride(2)
	for q := 0; q < s.rows; q++ {
		off := s.row(q)
		ic, ia, ib := off[0], off[1], off[2]
		for i := range n {
			if c.B[ic+i*sc] {
				d[q*n+i] = a[ia+i*sa]
			} else {
				d[q*n+i] = b[ib+i*sb]
			}
		}
	}
}

// clipKernel clamps to bounds from attributes (before opset 11) or from
// optional scalar inputs.
type clipKernel struct {
	attrs  bool
	lo, hi float32
}

func compileClip(c *compileCtx) (kernel, error) {
	if c.opset < 11 {
		return &clipKernel{attrs: true, lo: c.node.AttrFloat("min", -math.MaxFloat32), hi: c.node.AttrFloat("max", math.MaxFloat32)}, nil
	}
	return &clipKernel{}, nil
}

func (k *clipKernel) infer(in, out []*graph.Tensor) error {
	dt := in[0].DType
	if dt != graph.Float32 && dt != graph.Int64 {
		return fmt.Errorf("element type %s is not supported", dt)
	}
	for i := 1; i < 3; i++ {
		if t := arg(in, i); t != nil && (t.DType != dt || len(t.Shape) > 1 || prod(t.Shape) != 1) {
			return fmt.Errorf("bound %d must be one %s, got %s %v", i, dt, t.DType, t.Shape)
		}
	}
	setShape(out[0], dt, in[0].Shape)
	return nil
}

func (k *clipKernel) run(_ *exec, in, out []*graph.Tensor) error {
	if in[0].DType == graph.Int64 {
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if t := arg(in, 1); t != nil {
			lo = t.I64[0]
		}
		if t := arg(in, 2); t != nil {
			hi = t.I64[0]
		}
		for i, v := range in[0].I64 {
			out[0].I64[i] = min(max(v, lo), hi)
		}
		return nil
	}
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	if k.attrs {
		lo, hi = k.lo, k.hi
	}
	if t := arg(in, 1); t != nil && !k.attrs {
		lo = t.F32[0]
	}
	if t := arg(in, 2); t != nil && !k.attrs {
		hi = t.F32[0]
	}
	d := out[0].F32
	for i, v := range in[0].F32 {
		if v == v { // keep NaN
			v = min(max(v, lo), hi)
		}
		d[i] = v
	}
	return nil
}

// castKernel converts between float32, int64 and bool.
type castKernel struct {
	to   graph.DType
	like bool // CastLike: the target type is input 1's
}

func compileCast(c *compileCtx) (kernel, error) {
	if c.node.OpType == "CastLike" {
		return &castKernel{like: true}, nil
	}
	to := graph.DType(c.node.AttrInt("to", 0))
	if !to.Computable() {
		return nil, unsupported("cast to %s", to)
	}
	return &castKernel{to: to}, nil
}

func (k *castKernel) infer(in, out []*graph.Tensor) error {
	to := k.to
	if k.like {
		to = in[1].DType
	}
	if !in[0].DType.Computable() {
		return fmt.Errorf("element type %s is not supported", in[0].DType)
	}
	setShape(out[0], to, in[0].Shape)
	return nil
}

func (k *castKernel) run(_ *exec, in, out []*graph.Tensor) error {
	s, d := in[0], out[0]
	switch s.DType {
	case graph.Float32:
		castFrom(d, s.F32)
	case graph.Int64:
		castFrom(d, s.I64)
	default:
		castFrom(d, s.B)
	}
	return nil
}

func castFrom[T elem](d *graph.Tensor, s []T) {
	switch d.DType {
	case graph.Float32:
		for i, v := range s {
			d.F32[i] = toF32(v)
		}
	case graph.Int64:
		for i, v := range s {
			d.I64[i] = toI64(v)
		}
	default:
		for i, v := range s {
			d.B[i] = toF32(v) != 0
		}
	}
}

func toF32[T elem](v T) float32 {
	switch x := any(v).(type) {
	case float32:
		return x
	case int64:
		return float32(x)
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func toI64[T elem](v T) int64 {
	switch x := any(v).(type) {
	case float32:
		if x != x {
			return 0
		}
		return int64(x)
	case int64:
		return x
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func init() {
	register("Where", func(*compileCtx) (kernel, error) { return whereKernel{}, nil })
	register("Clip", compileClip)
	register("Cast", compileCast)
	register("CastLike", compileCast)
}
