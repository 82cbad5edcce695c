package autodiff

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradResize, "Resize", "Upsample")
}

// resizeMode is what the weights of one resized axis depend on.
type resizeMode struct {
	linear  bool
	coord   string
	nearest string
}

func resizeModeOf(n *graph.Node, opset int64) (resizeMode, error) {
	m := resizeMode{coord: n.AttrString("coordinate_transformation_mode", "half_pixel"),
		nearest: n.AttrString("nearest_mode", "round_prefer_floor")}
	switch mode := n.AttrString("mode", "nearest"); mode {
	case "nearest":
	case "linear", "bilinear", "trilinear":
		m.linear = true
	default:
		return m, fmt.Errorf("no gradient for %s mode %q (nearest and linear have one)", n.OpType, mode)
	}
	if n.AttrInt("antialias", 0) != 0 {
		return m, fmt.Errorf("no gradient for antialiased Resize")
	}
	if n.OpType == "Upsample" || opset < 11 {
		m.coord, m.nearest = "asymmetric", "floor"
	}
	switch m.coord {
	case "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric":
	default:
		return m, fmt.Errorf("no gradient for coordinate_transformation_mode %q", m.coord)
	}
	return m, nil
}

// source maps output coordinate o of an axis resized from in to out
// elements at scale s back into the input, per ONNX's coordinate modes.
func (m resizeMode) source(o, in, out int64, s float64) float64 {
	x := float64(o)
	switch m.coord {
	case "half_pixel":
		return (x+0.5)/s - 0.5
	case "half_pixel_symmetric":
		adj := float64(out) / (s * float64(in))
		center := float64(in) / 2
		return center*(1-adj) + (x+0.5)/s - 0.5
	case "align_corners":
		// the unrounded output length, as ONNX's reference
		if o := s * float64(in); o != 1 {
			return x * float64(in-1) / (o - 1)
		}
		return 0
	case "pytorch_half_pixel":
		if out > 1 {
			return (x+0.5)/s - 0.5
		}
		return 0
	}
	return x / s // asymmetric
}

// weights is the [out, in] matrix W of one axis: y = W·x along that axis.
func (m resizeMode) weights(in, out int64, s float64) *graph.Tensor {
	w := graph.NewFloat32([]int64{out, in}, nil)
	for o := int64(0); o < out; o++ {
		x := m.source(o, in, out, s)
		row := w.F32[o*in : (o+1)*in]
		if !m.linear {
			var i float64
			switch m.nearest {
			case "round_prefer_ceil":
				i = math.Floor(x + 0.5)
			case "floor":
				i = math.Floor(x)
			case "ceil":
				i = math.Ceil(x)
			default: // round_prefer_floor
				i = math.Ceil(x - 0.5)
			}
			row[min(max(int64(i), 0), in-1)] = 1
			continue
		}
		x = min(max(x, 0), float64(in-1))
		i0 := int64(math.Floor(x))
		i1 := min(i0+1, in-1)
		f := float32(x - float64(i0))
		row[i0] += 1 - f
		row[i1] += f
	}
	return w
}

// gradResize applies each resized axis' weight matrix transposed: nearest
// and linear resizing are linear maps, separable over axes.
func gradResize(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	res := make([]string, len(c.n.Inputs))
	if !c.wants(0) {
		return res, nil
	}
	m, err := resizeModeOf(c.n, b.opset)
	if err != nil {
		return nil, err
	}
	x, y := c.in(0), c.n.Outputs[0]
	r, err := b.rank(x)
	if err != nil {
		return nil, err
	}
	sc, sz, attrScales := graph.ResizeArgs(c.n)
	scales := attrScales
	if sz < 0 && sc >= 0 {
		t := b.consts[c.in(sc)]
		if t == nil || t.DType != graph.Float32 {
			return nil, fmt.Errorf("the scales must be a constant")
		}
		scales = t.F32
	}
	axes := c.n.AttrInts("axes", nil)
	if axes == nil {
		axes = allAxes(r)
	}
	axes = normAxes(axes, r)
	g := gout[0]
	for i, a := range axes {
		xs, ys := b.shape(x)[a], b.shape(y)[a]
		if sameDim(xs, ys) && (scales == nil || scales[i] == 1) {
			continue // untouched axis (batch, channels)
		}
		in, err := b.dim(x, int(a))
		if err != nil {
			return nil, err
		}
		out, err := b.dim(y, int(a))
		if err != nil {
			return nil, err
		}
		s := float64(out) / float64(in)
		if scales != nil {
			if i >= len(scales) {
				return nil, fmt.Errorf("%d scales for rank %d", len(scales), r)
			}
			s = float64(scales[i])
		}
		w := m.weights(in, out, s)
		perm := allAxes(r)
		perm[a], perm[r-1] = perm[r-1], perm[a]
		g = b.transpose(b.op("MatMul", []string{b.transpose(g, perm), b.constant(w)}), perm)
	}
	res[0] = g
	return res, nil
}
