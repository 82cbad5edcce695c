package autodiff

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradResize, "Resize", "Upsample")
}

// resizeWeights is the [out, in] matrix W of one axis, y = W·x along it,
// from the taps graph.ResizeMode gives (the native kernel reads the same).
func resizeWeights(m graph.ResizeMode, in, out int64, s float64) *graph.Tensor {
	w := graph.NewFloat32([]int64{out, in}, nil)
	var idx [graph.MaxResizeTaps]int64
	var wt [graph.MaxResizeTaps]float64
	for o := int64(0); o < out; o++ {
		n := m.Taps(o, in, out, s, 0, 1, idx[:], wt[:])
		for k := 0; k < n; k++ {
			w.F32[o*in+idx[k]] += float32(wt[k])
		}
	}
	return w
}

// gradResize applies each resized axis' weight matrix transposed: nearest,
// linear and cubic resizing are linear maps, separable over axes.
func gradResize(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	res := make([]string, len(c.n.Inputs))
	if !c.wants(0) {
		return res, nil
	}
	m, err := graph.ResizeModeOf(c.n, b.opset)
	if err != nil {
		return nil, err
	}
	if c.n.AttrInt("antialias", 0) != 0 || m.Coord == "tf_crop_and_resize" {
		return nil, fmt.Errorf("no gradient for antialiased or tf_crop_and_resize Resize")
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
		w := resizeWeights(m, in, out, s)
		perm := allAxes(r)
		perm[a], perm[r-1] = perm[r-1], perm[a]
		g = b.transpose(b.op("MatMul", []string{b.transpose(g, perm), b.constant(w)}), perm)
	}
	res[0] = g
	return res, nil
}
