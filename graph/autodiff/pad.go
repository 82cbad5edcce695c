package autodiff

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradPad, "Pad")
}

// padArgs returns Pad's begin and end pads per axis of a rank-r input, when
// they are known at build time.
func (b *builder) padArgs(n *graph.Node, r int) (begin, end []int64, ok bool, err error) {
	var pads []int64
	if b.opset < 11 {
		pads = n.AttrInts("pads", nil)
	} else {
		t := b.consts[n.Input(1)]
		if t == nil {
			return nil, nil, false, nil
		}
		if pads, err = t.AsInt64s(); err != nil {
			return nil, nil, false, err
		}
	}
	axes := allAxes(r)
	if name := n.Input(3); name != "" {
		t := b.consts[name]
		if t == nil {
			return nil, nil, false, nil
		}
		if axes, err = t.AsInt64s(); err != nil {
			return nil, nil, false, err
		}
		axes = normAxes(axes, r)
	}
	if len(pads) != 2*len(axes) {
		return nil, nil, false, fmt.Errorf("pads has %d values for %d axes", len(pads), len(axes))
	}
	begin, end = make([]int64, r), make([]int64, r)
	for i, a := range axes {
		begin[a], end[a] = pads[i], pads[i+len(axes)]
	}
	return begin, end, true, nil
}

// gradPad sends every output position's gradient to the input element it
// copies (none for constant padding): per padded axis a 0/1 matrix product,
// so any mode and negative pads work and the result differentiates again.
// With pads only known at run time, constant padding is undone by Pad with
// the pads negated (cropping what was added, zero-filling what was cropped).
func gradPad(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, g := c.in(0), gout[0]
	res := make([]string, len(c.n.Inputs))
	r, err := b.rank(x)
	if err != nil {
		return nil, err
	}
	mode := c.n.AttrString("mode", "constant")
	begin, end, known, err := b.padArgs(c.n, r)
	if err != nil {
		return nil, err
	}
	gx := g
	switch {
	case known:
		for a := 0; a < r; a++ {
			if begin[a] == 0 && end[a] == 0 {
				continue
			}
			d, err := b.dim(x, a)
			if err != nil {
				return nil, err
			}
			out := d + begin[a] + end[a]
			sel := graph.NewFloat32([]int64{out, d}, nil)
			for j := int64(0); j < out; j++ {
				if s := graph.PadIndex(mode, j, begin[a], end[a], d); s >= 0 {
					sel.F32[j*d+s] = 1
				}
			}
			perm := allAxes(r)
			perm[a], perm[r-1] = perm[r-1], perm[a]
			gx = b.transpose(b.op("MatMul", []string{b.transpose(gx, perm), b.constant(sel)}), perm)
		}
	case mode == "constant":
		in := []string{g, b.neg(c.in(1))}
		if c.in(3) != "" {
			in = append(in, "", c.in(3))
		}
		gx = b.op("Pad", in, graph.StringAttr("mode", "constant"))
	default:
		return nil, fmt.Errorf("the pads of %q padding must be constants", mode)
	}
	if c.wants(0) {
		res[0] = gx
	}
	if c.wants(2) && mode == "constant" {
		// The pad value fills every output position no input element reaches.
		all, kept := b.reduceSum(g, allAxes(r), false), b.reduceSum(gx, allAxes(r), false)
		res[2] = b.reshapeLike(b.sub(all, kept), c.in(2))
	}
	return res, nil
}
