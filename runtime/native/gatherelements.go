package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// gatherElementsKernel is GatherElements: out[i…] = data[i… with the axis
// coordinate replaced by indices[i…]]; the output has the indices' shape,
// negative indices count from the end.
type gatherElementsKernel struct{ axis int64 }

func (k *gatherElementsKernel) infer(in, out []*graph.Tensor) error {
	x, idx := in[0], in[1]
	if idx.DType != graph.Int64 {
		return fmt.Errorf("GatherElements indices must be int64, got %s", idx.DType)
	}
	if len(idx.Shape) != len(x.Shape) {
		return fmt.Errorf("GatherElements indices have rank %d, data %d", len(idx.Shape), len(x.Shape))
	}
	a, _, _, _, err := splitAxis(x.Shape, k.axis)
	if err != nil {
		return fmt.Errorf("GatherElements: %w", err)
	}
	for i, d := range idx.Shape {
		if i != a && d > x.Shape[i] {
			return fmt.Errorf("GatherElements indices dimension %d is %d, data's is %d", i, d, x.Shape[i])
		}
	}
	setShape(out[0], x.DType, idx.Shape)
	return nil
}

func (k *gatherElementsKernel) run(_ *exec, in, out []*graph.Tensor) error {
	x, idx := in[0], in[1]
	a, _, _, _, _ := splitAxis(x.Shape, k.axis)
	switch x.DType {
	case graph.Float32:
		return gatherElements(data[float32](out[0]), data[float32](x), x.Shape, idx.I64, idx.Shape, a)
	case graph.Int64:
		return gatherElements(data[int64](out[0]), data[int64](x), x.Shape, idx.I64, idx.Shape, a)
	default:
		return gatherElements(data[bool](out[0]), data[bool](x), x.Shape, idx.I64, idx.Shape, a)
	}
}

func gatherElements[T elem](d, x []T, xShape []int64, idx []int64, iShape []int64, axis int) error {
	r := len(xShape)
	var stride dims
	st := int64(1)
	for i := r - 1; i >= 0; i-- {
		stride[i] = st
		st *= xShape[i]
	}
	var pos dims
	n := xShape[axis]
	for o := range d {
		j := idx[o]
		if j < -n || j >= n {
			return fmt.Errorf("GatherElements index %d out of range for axis of size %d", j, n)
		}
		if j < 0 {
			j += n
		}
		off := j * stride[axis]
		for i := 0; i < r; i++ {
			if i != axis {
				off += pos[i] * stride[i]
			}
		}
		d[o] = x[off]
		for i := r - 1; i >= 0; i-- {
			pos[i]++
			if pos[i] < iShape[i] {
				break
			}
			pos[i] = 0
		}
	}
	return nil
}

func init() {
	register("GatherElements", func(c *compileCtx) (kernel, error) {
		return &gatherElementsKernel{axis: c.node.AttrInt("axis", 0)}, nil
	})
}
