package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// cumsumKernel is CumSum: running sums along the axis given by its second
// input, optionally exclusive (each sum leaves its own element out) and/or
// reversed (sums run from the end).
type cumsumKernel struct{ exclusive, reverse bool }

func compileCumSum(c *compileCtx) (kernel, error) {
	n := c.node
	return &cumsumKernel{exclusive: n.AttrInt("exclusive", 0) != 0, reverse: n.AttrInt("reverse", 0) != 0}, nil
}

func cumsumAxis(in []*graph.Tensor) (int64, error) {
	t := arg(in, 1)
	if t == nil {
		return 0, fmt.Errorf("CumSum needs its axis input")
	}
	v, err := t.AsInt64s()
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("CumSum axis must be one integer, got %s %v", t.DType, t.Shape)
	}
	return v[0], nil
}

func (k *cumsumKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	axis, err := cumsumAxis(in)
	if err != nil {
		return err
	}
	if _, _, _, _, err := splitAxis(x.Shape, axis); err != nil {
		return fmt.Errorf("CumSum: %w", err)
	}
	if x.DType != graph.Float32 && x.DType != graph.Int64 {
		return fmt.Errorf("CumSum of %s", x.DType)
	}
	setShape(out[0], x.DType, x.Shape)
	return nil
}

func (k *cumsumKernel) run(_ *exec, in, out []*graph.Tensor) error {
	axis, _ := cumsumAxis(in)
	_, outer, n, inner, _ := splitAxis(in[0].Shape, axis)
	if in[0].DType == graph.Float32 {
		cumsum(out[0].F32, in[0].F32, outer, n, inner, k.exclusive, k.reverse)
	} else {
		cumsum(out[0].I64, in[0].I64, outer, n, inner, k.exclusive, k.reverse)
	}
	return nil
}

func cumsum[T number](d, x []T, outer, n, inner int, exclusive, reverse bool) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			var acc T
			for s := 0; s < n; s++ {
				j := s
				if reverse {
					j = n - 1 - s
				}
				p := base + j*inner
				v := x[p]
				if exclusive {
					d[p] = acc
					acc += v
				} else {
					acc += v
					d[p] = acc
				}
			}
		}
	}
}

func init() {
	register("CumSum", compileCumSum)
}
