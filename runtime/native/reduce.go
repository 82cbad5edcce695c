package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

type reduceOp int

const (
	rSum reduceOp = iota
	rMean
	rMax
	rMin
	rProd
	rLogSumExp
	rLogSum
	rSumSquare
	rL1
	rL2
)

// reduceKernel is the Reduce* family. axes is an attribute before opset 13
// (ReduceSum) or 18 (the others), an optional input after.
type reduceKernel struct {
	op        reduceOp
	axes      intsArg
	keep      bool
	noopEmpty bool
}

func compileReduce(op reduceOp) opFunc {
	return func(c *compileCtx) (kernel, error) {
		since := int64(18)
		if op == rSum {
			since = 13
		}
		return &reduceKernel{op: op, axes: c.moved("axes", 1, since),
			keep: c.node.AttrInt("keepdims", 1) != 0, noopEmpty: c.node.AttrInt("noop_with_empty_axes", 0) != 0}, nil
	}
}

// mask returns which dimensions are reduced; all false with ok false means
// the op is the identity (empty axes with noop_with_empty_axes).
func (k *reduceKernel) mask(in []*graph.Tensor) (m [maxRank]bool, identity bool, err error) {
	r := len(in[0].Shape)
	if err := checkRank(r); err != nil {
		return m, false, err
	}
	axes, err := k.axes.get(in)
	if err != nil {
		return m, false, err
	}
	if len(axes) == 0 {
		if k.noopEmpty {
			return m, true, nil
		}
		for i := 0; i < r; i++ {
			m[i] = true
		}
		return m, false, nil
	}
	m, err = axisMask(axes, r)
	return m, false, err
}

func (k *reduceKernel) infer(in, out []*graph.Tensor) error {
	t := in[0]
	switch {
	case t.DType == graph.Float32:
	case t.DType == graph.Int64 && (k.op == rSum || k.op == rMax || k.op == rMin || k.op == rProd):
	default:
		return fmt.Errorf("element type %s is not supported", t.DType)
	}
	m, identity, err := k.mask(in)
	if err != nil {
		return err
	}
	if identity {
		setShape(out[0], t.DType, t.Shape)
		return nil
	}
	var sh dims
	r := 0
	for i, d := range t.Shape {
		if !m[i] {
			sh[r] = d
			r++
		} else if k.keep {
			sh[r] = 1
			r++
		}
		if m[i] && d == 0 && (k.op == rMax || k.op == rMin) {
			return fmt.Errorf("reducing an empty dimension")
		}
	}
	setShape(out[0], t.DType, sh[:r])
	return nil
}

type reduceState struct {
	sums []float64
	task reduceTask
}

func (*reduceKernel) newState() any { return new(reduceState) }

func (k *reduceKernel) run(x *exec, in, out []*graph.Tensor) error {
	t, o := in[0], out[0]
	m, identity, _ := k.mask(in)
	if identity {
		copyData(o, t)
		return nil
	}
	if t.DType == graph.Int64 {
		reduceInt(k.op, o.I64, t.I64, t.Shape, &m)
		return nil
	}
	if k.op == rLogSumExp {
		st := x.state.(*reduceState)
		st.sums = growSlice(st.sums, len(o.F32))
		reduceLogSumExp(o.F32, t.F32, t.Shape, &m, st.sums)
		return nil
	}
	if (k.op == rSum || k.op == rMean) && x.pool != nil && len(t.F32) >= 2*elementsPerTask {
		if st := x.state.(*reduceState); reduceSumPar(x.pool, &st.task, o.F32, t.F32, t.Shape, &m) {
			if k.op == rMean {
				divCount(o.F32, t.Shape, &m)
			}
			return nil
		}
	}
	reduceF32(k.op, o.F32, t.F32, t.Shape, &m)
	return nil
}

// divCount divides the sums d by the number of elements each one summed.
func divCount(d []float32, shape []int64, m *[maxRank]bool) {
	count := float32(1)
	for i, s := range shape {
		if m[i] {
			count *= float32(s)
		}
	}
	for i := range d {
		d[i] /= count
	}
}

// reduceWalk calls f(outIndex, value) for every input element.
func reduceWalk[T number](x []T, shape []int64, m *[maxRank]bool, f func(o int, v T)) {
	r := len(shape)
	var ostr, idx dims
	s := int64(1)
	for i := r - 1; i >= 0; i-- {
		if !m[i] {
			ostr[i] = s
			s *= shape[i]
		}
	}
	o := int64(0)
	for _, v := range x {
		f(int(o), v)
		for j := r - 1; j >= 0; j-- {
			idx[j]++
			o += ostr[j]
			if idx[j] < shape[j] {
				break
			}
			o -= ostr[j] * shape[j]
			idx[j] = 0
		}
	}
}

func reduceInt(op reduceOp, d, x []int64, shape []int64, m *[maxRank]bool) {
	switch op {
	case rSum:
		fill(d, 0)
		reduceWalk(x, shape, m, func(o int, v int64) { d[o] += v })
	case rProd:
		fill(d, 1)
		reduceWalk(x, shape, m, func(o int, v int64) { d[o] *= v })
	case rMax:
		fill(d, math.MinInt64)
		reduceWalk(x, shape, m, func(o int, v int64) { d[o] = max(d[o], v) })
	case rMin:
		fill(d, math.MaxInt64)
		reduceWalk(x, shape, m, func(o int, v int64) { d[o] = min(d[o], v) })
	}
}

func reduceF32(op reduceOp, d, x []float32, shape []int64, m *[maxRank]bool) {
	count := float32(1)
	for i, s := range shape {
		if m[i] {
			count *= float32(s)
		}
	}
	switch op {
	case rSum, rMean:
		if !reduceSumFast(d, x, shape, m, false) {
			fill(d, 0)
			reduceWalk(x, shape, m, func(o int, v float32) { d[o] += v })
		}
		if op == rMean {
			divCount(d, shape, m)
		}
	case rProd:
		fill(d, 1)
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] *= v })
	case rMax:
		fill(d, float32(math.Inf(-1)))
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] = maxF32(d[o], v) })
	case rMin:
		fill(d, float32(math.Inf(1)))
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] = minF32(d[o], v) })
	case rSumSquare, rL2:
		fill(d, 0)
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] += v * v })
		if op == rL2 {
			for i := range d {
				d[i] = float32(math.Sqrt(float64(d[i])))
			}
		}
	case rL1:
		fill(d, 0)
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] += float32(math.Abs(float64(v))) })
	case rLogSum:
		fill(d, 0)
		reduceWalk(x, shape, m, func(o int, v float32) { d[o] += v })
		for i := range d {
			d[i] = logf(d[i])
		}
	case rLogSumExp:
		panic("native: LogSumExp goes through reduceLogSumExp")
	}
}

// reduceLogSumExp computes max + log Σ exp(x − max) per output, with the
// sums in float64 scratch.
func reduceLogSumExp(d, x []float32, shape []int64, m *[maxRank]bool, sums []float64) {
	fill(d, float32(math.Inf(-1)))
	reduceWalk(x, shape, m, func(o int, v float32) { d[o] = max(d[o], v) })
	clear(sums)
	reduceWalk(x, shape, m, func(o int, v float32) {
		if mx := d[o]; !math.IsInf(float64(mx), 0) {
			sums[o] += math.Exp(float64(v - mx))
		}
	})
	for i := range d {
		if !math.IsInf(float64(d[i]), 0) {
			d[i] += float32(math.Log(sums[i]))
		}
	}
}

func init() {
	register("ReduceSum", compileReduce(rSum))
	register("ReduceMean", compileReduce(rMean))
	register("ReduceMax", compileReduce(rMax))
	register("ReduceMin", compileReduce(rMin))
	register("ReduceProd", compileReduce(rProd))
	register("ReduceLogSumExp", compileReduce(rLogSumExp))
	register("ReduceLogSum", compileReduce(rLogSum))
	register("ReduceSumSquare", compileReduce(rSumSquare))
	register("ReduceL1", compileReduce(rL1))
	register("ReduceL2", compileReduce(rL2))
}
