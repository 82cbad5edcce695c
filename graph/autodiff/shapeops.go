package autodiff

import (
	"errors"
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradReshapeLike, "Reshape", "Flatten", "Squeeze", "Unsqueeze")
	register(gradTranspose, "Transpose")
	register(gradExpand, "Expand")
	register(gradTile, "Tile")
	register(gradConcat, "Concat")
	register(gradSplit, "Split")
	register(gradSlice, "Slice")
	register(gradGather, "Gather")
}

func gradReshapeLike(c *ruleCtx, gout []string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		res[0] = c.b.reshapeLike(gout[0], c.in(0))
	}
	return res, nil
}

func gradTranspose(c *ruleCtx, gout []string) ([]string, error) {
	r, err := c.b.rank(c.in(0))
	if err != nil {
		return nil, err
	}
	perm := c.n.AttrInts("perm", nil)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	inv := make([]int64, r)
	for i, p := range perm {
		inv[p] = int64(i)
	}
	return []string{c.b.transpose(gout[0], inv)}, nil
}

func gradExpand(c *ruleCtx, gout []string) ([]string, error) {
	g, err := c.b.unbroadcast(gout[0], c.in(0))
	return []string{g, ""}, err
}

// gradTile folds each tiled axis into (repeats, size) and sums the repeats.
func gradTile(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	t := b.consts[c.in(1)]
	if t == nil {
		return nil, errors.New("the repeats must be a constant")
	}
	xs := b.shape(c.in(0))
	if xs == nil {
		return nil, errors.New("the input's rank must be known")
	}
	var target, axes []int64
	unknown := 0
	for i, d := range xs {
		size := int64(-1)
		if d.Known() {
			size = d.Value
		} else {
			unknown++
		}
		target = append(target, t.I64[i], size)
		axes = append(axes, int64(2*i))
	}
	if unknown > 1 {
		return nil, fmt.Errorf("at most one input dimension may be unknown, have %v", xs)
	}
	folded := b.op("Reshape", []string{gout[0], b.ints(target...)})
	return []string{b.reshapeLike(b.reduceSum(folded, axes, false), c.in(0)), ""}, nil
}

func gradConcat(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	r, err := b.rank(c.in(0))
	if err != nil {
		return nil, err
	}
	axis := c.n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	res := make([]string, len(c.n.Inputs))
	off := int64(0)
	for i, in := range c.n.Inputs {
		d, err := b.dim(in, int(axis))
		if err != nil {
			return nil, fmt.Errorf("Concat input sizes along axis %d must be known: %w", axis, err)
		}
		if c.wants(i) {
			res[i] = b.slice(gout[0], []int64{off}, []int64{off + d}, []int64{axis}, nil)
		}
		off += d
	}
	return res, nil
}

func gradSplit(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	r, err := b.rank(c.in(0))
	if err != nil {
		return nil, err
	}
	axis := c.n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	parts := make([]string, len(gout))
	for i, g := range gout {
		if g == "" {
			g = b.zerosLike(c.n.Outputs[i])
		}
		parts[i] = g
	}
	res := make([]string, len(c.n.Inputs))
	res[0] = b.op("Concat", parts, graph.IntAttr("axis", axis))
	return res, nil
}

// gradSlice puts ∂y back where the slice took it, one sliced axis at a time,
// by multiplying with a 0/1 selection matrix along that axis: no Pad or
// Scatter needed, any steps, and the result is differentiable again.
func gradSlice(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x := c.in(0)
	r, err := b.rank(x)
	if err != nil {
		return nil, err
	}
	starts, ends, axes, steps, ok := b.f.SliceArgs(c.n, r)
	if !ok {
		return nil, errors.New("the slice arguments must be constants")
	}
	g := gout[0]
	for k, a := range axes {
		d, err := b.dim(x, int(a))
		if err != nil {
			if starts[k] == 0 && ends[k] >= 1<<31 && steps[k] == 1 {
				continue // the whole axis
			}
			return nil, err
		}
		st, cnt := graph.SliceRange(starts[k], ends[k], steps[k], d)
		if st == 0 && cnt == d && steps[k] == 1 {
			continue
		}
		sel := graph.NewFloat32([]int64{cnt, d}, nil)
		for i := int64(0); i < cnt; i++ {
			sel.F32[i*d+st+i*steps[k]] = 1
		}
		perm := allAxes(r)
		perm[a], perm[r-1] = perm[r-1], perm[a]
		moved := b.transpose(g, perm)
		g = b.transpose(b.op("MatMul", []string{moved, b.constant(sel)}), perm)
	}
	res := make([]string, len(c.n.Inputs))
	res[0] = g
	return res, nil
}

// gradGather adds ∂y rows into a zero table with a one-hot matrix product.
func gradGather(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	data, idx := c.in(0), c.in(1)
	res := make([]string, len(c.n.Inputs))
	if !c.wants(0) {
		return res, nil
	}
	r, err := b.rank(data)
	if err != nil {
		return nil, err
	}
	q, err := b.rank(idx)
	if err != nil {
		return nil, err
	}
	axis := c.n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	d, err := b.dim(data, int(axis))
	if err != nil {
		return nil, err
	}
	iota := make([]int64, d)
	for i := range iota {
		iota[i] = int64(i)
	}
	ix := idx
	if b.dtype(idx) != graph.Int64 {
		ix = b.op("Cast", []string{idx}, graph.IntAttr("to", int64(graph.Int64)))
	}
	// Negative indices count from the end.
	ix = b.where(b.op("Less", []string{ix, b.constant(graph.ScalarInt64(0))}), b.add(ix, b.constant(graph.ScalarInt64(d))), ix)
	oneHot := b.op("Cast", []string{b.op("Equal", []string{b.unsqueeze(ix, []int64{int64(q)}), b.constant(graph.NewInt64([]int64{d}, iota))})},
		graph.IntAttr("to", int64(graph.Float32)))
	// ∂y has axes data[:axis] ++ idx ++ data[axis+1:]; bring idx to the front.
	perm := make([]int64, 0, r-1+q)
	for i := 0; i < q; i++ {
		perm = append(perm, axis+int64(i))
	}
	for i := int64(0); i < axis; i++ {
		perm = append(perm, i)
	}
	for i := axis + int64(q); i < int64(r-1+q); i++ {
		perm = append(perm, i)
	}
	gt := b.transpose(gout[0], perm)
	restCount := int64(1)
	for i := 0; i < r; i++ {
		if int64(i) == axis {
			continue
		}
		di, err := b.dim(data, i)
		if err != nil {
			restCount = -1
			break
		}
		restCount *= di
	}
	target := []int64{-1, restCount}
	if restCount < 0 {
		if target[0] = b.countOf(idx); target[0] < 0 {
			return nil, errors.New("the gradient needs the table's or the indices' shape to be fixed")
		}
	}
	gflat := b.op("Reshape", []string{gt, b.ints(target...)})
	hot := b.op("Reshape", []string{oneHot, b.ints(-1, d)})
	table := b.op("MatMul", []string{b.transpose(hot, []int64{1, 0}), gflat}) // [d, rest]
	// Unfold to [d, data[:axis]…, data[axis+1:]…] and move d back to axis.
	rest := []string{b.ints(d)}
	sh := b.shapeOf(data)
	if axis > 0 {
		rest = append(rest, b.slice(sh, []int64{0}, []int64{axis}, []int64{0}, nil))
	}
	if axis+1 < int64(r) {
		rest = append(rest, b.slice(sh, []int64{axis + 1}, []int64{int64(r)}, []int64{0}, nil))
	}
	shape := rest[0]
	if len(rest) > 1 {
		shape = b.op("Concat", rest, graph.IntAttr("axis", 0))
	}
	unf := b.op("Reshape", []string{table, shape})
	back := make([]int64, r)
	for i := range back {
		switch {
		case int64(i) < axis:
			back[i] = int64(i + 1)
		case int64(i) == axis:
			back[i] = 0
		default:
			back[i] = int64(i)
		}
	}
	res[0] = b.transpose(unf, back)
	return res, nil
}

// countOf is the number of elements of x when it is fixed, else −1 (so a
// Reshape infers it).
func (b *builder) countOf(x string) int64 {
	dims, ok := b.staticDims(x)
	if !ok {
		return -1
	}
	return graph.NumElements(dims)
}
