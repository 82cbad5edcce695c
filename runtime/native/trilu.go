package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// triluKernel is Trilu: keeps the upper (j−i ≥ k) or lower (j−i ≤ k)
// triangle of the last two axes and zeroes the rest; k is the optional
// second input.
type triluKernel struct{ upper bool }

func triluK(in []*graph.Tensor) (int64, error) {
	t := arg(in, 1)
	if t == nil {
		return 0, nil
	}
	if t.DType != graph.Int64 || len(t.I64) != 1 {
		return 0, fmt.Errorf("Trilu k must be one int64, got %s %v", t.DType, t.Shape)
	}
	return t.I64[0], nil
}

func (k *triluKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if len(x.Shape) < 2 {
		return fmt.Errorf("Trilu needs rank ≥ 2, got %v", x.Shape)
	}
	if _, err := triluK(in); err != nil {
		return err
	}
	setShape(out[0], x.DType, x.Shape)
	return nil
}

func (k *triluKernel) run(_ *exec, in, out []*graph.Tensor) error {
	kk, _ := triluK(in)
	x := in[0]
	r := len(x.Shape)
	rows, cols := x.Shape[r-2], x.Shape[r-1]
	switch x.DType {
	case graph.Float32:
		trilu(data[float32](out[0]), data[float32](x), rows, cols, kk, k.upper)
	case graph.Int64:
		trilu(data[int64](out[0]), data[int64](x), rows, cols, kk, k.upper)
	default:
		trilu(data[bool](out[0]), data[bool](x), rows, cols, kk, k.upper)
	}
	return nil
}

func trilu[T elem](d, x []T, rows, cols, k int64, upper bool) {
	var zero T
	mat := rows * cols
	for b := int64(0); b*mat < int64(len(x)); b++ {
		for i := int64(0); i < rows; i++ {
			for j := int64(0); j < cols; j++ {
				p := b*mat + i*cols + j
				keep := j-i <= k
				if upper {
					keep = j-i >= k
				}
				if keep {
					d[p] = x[p]
				} else {
					d[p] = zero
				}
			}
		}
	}
}

func init() {
	register("Trilu", func(c *compileCtx) (kernel, error) {
		return &triluKernel{upper: c.node.AttrInt("upper", 1) != 0}, nil
	})
}
