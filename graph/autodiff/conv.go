package autodiff

import (
	"errors"
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// geom is a node's resolved window geometry (graph.Window, the one place
// that computes it).
type geom = graph.Window

func windowAttrs(g geom, withKernel bool) []*graph.Attribute {
	out := []*graph.Attribute{
		graph.IntsAttr("strides", g.Strides...),
		graph.IntsAttr("dilations", g.Dilations...),
		graph.IntsAttr("pads", append(append([]int64(nil), g.PadBegin...), g.PadEnd...)...),
	}
	if withKernel {
		out = append(out, graph.IntsAttr("kernel_shape", g.Kernel...))
	}
	return out
}

func spatialAxes(k int, from int) []int64 {
	out := make([]int64, 0, k+1)
	if from == 0 {
		out = append(out, 0)
	}
	for i := 0; i < k; i++ {
		out = append(out, int64(i+2))
	}
	return out
}

// swap01 exchanges the first two axes.
func swap01(r int) []int64 {
	p := allAxes(r)
	p[0], p[1] = 1, 0
	return p
}

func (c *ruleCtx) geom() (geom, error) {
	b := c.b
	xs := b.shape(c.in(0))
	if xs == nil || len(xs) < 3 {
		return geom{}, errors.New("the input's rank must be known and at least 3")
	}
	var w *vinfo
	if c.in(1) != "" {
		w = b.info[c.in(1)]
	}
	g, err := graph.WindowOf(c.n, xs, w)
	if err != nil {
		return g, err
	}
	if err := g.Static(); err != nil {
		return g, fmt.Errorf("the gradient needs known spatial sizes: %w", err)
	}
	return g, nil
}

func gradConv(c *ruleCtx, gout []string) ([]string, error) {
	b, gy := c.b, gout[0]
	g, err := c.geom()
	if err != nil {
		return nil, err
	}
	k := len(g.In)
	x, w := c.in(0), c.in(1)
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		if dx, ok := b.convDataGrad(gy, w, g); ok {
			res[0] = dx
		}
	}
	if c.wants(0) && res[0] == "" {
		op := make([]int64, k)
		for i := range op {
			op[i] = g.In[i] - (g.Strides[i]*(g.Out[i]-1) + g.Dilations[i]*(g.Kernel[i]-1) + 1 - g.PadBegin[i] - g.PadEnd[i])
		}
		attrs := append(windowAttrs(g, true), graph.IntAttr("group", g.Group), graph.IntsAttr("output_padding", op...))
		res[0] = b.op("ConvTranspose", []string{gy, w}, attrs...)
	}
	if c.wants(1) {
		if dw, ok := b.convWeightGrad(x, gy, g); ok {
			res[1] = dw
		}
	}
	if c.wants(1) && res[1] == "" {
		xt := b.transpose(x, swap01(k+2))
		gt := b.transpose(gy, swap01(k+2))
		dw, err := b.correlate(xt, gt, g, g.Kernel)
		if err != nil {
			return nil, err
		}
		res[1] = dw
	}
	if c.wants(2) {
		res[2] = b.reduceSum(gy, spatialAxes(k, 0), false)
	}
	return res, nil
}

// convDataGrad is Conv's input gradient for unit strides as a Conv of ∂y
// with the kernel flipped and its channel axes exchanged (per group), padded
// by the kernel extent less the forward padding. It is the same sum as
// ConvTranspose(∂y, w), but backends run Conv as one im2col GEMM while
// ConvTranspose needs a col2im scatter, which onnxruntime runs at half
// Conv's speed. ok is false where the geometry does not allow it (strides,
// padding wider than the kernel, weight channels unknown).
func (b *builder) convDataGrad(gy, w string, g geom) (dx string, ok bool) {
	k := len(g.In)
	pads := make([]int64, 2*k)
	for i := 0; i < k; i++ {
		ext := g.Dilations[i]*(g.Kernel[i]-1) + 1
		if g.Strides[i] != 1 || g.PadBegin[i] > ext-1 || g.PadEnd[i] > ext-1 {
			return "", false
		}
		pads[i], pads[k+i] = ext-1-g.PadBegin[i], ext-1-g.PadEnd[i]
	}
	ws, known := b.staticDims(w)
	if !known || len(ws) != k+2 || ws[0]%g.Group != 0 {
		return "", false
	}
	cout, cinG, G := ws[0], ws[1], g.Group
	starts, ends, axes, steps := make([]int64, k), make([]int64, k), make([]int64, k), make([]int64, k)
	for i := 0; i < k; i++ {
		starts[i], ends[i], axes[i], steps[i] = -1, -(ws[i+2] + 1), int64(i+2), -1
	}
	wf := b.slice(w, starts, ends, axes, steps)
	if G == 1 {
		wf = b.transpose(wf, swap01(k+2))
	} else {
		// [G·M, C/G, k…] → [G, M, C/G, k…] → [G, C/G, M, k…] → [C, M, k…].
		grouped := append([]int64{G, cout / G, cinG}, ws[2:]...)
		perm := append([]int64{0, 2, 1}, allAxes(k + 3)[3:]...)
		wf = b.transpose(b.op("Reshape", []string{wf, b.ints(grouped...)}), perm)
		wf = b.op("Reshape", []string{wf, b.ints(append([]int64{G * cinG, cout / G}, ws[2:]...)...)})
	}
	return b.op("Conv", []string{gy, wf},
		graph.IntsAttr("kernel_shape", ws[2:]...),
		graph.IntsAttr("dilations", g.Dilations...),
		graph.IntsAttr("pads", pads...),
		graph.IntAttr("group", G)), true
}

// convWeightGrad is Conv's weight gradient as im2col and one matrix product
// per kernel offset: the input positions that offset reads, channels first
// ([C, N·P]), times the output gradient at the positions that read them,
// channels last ([N·P, M]) — the sum over the batch is the product's own
// reduction, so no batched product and no ReduceSum over samples. The Conv
// that correlate writes instead has the whole image as its kernel and a 3×3
// output, a shape no GEMM-based Conv runs well (onnxruntime: a third of the
// step's time). Windows reaching into the padding are cropped rather than
// padded, so that no Pad is needed. ok is false for grouped convolutions,
// offsets that read no input and output gradients of unknown channels.
func (b *builder) convWeightGrad(x, gy string, g geom) (dw string, ok bool) {
	k := len(g.In)
	if g.Group != 1 {
		return "", false
	}
	K := int64(1)
	for _, kk := range g.Kernel {
		K *= kk
	}
	m, err := b.dim(gy, 1)
	if err != nil {
		return "", false
	}
	// x with channels first, [C, N, in…]; ∂y with channels last,
	// [N, out…, M]; both sliced per offset below.
	perm := []int64{0}
	for i := 0; i < k; i++ {
		perm = append(perm, int64(i+2))
	}
	gyt := b.transpose(gy, append(perm, 1))
	xt := b.transpose(x, swap01(k+2))
	off := make([]int64, k)
	var parts []string
	for j := int64(0); j < K; j++ {
		var xs, xe, xa, xst, ys, ye, ya []int64
		for i := 0; i < k; i++ {
			s, t := g.Strides[i], off[i]*g.Dilations[i]-g.PadBegin[i]
			lo := max(0, ceilDiv(-t, s))
			hi := min(g.Out[i]-1, floorDiv(g.In[i]-1-t, s))
			if hi < lo {
				return "", false
			}
			if st, en := lo*s+t, hi*s+t+1; st != 0 || en != g.In[i] || s != 1 {
				xs, xe, xa, xst = append(xs, st), append(xe, en), append(xa, int64(i+2)), append(xst, s)
			}
			if lo != 0 || hi != g.Out[i]-1 {
				ys, ye, ya = append(ys, lo), append(ye, hi+1), append(ya, int64(i+1))
			}
		}
		xj, yj := xt, gyt
		if len(xa) > 0 {
			xj = b.slice(xt, xs, xe, xa, xst)
		}
		if len(ya) > 0 {
			yj = b.slice(gyt, ys, ye, ya, nil)
		}
		xj = b.op("Reshape", []string{xj, b.ints(0, -1)}) // [C, N·P]
		yj = b.op("Reshape", []string{yj, b.ints(-1, m)}) // [N·P, M]
		parts = append(parts, b.op("MatMul", []string{xj, yj}))
		for i := k - 1; i >= 0; i-- {
			off[i]++
			if off[i] < g.Kernel[i] {
				break
			}
			off[i] = 0
		}
	}
	// [C, K·M] → [C, K, M] → [M, C, K] → [M, C, kernel…].
	all := parts[0]
	if len(parts) > 1 {
		all = b.op("Concat", parts, graph.IntAttr("axis", 1))
	}
	r := b.op("Reshape", []string{all, b.ints(0, K, -1)})
	r = b.transpose(r, []int64{2, 0, 1})
	return b.op("Reshape", []string{r, b.ints(append([]int64{0, 0}, g.Kernel...)...)}), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// correlate computes, for each group, Conv(a [Ca, N, A…], f [Cf, N, F…])
// with the strides and dilations exchanged, crops to kernel and swaps the
// first two axes: the weight gradient of Conv (a = x, f = ∂y) and of
// ConvTranspose (a = ∂y, f = x). Result [Cf, Ca/…, kernel…] concatenated over
// groups on axis 0.
func (b *builder) correlate(a, f string, g geom, kernel []int64) (string, error) {
	k := len(kernel)
	G := g.Group
	var ca, cf int64
	if G > 1 {
		var err error
		if ca, err = b.dim(a, 0); err != nil {
			return "", err
		}
		if cf, err = b.dim(f, 0); err != nil {
			return "", err
		}
		if ca%G != 0 || cf%G != 0 {
			return "", fmt.Errorf("channels %d and %d not divisible by group %d", ca, cf, G)
		}
	}
	var parts []string
	for gi := int64(0); gi < G; gi++ {
		ag, fg := a, f
		if G > 1 {
			ag = b.slice(a, []int64{gi * ca / G}, []int64{(gi + 1) * ca / G}, []int64{0}, nil)
			fg = b.slice(f, []int64{gi * cf / G}, []int64{(gi + 1) * cf / G}, []int64{0}, nil)
		}
		r := b.op("Conv", []string{ag, fg},
			graph.IntsAttr("strides", g.Dilations...),
			graph.IntsAttr("dilations", g.Strides...),
			graph.IntsAttr("pads", append(append([]int64(nil), g.PadBegin...), g.PadEnd...)...))
		// The correlation may run past the kernel when the input has a
		// remainder the forward strides skipped; crop it.
		rs := b.shape(r)
		var ends, axes []int64
		for i := 0; i < k; i++ {
			if rs == nil || !rs[i+2].Known() || rs[i+2].Value != kernel[i] {
				ends = append(ends, kernel[i])
				axes = append(axes, int64(i+2))
			}
		}
		if len(axes) > 0 {
			r = b.slice(r, make([]int64, len(axes)), ends, axes, nil)
		}
		parts = append(parts, b.transpose(r, swap01(k+2)))
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return b.op("Concat", parts, graph.IntAttr("axis", 0)), nil
}

func gradConvTranspose(c *ruleCtx, gout []string) ([]string, error) {
	b, gy := c.b, gout[0]
	g, err := c.geom()
	if err != nil {
		return nil, err
	}
	k := len(g.In)
	x, w := c.in(0), c.in(1)
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		for i := range g.In {
			if got := (g.Out[i]+g.PadBegin[i]+g.PadEnd[i]-g.Dilations[i]*(g.Kernel[i]-1)-1)/g.Strides[i] + 1; got != g.In[i] {
				return nil, fmt.Errorf("output_padding %v too large to invert with a Conv", g.OutPad)
			}
		}
		attrs := append(windowAttrs(g, true), graph.IntAttr("group", g.Group))
		res[0] = b.op("Conv", []string{gy, w}, attrs...)
	}
	if c.wants(1) {
		gt := b.transpose(gy, swap01(k+2))
		xt := b.transpose(x, swap01(k+2))
		dw, err := b.correlate(gt, xt, g, g.Kernel)
		if err != nil {
			return nil, err
		}
		// correlate gives [C/G…, M/G, k] per group on axis 0 after the swap:
		// exactly ConvTranspose's [C, M/G, k] layout.
		res[1] = dw
	}
	if c.wants(2) {
		res[2] = b.reduceSum(gy, spatialAxes(k, 0), false)
	}
	return res, nil
}

// scatterWindows adds every window's K values (the channels of v, shaped
// [N, C, K, out…] flattened to [N·C, K, out…]) back onto the input positions
// the windows cover, with a ConvTranspose whose weight [K, 1, kernel…]
// says where each of the K values goes, and reshapes to x's shape.
func (b *builder) scatterWindows(v, x string, weight *graph.Tensor, g geom) string {
	k := len(g.In)
	op := make([]int64, k)
	pe := make([]int64, k)
	for i := range g.In {
		l := g.Strides[i]*(g.Out[i]-1) + g.Dilations[i]*(g.Kernel[i]-1) + 1 - g.PadBegin[i]
		pe[i] = max(0, l-g.In[i])
		op[i] = max(0, g.In[i]-l)
	}
	y := b.op("ConvTranspose", []string{v, b.constant(weight)},
		graph.IntsAttr("strides", g.Strides...),
		graph.IntsAttr("dilations", g.Dilations...),
		graph.IntsAttr("kernel_shape", g.Kernel...),
		graph.IntsAttr("pads", append(append([]int64(nil), g.PadBegin...), pe...)...),
		graph.IntsAttr("output_padding", op...))
	return b.reshapeLike(y, x)
}

// flatWindows reshapes [N, C, out…] to [N·C, 1, out…].
func (b *builder) flatWindows(v string, g geom) string {
	return b.op("Reshape", []string{v, b.ints(append([]int64{-1, 1}, g.Out...)...)})
}

// windowCount is, per output position, how many input positions a window
// averages over (AveragePool's divisor), as [out…].
func windowCount(g geom, includePad bool) *graph.Tensor {
	k := len(g.In)
	per := make([][]float32, k)
	for i := 0; i < k; i++ {
		lo, hi := int64(0), g.In[i]
		if includePad {
			lo, hi = -g.PadBegin[i], g.In[i]+g.PadEnd[i]
		}
		for o := int64(0); o < g.Out[i]; o++ {
			cnt := int64(0)
			for t := int64(0); t < g.Kernel[i]; t++ {
				p := o*g.Strides[i] - g.PadBegin[i] + t*g.Dilations[i]
				if p >= lo && p < hi {
					cnt++
				}
			}
			per[i] = append(per[i], float32(max(cnt, 1)))
		}
	}
	t := graph.NewFloat32(g.Out, nil)
	idx := make([]int64, k)
	for j := range t.F32 {
		v := float32(1)
		for i := 0; i < k; i++ {
			v *= per[i][idx[i]]
		}
		t.F32[j] = 1 / v
		for i := k - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < g.Out[i] {
				break
			}
			idx[i] = 0
		}
	}
	return t
}

func gradAveragePool(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	g, err := c.geom()
	if err != nil {
		return nil, err
	}
	inv := windowCount(g, c.n.AttrInt("count_include_pad", 0) != 0)
	scaled := b.mul(gout[0], b.constant(inv))
	ones := graph.NewFloat32(append([]int64{1, 1}, g.Kernel...), nil)
	for i := range ones.F32 {
		ones.F32[i] = 1
	}
	return []string{b.scatterWindows(b.flatWindows(scaled, g), c.in(0), ones, g)}, nil
}

// padNeg pads x's spatial axes with a very negative value, so that windows
// reaching into the padding never hold a maximum.
func (b *builder) padNeg(x string, g geom) string {
	k := len(g.In)
	r := k + 2
	for i := 0; i < k; i++ {
		ax := int64(i + 2)
		var parts []string
		for _, p := range []int64{g.PadBegin[i], -1, g.PadEnd[i]} {
			switch {
			case p < 0:
				parts = append(parts, x)
			case p > 0:
				sh := b.shapeOf(x)
				shape := b.op("Concat", []string{
					b.slice(sh, []int64{0}, []int64{ax}, []int64{0}, nil),
					b.ints(p),
					b.slice(sh, []int64{ax + 1}, []int64{int64(r)}, []int64{0}, nil),
				}, graph.IntAttr("axis", 0))
				parts = append(parts, b.op("ConstantOfShape", []string{shape},
					graph.TensorAttr("value", graph.NewFloat32([]int64{1}, []float32{-3.0e38}))))
			}
		}
		if len(parts) > 1 {
			x = b.op("Concat", parts, graph.IntAttr("axis", ax))
		}
	}
	return x
}

func gradMaxPool(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	if gout[0] == "" {
		return make([]string, len(c.n.Inputs)), nil
	}
	g, err := c.geom()
	if err != nil {
		return nil, err
	}
	k := len(g.In)
	x, y := c.in(0), c.n.Outputs[0]
	xp := b.padNeg(x, g)
	zero := b.scalar(0)
	K := int64(1)
	for _, kk := range g.Kernel {
		K *= kk
	}
	weight := graph.NewFloat32(append([]int64{K, 1}, g.Kernel...), nil)
	var parts []string
	taken := ""
	off := make([]int64, k)
	for j := int64(0); j < K; j++ {
		starts, ends, axes, steps := make([]int64, k), make([]int64, k), make([]int64, k), make([]int64, k)
		for i := 0; i < k; i++ {
			starts[i] = off[i] * g.Dilations[i]
			ends[i] = starts[i] + g.Strides[i]*(g.Out[i]-1) + 1
			axes[i], steps[i] = int64(i+2), g.Strides[i]
		}
		at := b.slice(xp, starts, ends, axes, steps)
		hit := b.op("Equal", []string{at, y})
		// The first maximum in a window takes the gradient, as PyTorch does.
		if taken == "" {
			taken = hit
		} else {
			hit = b.op("And", []string{hit, b.un("Not", taken)})
			taken = b.op("Or", []string{taken, hit})
		}
		parts = append(parts, b.flatWindows(b.where(hit, gout[0], zero), g))
		weight.F32[j*K+j] = 1
		for i := k - 1; i >= 0; i-- {
			off[i]++
			if off[i] < g.Kernel[i] {
				break
			}
			off[i] = 0
		}
	}
	v := parts[0]
	if len(parts) > 1 {
		v = b.op("Concat", parts, graph.IntAttr("axis", 1))
	}
	return []string{b.scatterWindows(v, x, weight, g)}, nil
}

func gradGlobalPool(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, y, gy := c.in(0), c.n.Outputs[0], gout[0]
	expand := func(v string) string { return b.op("Expand", []string{v, b.shapeOf(x)}) }
	if c.n.OpType == "GlobalMaxPool" {
		return []string{b.where(b.op("Equal", []string{x, y}), expand(gy), b.scalar(0))}, nil
	}
	dims := b.shape(x)
	if len(dims) < 2 {
		return nil, errors.New("the input's rank must be known")
	}
	count := int64(1)
	for _, d := range dims[2:] {
		if !d.Known() {
			count = -1
			break
		}
		count *= d.Value
	}
	var scaled string
	if count > 0 {
		scaled = b.mul(gy, b.scalar(1/float64(count)))
	} else {
		n := b.op("Cast", []string{b.op("Size", []string{x})}, graph.IntAttr("to", int64(graph.Float32)))
		d := b.op("Cast", []string{b.op("Size", []string{y})}, graph.IntAttr("to", int64(graph.Float32)))
		scaled = b.mul(gy, b.div(d, n))
	}
	return []string{expand(scaled)}, nil
}

func init() {
	register(gradConv, "Conv")
	register(gradConvTranspose, "ConvTranspose")
	register(gradAveragePool, "AveragePool")
	register(gradMaxPool, "MaxPool")
	register(gradGlobalPool, "GlobalAveragePool", "GlobalMaxPool")
}
