package graph

import (
	"fmt"
	"math"
)

// ResizeArgs returns which inputs of a Resize or Upsample node hold the
// scales and the sizes (−1: none), and the scales attribute of Upsample-7.
func ResizeArgs(n *Node) (scalesIn, sizesIn int, scalesAttr []float32) {
	scalesIn, sizesIn = -1, -1
	switch {
	case n.OpType == "Upsample" && n.Attr("scales") != nil:
		return -1, -1, n.AttrFloats("scales", nil)
	case len(n.Inputs) == 2: // Resize-10, Upsample-9: X, scales
		return 1, -1, nil
	}
	if n.Input(2) != "" {
		scalesIn = 2
	}
	if n.Input(3) != "" {
		sizesIn = 3
	}
	return scalesIn, sizesIn, nil
}

// ResizeOutDims derives a resize's output dimensions from its input's and
// the known scales or sizes (one entry per input axis, or per axis of the
// axes attribute). A dimension with scale 1 keeps its (possibly symbolic)
// size; unknown ones come back as Unknown.
func ResizeOutDims(n *Node, x Shape, scales []float32, sizes []Dim) (Shape, error) {
	r := len(x)
	axes := n.AttrInts("axes", nil)
	if axes == nil {
		for i := 0; i < r; i++ {
			axes = append(axes, int64(i))
		}
	}
	out := append(Shape(nil), x...)
	if n.AttrString("keep_aspect_ratio_policy", "stretch") != "stretch" && sizes != nil {
		for _, a := range axes {
			out[(a+int64(r))%int64(r)] = Unknown
		}
		return out, nil
	}
	for i, a := range axes {
		if a < 0 {
			a += int64(r)
		}
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("resize axis %d out of range", axes[i])
		}
		switch {
		case sizes != nil:
			if i >= len(sizes) {
				return nil, fmt.Errorf("%d sizes for %d axes", len(sizes), len(axes))
			}
			out[a] = sizes[i]
		case scales != nil:
			if i >= len(scales) {
				return nil, fmt.Errorf("%d scales for %d axes", len(scales), len(axes))
			}
			s := scales[i]
			switch {
			case s == 1:
			case x[a].Known():
				out[a] = Dim{Value: int64(math.Floor(float64(x[a].Value) * float64(s)))}
			default:
				out[a] = Unknown
			}
		default:
			out[a] = Unknown
		}
	}
	return out, nil
}

// inferResize reads the sizes through their symbolic value, so that
// Resize(x, sizes=Concat(Shape(x)[:2], [16, 16])) keeps x's batch symbol.
func (b *Facts) inferResize(n *Node, ins []*Fact) ([]*Fact, error) {
	x := in0(ins)
	if !x.HasShape {
		return []*Fact{{DType: x.DType}}, nil
	}
	sc, sz, scales := ResizeArgs(n)
	var sizes []Dim
	switch {
	case sz >= 0 && sz < len(ins) && ins[sz] != nil && ins[sz].Value != nil:
		sizes = ins[sz].Value
	case sz >= 0:
	case sc >= 0:
		if t := b.Consts[n.Input(sc)]; t != nil && t.DType == Float32 {
			scales = t.F32
		}
	}
	s, err := ResizeOutDims(n, x.Shape, scales, sizes)
	if err != nil {
		return nil, err
	}
	return []*Fact{ranked(x.DType, s)}, nil
}

func init() {
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferResize(n, ins) }, "Resize", "Upsample")
}
