package autodiff

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradReduce, "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceLogSumExp",
		"ReduceSumSquare", "ReduceL1", "ReduceL2")
	register(gradSoftmax, "Softmax", "LogSoftmax")
	register(gradInstanceNorm, "InstanceNormalization")
	register(gradLayerNorm, "LayerNormalization")
	register(gradGroupNorm, "GroupNormalization")
	register(gradBatchNorm, "BatchNormalization")
}

// reduced returns a Reduce* node's normalized, sorted axes (nil for an
// identity under noop_with_empty_axes) and x's rank.
func (c *ruleCtx) reduced() (axes []int64, r int, noop bool, err error) {
	b := c.b
	r, err = b.rank(c.in(0))
	if err != nil {
		return nil, 0, false, err
	}
	axes, ok := b.f.ReduceAxes(c.n)
	if !ok {
		return nil, 0, false, errors.New("the axes must be a constant")
	}
	if len(axes) == 0 {
		if c.n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return nil, r, true, nil
		}
		axes = allAxes(r)
	}
	axes = normAxes(axes, r)
	sort.Slice(axes, func(i, j int) bool { return axes[i] < axes[j] })
	return axes, r, false, nil
}

func gradReduce(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, y, g := c.in(0), c.n.Outputs[0], gout[0]
	axes, _, noop, err := c.reduced()
	if err != nil {
		return nil, err
	}
	res := make([]string, len(c.n.Inputs))
	if noop {
		res[0] = g
		return res, nil
	}
	keep := c.n.AttrInt("keepdims", 1) != 0
	gk, yk := g, y
	if !keep {
		gk, yk = b.unsqueeze(g, axes), b.unsqueeze(y, axes)
	}
	zero := b.scalar(0)
	switch c.n.OpType {
	case "ReduceSum":
		res[0] = b.op("Expand", []string{gk, b.shapeOf(x)})
	case "ReduceMean":
		res[0] = b.op("Expand", []string{b.mul(gk, b.inverseCount(x, axes)), b.shapeOf(x)})
	case "ReduceMax", "ReduceMin":
		// Ties share the gradient equally, as torch.amax/amin do.
		hit := b.op("Equal", []string{x, yk})
		cnt := b.reduceSum(b.op("Cast", []string{hit}, graph.IntAttr("to", int64(graph.Float32))), axes, true)
		res[0] = b.where(hit, b.div(gk, cnt), zero)
	case "ReduceLogSumExp":
		res[0] = b.mul(gk, b.un("Exp", b.sub(x, yk)))
	case "ReduceSumSquare":
		res[0] = b.mul(gk, b.mul(x, b.scalar(2)))
	case "ReduceL1":
		res[0] = b.mul(gk, b.un("Sign", x))
	case "ReduceL2":
		res[0] = b.where(b.op("Equal", []string{yk, zero}), zero, b.mul(gk, b.div(x, yk)))
	default:
		return nil, fmt.Errorf("no rule for %s", c.n.OpType)
	}
	return res, nil
}

// inverseCount is 1/(number of elements reduced over axes), a constant when
// the sizes are fixed and computed from Shape otherwise.
func (b *builder) inverseCount(x string, axes []int64) string {
	cnt := int64(1)
	for _, a := range axes {
		d, err := b.dim(x, int(a))
		if err != nil {
			cnt = -1
			break
		}
		cnt *= d
	}
	if cnt > 0 {
		return b.scalar(1 / float64(cnt))
	}
	dims := b.op("Gather", []string{b.shapeOf(x), b.ints(axes...)}, graph.IntAttr("axis", 0))
	prod := b.reduce("ReduceProd", dims, []int64{0}, false)
	return b.op("Reciprocal", []string{b.op("Cast", []string{prod}, graph.IntAttr("to", int64(graph.Float32)))})
}

// softmaxAxes are the axes Softmax normalizes over: one from opset 13, all
// from axis on before (the 2-D coercion).
func (c *ruleCtx) softmaxAxes() ([]int64, error) {
	r, err := c.b.rank(c.in(0))
	if err != nil {
		return nil, err
	}
	if c.b.opset >= 13 {
		a := c.n.AttrInt("axis", -1)
		return normAxes([]int64{a}, r), nil
	}
	a := normAxes([]int64{c.n.AttrInt("axis", 1)}, r)[0]
	var axes []int64
	for i := a; i < int64(r); i++ {
		axes = append(axes, i)
	}
	return axes, nil
}

func gradSoftmax(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	y, g := c.n.Outputs[0], gout[0]
	axes, err := c.softmaxAxes()
	if err != nil {
		return nil, err
	}
	if c.n.OpType == "Softmax" {
		s := b.reduceSum(b.mul(g, y), axes, true)
		return []string{b.mul(y, b.sub(g, s))}, nil
	}
	s := b.reduceSum(g, axes, true)
	return []string{b.sub(g, b.mul(b.un("Exp", y), s))}, nil
}

// decompose differentiates a fused op through an equivalent subgraph of
// primitive ops built by build from the node's inputs: the forward is
// recomputed in primitives (shared by CSE when used twice) and the ordinary
// rules do the rest, so the result is differentiable again.
func (c *ruleCtx) decompose(gout []string, build func(in []string) (string, error)) ([]string, error) {
	b := c.b
	for i := 1; i < len(gout); i++ {
		if gout[i] != "" {
			return nil, fmt.Errorf("only output 0 is differentiable, output %d (%q) has a gradient", i, c.n.Outputs[i])
		}
	}
	start := len(b.g.Nodes)
	out, err := build(c.n.Inputs)
	if err != nil {
		return nil, err
	}
	sub := append([]*graph.Node(nil), b.g.Nodes[start:]...)
	var want []string
	for i, in := range c.n.Inputs {
		if c.wants(i) {
			want = append(want, in)
		}
	}
	active := b.activeSet(sub, want)
	grads, err := b.backprop(sub, map[string]string{out: gout[0]}, active, want)
	if err != nil {
		return nil, err
	}
	res := make([]string, len(c.n.Inputs))
	for i, in := range c.n.Inputs {
		if c.wants(i) {
			res[i] = grads[in]
		}
	}
	return res, nil
}

// normalize is (x − mean)/√(var + eps) over axes (kept).
func (b *builder) normalize(x string, axes []int64, eps float32) string {
	mu := b.reduce("ReduceMean", x, axes, true)
	d := b.sub(x, mu)
	v := b.reduce("ReduceMean", b.mul(d, d), axes, true)
	return b.mul(d, b.un("Reciprocal", b.un("Sqrt", b.add(v, b.scalar(float64(eps))))))
}

// channelAxes are the axes to unsqueeze a per-channel [C] vector by to
// broadcast against [N, C, spatial…] of rank r.
func channelAxes(r int) []int64 {
	var out []int64
	for i := 1; i < r-1; i++ {
		out = append(out, int64(i))
	}
	return out
}

// gradInstanceNorm writes the gradient in closed form. With x̂ = (x − μ)·ρ,
// ρ = 1/√(var + ε) over each instance's spatial axes, y = x̂·s + β:
//
//	∂x = ρ·(s·∂y − mean(s·∂y) − x̂·mean(s·∂y·x̂)),  ∂s = Σ ∂y·x̂,  ∂β = Σ ∂y
//
// (sums over the batch and the spatial axes). That is about half the
// full-size elementwise passes of differentiating the decomposition, and
// none when the scale and shift are the constants 1 and 0 (group norm
// written as InstanceNormalization, as PyTorch exports it) need x̂
// recomputed: it is the output itself. Every op is primitive, so the
// result differentiates again.
func gradInstanceNorm(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	r, err := b.rank(c.in(0))
	if err != nil || r < 3 || gout[0] == "" {
		return gradInstanceNormDecomposed(c, gout)
	}
	x, s, beta, g := c.in(0), c.in(1), c.in(2), gout[0]
	axes, ca := spatialAxes(r-2, 2), channelAxes(r)
	sumAxes := append([]int64{0}, axes...)
	eps := float64(c.n.AttrFloat("epsilon", 1e-5))
	mu := b.reduce("ReduceMean", x, axes, true)
	d := b.sub(x, mu)
	rho := b.un("Reciprocal", b.un("Sqrt", b.add(b.reduce("ReduceMean", b.mul(d, d), axes, true), b.scalar(eps))))
	unitScale := b.constFill(s, 1)
	xh := c.n.Outputs[0]
	if !unitScale || !b.constFill(beta, 0) {
		xh = b.mul(d, rho)
	}
	res := make([]string, len(c.n.Inputs))
	gx := b.mul(g, xh)
	if c.wants(1) {
		res[1] = b.reduceSum(gx, sumAxes, false)
	}
	if c.wants(2) {
		res[2] = b.reduceSum(g, sumAxes, false)
	}
	if c.wants(0) {
		m1 := b.reduce("ReduceMean", g, axes, true)
		m2 := b.reduce("ReduceMean", gx, axes, true)
		sr := rho
		if !unitScale {
			sr = b.mul(b.unsqueeze(s, ca), rho)
		}
		// ρs·∂y − (x̂·(ρs·m2) + ρs·m1), with the small factors folded first.
		res[0] = b.sub(b.mul(g, sr), b.add(b.mul(xh, b.mul(m2, sr)), b.mul(m1, sr)))
	}
	return res, nil
}

// constFill reports whether name is a constant whose every element is v.
func (b *builder) constFill(name string, v float32) bool {
	t := b.consts[name]
	if t == nil || t.DType != graph.Float32 || len(t.F32) == 0 {
		return false
	}
	for _, e := range t.F32 {
		if e != v {
			return false
		}
	}
	return true
}

func gradInstanceNormDecomposed(c *ruleCtx, gout []string) ([]string, error) {
	return c.decompose(gout, func(in []string) (string, error) {
		b := c.b
		r, err := b.rank(in[0])
		if err != nil {
			return "", err
		}
		xh := b.normalize(in[0], spatialAxes(r-2, 2), c.n.AttrFloat("epsilon", 1e-5))
		ca := channelAxes(r)
		return b.add(b.mul(xh, b.unsqueeze(in[1], ca)), b.unsqueeze(in[2], ca)), nil
	})
}

func gradLayerNorm(c *ruleCtx, gout []string) ([]string, error) {
	return c.decompose(gout, func(in []string) (string, error) {
		b := c.b
		r, err := b.rank(in[0])
		if err != nil {
			return "", err
		}
		axis := normAxes([]int64{c.n.AttrInt("axis", -1)}, r)[0]
		var axes []int64
		for i := axis; i < int64(r); i++ {
			axes = append(axes, i)
		}
		y := b.mul(b.normalize(in[0], axes, c.n.AttrFloat("epsilon", 1e-5)), in[1])
		if len(in) > 2 && in[2] != "" {
			y = b.add(y, in[2])
		}
		return y, nil
	})
}

func gradGroupNorm(c *ruleCtx, gout []string) ([]string, error) {
	return c.decompose(gout, func(in []string) (string, error) {
		b := c.b
		x := in[0]
		r, err := b.rank(x)
		if err != nil {
			return "", err
		}
		G := c.n.AttrInt("num_groups", 0)
		C, err := b.dim(x, 1)
		if err != nil {
			return "", err
		}
		if G <= 0 || C%G != 0 {
			return "", fmt.Errorf("%d channels in %d groups", C, G)
		}
		grouped := b.op("Reshape", []string{x, b.ints(0, G, -1)})
		xh := b.reshapeLike(b.normalize(grouped, []int64{2}, c.n.AttrFloat("epsilon", 1e-5)), x)
		perChannel := func(v string) (string, error) {
			n, err := b.dim(v, 0)
			if err != nil {
				return "", err
			}
			if n == G && G != C {
				// opset 18's per-group scale: repeat each entry C/G times.
				v = b.op("Reshape", []string{b.op("Expand", []string{b.unsqueeze(v, []int64{1}), b.ints(G, C/G)}), b.ints(C)})
			}
			return b.unsqueeze(v, channelAxes(r)), nil
		}
		s, err := perChannel(in[1])
		if err != nil {
			return "", err
		}
		sh, err := perChannel(in[2])
		if err != nil {
			return "", err
		}
		return b.add(b.mul(xh, s), sh), nil
	})
}

func gradBatchNorm(c *ruleCtx, gout []string) ([]string, error) {
	if c.n.AttrInt("training_mode", 0) != 0 || len(c.n.Outputs) > 1 {
		return nil, errors.New("only inference-mode BatchNormalization is differentiable")
	}
	return c.decompose(gout, func(in []string) (string, error) {
		b := c.b
		r, err := b.rank(in[0])
		if err != nil {
			return "", err
		}
		ca := channelAxes(r)
		eps := b.scalar(float64(c.n.AttrFloat("epsilon", 1e-5)))
		inv := b.un("Reciprocal", b.un("Sqrt", b.add(b.unsqueeze(in[4], ca), eps)))
		xh := b.mul(b.sub(in[0], b.unsqueeze(in[3], ca)), inv)
		return b.add(b.mul(xh, b.unsqueeze(in[1], ca)), b.unsqueeze(in[2], ca)), nil
	})
}
