package autodiff

import (
	"errors"
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// geom is the resolved geometry of a Conv, ConvTranspose or pooling node
// over its spatial axes: explicit pads (auto_pad resolved), and input and
// output sizes (−1 where unknown).
type geom struct {
	in, out, kernel, strides, dil []int64
	padB, padE, outPad            []int64
	group                         int64
}

func fill(v []int64, k int, def int64) []int64 {
	if len(v) == k {
		return v
	}
	out := make([]int64, k)
	for i := range out {
		out[i] = def
	}
	return out
}

func (b *builder) geometry(n *graph.Node, x graph.Shape, w *vinfo) (geom, error) {
	k := len(x) - 2
	g := geom{group: n.AttrInt("group", 1)}
	g.in = make([]int64, k)
	for i, d := range x[2:] {
		g.in[i] = -1
		if d.Known() {
			g.in[i] = d.Value
		}
	}
	g.kernel = n.AttrInts("kernel_shape", nil)
	if g.kernel == nil && w != nil && w.ranked && len(w.shape) == k+2 {
		for _, d := range w.shape[2:] {
			v := int64(-1)
			if d.Known() {
				v = d.Value
			}
			g.kernel = append(g.kernel, v)
		}
	}
	if len(g.kernel) != k {
		return g, fmt.Errorf("kernel shape of rank %d for %d spatial axes", len(g.kernel), k)
	}
	g.strides = fill(n.AttrInts("strides", nil), k, 1)
	g.dil = fill(n.AttrInts("dilations", nil), k, 1)
	g.outPad = fill(n.AttrInts("output_padding", nil), k, 0)
	pads := fill(n.AttrInts("pads", nil), 2*k, 0)
	g.padB, g.padE = append([]int64(nil), pads[:k]...), append([]int64(nil), pads[k:]...)
	g.out = make([]int64, k)
	auto := n.AttrString("auto_pad", "NOTSET")
	transpose := n.OpType == "ConvTranspose"
	outShape := n.AttrInts("output_shape", nil)
	if len(outShape) > k {
		outShape = outShape[len(outShape)-k:]
	}
	ceil := n.AttrInt("ceil_mode", 0) != 0
	for i := 0; i < k; i++ {
		in, kk, s, d := g.in[i], g.kernel[i], g.strides[i], g.dil[i]
		g.out[i] = -1
		if kk < 0 {
			continue
		}
		ext := d*(kk-1) + 1
		if transpose {
			if in < 0 {
				continue
			}
			full := s*(in-1) + g.outPad[i] + ext
			if outShape != nil || auto == "SAME_UPPER" || auto == "SAME_LOWER" {
				want := in * s
				if outShape != nil {
					want = outShape[i]
				}
				total := max(full-want, 0)
				if auto == "SAME_LOWER" {
					g.padB[i], g.padE[i] = total-total/2, total/2
				} else {
					g.padB[i], g.padE[i] = total/2, total-total/2
				}
			} else if auto == "VALID" {
				g.padB[i], g.padE[i] = 0, 0
			}
			g.out[i] = full - g.padB[i] - g.padE[i]
			continue
		}
		switch auto {
		case "SAME_UPPER", "SAME_LOWER":
			if in < 0 {
				continue
			}
			want := (in + s - 1) / s
			total := max((want-1)*s+ext-in, 0)
			if auto == "SAME_UPPER" {
				g.padB[i], g.padE[i] = total/2, total-total/2
			} else {
				g.padB[i], g.padE[i] = total-total/2, total/2
			}
		case "VALID":
			g.padB[i], g.padE[i] = 0, 0
		}
		if in < 0 {
			continue
		}
		span := in + g.padB[i] + g.padE[i] - ext
		if span < 0 {
			return g, fmt.Errorf("kernel extent %d exceeds padded input %d", ext, in+g.padB[i]+g.padE[i])
		}
		o := span/s + 1
		if ceil {
			o = (span+s-1)/s + 1
			if (o-1)*s >= in+g.padB[i] {
				o--
			}
		}
		g.out[i] = o
	}
	return g, nil
}

func (g geom) static() error {
	for i := range g.in {
		if g.in[i] < 0 || g.out[i] < 0 || g.kernel[i] < 0 {
			return errors.New("the gradient needs the spatial sizes of input and output to be known")
		}
	}
	return nil
}

func (g geom) attrs(withKernel bool) []*graph.Attribute {
	out := []*graph.Attribute{
		graph.IntsAttr("strides", g.strides...),
		graph.IntsAttr("dilations", g.dil...),
		graph.IntsAttr("pads", append(append([]int64(nil), g.padB...), g.padE...)...),
	}
	if withKernel {
		out = append(out, graph.IntsAttr("kernel_shape", g.kernel...))
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
	g, err := b.geometry(c.n, xs, w)
	if err != nil {
		return g, err
	}
	return g, g.static()
}

func gradConv(c *ruleCtx, gout []string) ([]string, error) {
	b, gy := c.b, gout[0]
	g, err := c.geom()
	if err != nil {
		return nil, err
	}
	k := len(g.in)
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
			op[i] = g.in[i] - (g.strides[i]*(g.out[i]-1) + g.dil[i]*(g.kernel[i]-1) + 1 - g.padB[i] - g.padE[i])
		}
		attrs := append(g.attrs(true), graph.IntAttr("group", g.group), graph.IntsAttr("output_padding", op...))
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
		dw, err := b.correlate(xt, gt, g, g.kernel)
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
	k := len(g.in)
	pads := make([]int64, 2*k)
	for i := 0; i < k; i++ {
		ext := g.dil[i]*(g.kernel[i]-1) + 1
		if g.strides[i] != 1 || g.padB[i] > ext-1 || g.padE[i] > ext-1 {
			return "", false
		}
		pads[i], pads[k+i] = ext-1-g.padB[i], ext-1-g.padE[i]
	}
	ws, known := b.staticDims(w)
	if !known || len(ws) != k+2 || ws[0]%g.group != 0 {
		return "", false
	}
	cout, cinG, G := ws[0], ws[1], g.group
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
		graph.IntsAttr("dilations", g.dil...),
		graph.IntsAttr("pads", pads...),
		graph.IntAttr("group", G)), true
}

// convWeightGrad is Conv's weight gradient as im2col and batched matrix
// products: for each kernel offset, the input positions that offset reads
// ([N, C, P]) times the output gradient at the positions that read them
// ([N, P, M]), summed over the batch. The Conv that correlate writes
// instead has the whole image as its kernel and a 3×3 output, a shape no
// GEMM-based Conv runs well (onnxruntime: a third of the step's time).
// Windows reaching into the padding are cropped rather than padded, so
// that no Pad is needed. ok is false for grouped convolutions and offsets
// that read no input.
func (b *builder) convWeightGrad(x, gy string, g geom) (dw string, ok bool) {
	k := len(g.in)
	if g.group != 1 {
		return "", false
	}
	K := int64(1)
	for _, kk := range g.kernel {
		K *= kk
	}
	// ∂y with channels last, [N, out…, M], sliced per offset below.
	perm := []int64{0}
	for i := 0; i < k; i++ {
		perm = append(perm, int64(i+2))
	}
	gyt := b.transpose(gy, append(perm, 1))
	off := make([]int64, k)
	var parts []string
	for j := int64(0); j < K; j++ {
		var xs, xe, xa, xst, ys, ye, ya []int64
		p := int64(1)
		for i := 0; i < k; i++ {
			s, t := g.strides[i], off[i]*g.dil[i]-g.padB[i]
			lo := max(0, ceilDiv(-t, s))
			hi := min(g.out[i]-1, floorDiv(g.in[i]-1-t, s))
			if hi < lo {
				return "", false
			}
			p *= hi - lo + 1
			if st, en := lo*s+t, hi*s+t+1; st != 0 || en != g.in[i] || s != 1 {
				xs, xe, xa, xst = append(xs, st), append(xe, en), append(xa, int64(i+2)), append(xst, s)
			}
			if lo != 0 || hi != g.out[i]-1 {
				ys, ye, ya = append(ys, lo), append(ye, hi+1), append(ya, int64(i+1))
			}
		}
		xj, yj := x, gyt
		if len(xa) > 0 {
			xj = b.slice(x, xs, xe, xa, xst)
		}
		if len(ya) > 0 {
			yj = b.slice(gyt, ys, ye, ya, nil)
		}
		xj = b.op("Reshape", []string{xj, b.ints(0, 0, p)})
		yj = b.op("Reshape", []string{yj, b.ints(0, p, -1)})
		parts = append(parts, b.op("MatMul", []string{xj, yj}))
		for i := k - 1; i >= 0; i-- {
			off[i]++
			if off[i] < g.kernel[i] {
				break
			}
			off[i] = 0
		}
	}
	// [N, C, K·M] → [C, K, M] → [M, C, K] → [M, C, kernel…].
	all := parts[0]
	if len(parts) > 1 {
		all = b.op("Concat", parts, graph.IntAttr("axis", 2))
	}
	r := b.op("Reshape", []string{b.reduceSum(all, []int64{0}, false), b.ints(0, K, -1)})
	r = b.transpose(r, []int64{2, 0, 1})
	return b.op("Reshape", []string{r, b.ints(append([]int64{0, 0}, g.kernel...)...)}), true
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
	G := g.group
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
			graph.IntsAttr("strides", g.dil...),
			graph.IntsAttr("dilations", g.strides...),
			graph.IntsAttr("pads", append(append([]int64(nil), g.padB...), g.padE...)...))
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
	k := len(g.in)
	x, w := c.in(0), c.in(1)
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		for i := range g.in {
			if got := (g.out[i]+g.padB[i]+g.padE[i]-g.dil[i]*(g.kernel[i]-1)-1)/g.strides[i] + 1; got != g.in[i] {
				return nil, fmt.Errorf("output_padding %v too large to invert with a Conv", g.outPad)
			}
		}
		attrs := append(g.attrs(true), graph.IntAttr("group", g.group))
		res[0] = b.op("Conv", []string{gy, w}, attrs...)
	}
	if c.wants(1) {
		gt := b.transpose(gy, swap01(k+2))
		xt := b.transpose(x, swap01(k+2))
		dw, err := b.correlate(gt, xt, g, g.kernel)
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
	k := len(g.in)
	op := make([]int64, k)
	pe := make([]int64, k)
	for i := range g.in {
		l := g.strides[i]*(g.out[i]-1) + g.dil[i]*(g.kernel[i]-1) + 1 - g.padB[i]
		pe[i] = max(0, l-g.in[i])
		op[i] = max(0, g.in[i]-l)
	}
	y := b.op("ConvTranspose", []string{v, b.constant(weight)},
		graph.IntsAttr("strides", g.strides...),
		graph.IntsAttr("dilations", g.dil...),
		graph.IntsAttr("kernel_shape", g.kernel...),
		graph.IntsAttr("pads", append(append([]int64(nil), g.padB...), pe...)...),
		graph.IntsAttr("output_padding", op...))
	return b.reshapeLike(y, x)
}

// flatWindows reshapes [N, C, out…] to [N·C, 1, out…].
func (b *builder) flatWindows(v string, g geom) string {
	return b.op("Reshape", []string{v, b.ints(append([]int64{-1, 1}, g.out...)...)})
}

// windowCount is, per output position, how many input positions a window
// averages over (AveragePool's divisor), as [out…].
func windowCount(g geom, includePad bool) *graph.Tensor {
	k := len(g.in)
	per := make([][]float32, k)
	for i := 0; i < k; i++ {
		lo, hi := int64(0), g.in[i]
		if includePad {
			lo, hi = -g.padB[i], g.in[i]+g.padE[i]
		}
		for o := int64(0); o < g.out[i]; o++ {
			cnt := int64(0)
			for t := int64(0); t < g.kernel[i]; t++ {
				p := o*g.strides[i] - g.padB[i] + t*g.dil[i]
				if p >= lo && p < hi {
					cnt++
				}
			}
			per[i] = append(per[i], float32(max(cnt, 1)))
		}
	}
	t := graph.NewFloat32(g.out, nil)
	idx := make([]int64, k)
	for j := range t.F32 {
		v := float32(1)
		for i := 0; i < k; i++ {
			v *= per[i][idx[i]]
		}
		t.F32[j] = 1 / v
		for i := k - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < g.out[i] {
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
	ones := graph.NewFloat32(append([]int64{1, 1}, g.kernel...), nil)
	for i := range ones.F32 {
		ones.F32[i] = 1
	}
	return []string{b.scatterWindows(b.flatWindows(scaled, g), c.in(0), ones, g)}, nil
}

// padNeg pads x's spatial axes with a very negative value, so that windows
// reaching into the padding never hold a maximum.
func (b *builder) padNeg(x string, g geom) string {
	k := len(g.in)
	r := k + 2
	for i := 0; i < k; i++ {
		ax := int64(i + 2)
		var parts []string
		for _, p := range []int64{g.padB[i], -1, g.padE[i]} {
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
	k := len(g.in)
	x, y := c.in(0), c.n.Outputs[0]
	xp := b.padNeg(x, g)
	zero := b.scalar(0)
	K := int64(1)
	for _, kk := range g.kernel {
		K *= kk
	}
	weight := graph.NewFloat32(append([]int64{K, 1}, g.kernel...), nil)
	var parts []string
	taken := ""
	off := make([]int64, k)
	for j := int64(0); j < K; j++ {
		starts, ends, axes, steps := make([]int64, k), make([]int64, k), make([]int64, k), make([]int64, k)
		for i := 0; i < k; i++ {
			starts[i] = off[i] * g.dil[i]
			ends[i] = starts[i] + g.strides[i]*(g.out[i]-1) + 1
			axes[i], steps[i] = int64(i+2), g.strides[i]
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
			if off[i] < g.kernel[i] {
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
