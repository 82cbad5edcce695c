package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// argKernel is ArgMax and ArgMin: the index of the first (or, with
// select_last_index, the last) extreme element along an axis, as int64.
type argKernel struct {
	max, last, keep bool
	axis            int64
}

func compileArg(isMax bool) opFunc {
	return func(c *compileCtx) (kernel, error) {
		n := c.node
		return &argKernel{max: isMax, last: n.AttrInt("select_last_index", 0) != 0,
			keep: n.AttrInt("keepdims", 1) != 0, axis: n.AttrInt("axis", 0)}, nil
	}
}

// split returns the normalised axis and the outer, axis and inner sizes.
func splitAxis(shape []int64, axis int64) (a int, outer, n, inner int, err error) {
	r := int64(len(shape))
	if axis < -r || axis >= r {
		return 0, 0, 0, 0, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += r
	}
	a = int(axis)
	outer, inner = int(prod(shape[:a])), int(prod(shape[a+1:]))
	return a, outer, int(shape[a]), inner, nil
}

func (k *argKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	a, _, n, _, err := splitAxis(x.Shape, k.axis)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s over an empty axis", map[bool]string{true: "ArgMax", false: "ArgMin"}[k.max])
	}
	if x.DType != graph.Float32 && x.DType != graph.Int64 {
		return fmt.Errorf("arg-reduction of %s", x.DType)
	}
	var sh dims
	r := 0
	for i, d := range x.Shape {
		switch {
		case i != a:
			sh[r] = d
		case k.keep:
			sh[r] = 1
		default:
			continue
		}
		r++
	}
	setShape(out[0], graph.Int64, sh[:r])
	return nil
}

func (k *argKernel) run(_ *exec, in, out []*graph.Tensor) error {
	_, outer, n, inner, _ := splitAxis(in[0].Shape, k.axis)
	if in[0].DType == graph.Float32 {
		argIndex(out[0].I64, in[0].F32, outer, n, inner, k.max, k.last)
	} else {
		argIndex(out[0].I64, in[0].I64, outer, n, inner, k.max, k.last)
	}
	return nil
}

func argIndex[T number](d []int64, x []T, outer, n, inner int, isMax, last bool) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			best, bi := x[base], 0
			for j := 1; j < n; j++ {
				v := x[base+j*inner]
				better := v < best
				if isMax {
					better = v > best
				}
				if better || (last && v == best) {
					best, bi = v, j
				}
			}
			d[o*inner+i] = int64(bi)
		}
	}
}

func init() {
	register("ArgMax", compileArg(true))
	register("ArgMin", compileArg(false))
}
