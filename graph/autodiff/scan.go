package autodiff

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// Rules for CumSum, Trilu and GatherElements: the linear index and scan
// ops PyTorch exports emit beside the research architectures' layers.
func init() {
	register(gradCumSum, "CumSum")
	register(gradTrilu, "Trilu")
	register(gradGatherElements, "GatherElements")
}

// gradCumSum: the transpose of a running sum is the running sum the other
// way (exclusive stays exclusive).
func gradCumSum(c *ruleCtx, gout []string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	rev := int64(1)
	if c.n.AttrInt("reverse", 0) != 0 {
		rev = 0
	}
	res[0] = c.b.op("CumSum", []string{gout[0], c.in(1)}, graph.IntAttr("exclusive", c.n.AttrInt("exclusive", 0)),
		graph.IntAttr("reverse", rev))
	return res, nil
}

// gradTrilu: the mask is its own transpose.
func gradTrilu(c *ruleCtx, gout []string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	in := []string{gout[0]}
	if c.in(1) != "" {
		in = append(in, c.in(1))
	}
	res[0] = c.b.op("Trilu", in, graph.IntAttr("upper", c.n.AttrInt("upper", 1)))
	return res, nil
}

// gradGatherElements adds each gradient element into the data position it
// was read from, with a one-hot mask along the axis (repeated indices add).
func gradGatherElements(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, idx := c.in(0), c.in(1)
	res := make([]string, len(c.n.Inputs))
	r, err := b.rank(x)
	if err != nil {
		return nil, err
	}
	a := c.n.AttrInt("axis", 0)
	if a < 0 {
		a += int64(r)
	}
	d, err := b.dim(x, int(a))
	if err != nil {
		return nil, err
	}
	xs, is := b.shape(x), b.shape(idx)
	if len(is) != r {
		return nil, fmt.Errorf("the indices' rank must be known")
	}
	// Off the axis the indices may be shorter than the data (PyTorch's
	// gather allows it): the rest of the data gets no gradient. Where a size
	// is unknown on either side they are taken to agree.
	var padEnd []int64
	for i := 0; i < r; i++ {
		e := int64(0)
		if int64(i) != a && xs[i].Known() && is[i].Known() {
			if e = xs[i].Value - is[i].Value; e < 0 {
				return nil, fmt.Errorf("the indices are larger than the data off the axis (data %v, indices %v)", xs, is)
			}
		}
		padEnd = append(padEnd, e)
	}
	iota := make([]int64, d)
	for i := range iota {
		iota[i] = int64(i)
	}
	ix := idx
	ix = b.where(b.op("Less", []string{ix, b.constant(graph.ScalarInt64(0))}), b.add(ix, b.constant(graph.ScalarInt64(d))), ix)
	hot := b.op("Cast", []string{b.op("Equal", []string{b.unsqueeze(ix, []int64{int64(r)}), b.constant(graph.NewInt64([]int64{d}, iota))})},
		graph.IntAttr("to", int64(graph.Float32)))
	summed := b.reduceSum(b.mul(b.unsqueeze(gout[0], []int64{int64(r)}), hot), []int64{a}, false)
	perm := make([]int64, 0, r)
	for i := int64(0); i < a; i++ {
		perm = append(perm, i)
	}
	perm = append(perm, int64(r-1))
	for i := a; i < int64(r-1); i++ {
		perm = append(perm, i)
	}
	g := b.transpose(summed, perm)
	for _, e := range padEnd {
		if e != 0 {
			g = b.op("Pad", []string{g, b.ints(append(make([]int64, r), padEnd...)...)}, graph.StringAttr("mode", "constant"))
			break
		}
	}
	res[0] = g
	return res, nil
}
