package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// window holds the attributes shared by Conv, ConvTranspose and the pools,
// for one or two spatial dimensions (1-D runs as 2-D with height 1).
type window struct {
	autoPad   string
	kernel    []int64 // kernel_shape, or nil: from the weights
	strides   []int64
	pads      []int64 // begin…, end…
	dilations []int64
	ceil      bool
}

func readWindow(n *graph.Node) (window, error) {
	w := window{
		autoPad:   n.AttrString("auto_pad", "NOTSET"),
		kernel:    n.AttrInts("kernel_shape", nil),
		strides:   n.AttrInts("strides", nil),
		pads:      n.AttrInts("pads", nil),
		dilations: n.AttrInts("dilations", nil),
		ceil:      n.AttrInt("ceil_mode", 0) != 0,
	}
	// Prepare has checked the attributes' ranges (graph's op table).
	if k := len(w.kernel); k > 2 {
		return w, unsupported("%d spatial dimensions (1 and 2 are supported)", k)
	}
	return w, nil
}

// spatialRank refuses, at prepare time, weights with more than two spatial
// dimensions.
func spatialRank(c *compileCtx) error {
	for i := 0; i < 2; i++ {
		if r := c.inputRank(i); r > 4 {
			return unsupported("%d spatial dimensions (1 and 2 are supported)", r-2)
		}
	}
	return nil
}

// geom is the resolved geometry of a 2-D window op.
type geom struct {
	n, c, h, w       int // input
	m, oh, ow        int // output channels and size
	kh, kw           int
	sh, sw, dh, dw   int
	ph, pw, phe, pwe int // pads: begin and end
	spatial          int // 1 or 2
}

func at(v []int64, i int, def int64) int64 {
	if i < len(v) {
		return v[i]
	}
	return def
}

// resolve computes the geometry for input shape x and kernel sizes k
// (spatial dims only); for pools and convolutions alike.
func (wd *window) resolve(x []int64, k []int64, g *geom) error {
	sp := len(x) - 2
	if sp < 1 || sp > 2 {
		return unsupported("input of rank %d (1 or 2 spatial dimensions are supported)", len(x))
	}
	if len(k) != sp {
		return fmt.Errorf("kernel of %d dimensions for an input with %d", len(k), sp)
	}
	g.spatial = sp
	g.n, g.c = int(x[0]), int(x[1])
	g.h, g.w, g.kh, g.kw = 1, int(x[2]), 1, int(k[0])
	if sp == 2 {
		g.h, g.w, g.kh, g.kw = int(x[2]), int(x[3]), int(k[0]), int(k[1])
	}
	// Per spatial dim i (0 = height when 2-D): attributes are indexed by i.
	type dim struct{ in, k, s, d, pb, pe, out *int }
	g.sh, g.sw, g.dh, g.dw = 1, 1, 1, 1
	ds := []dim{{&g.w, &g.kw, &g.sw, &g.dw, &g.pw, &g.pwe, &g.ow}}
	if sp == 2 {
		ds = []dim{{&g.h, &g.kh, &g.sh, &g.dh, &g.ph, &g.phe, &g.oh}, {&g.w, &g.kw, &g.sw, &g.dw, &g.pw, &g.pwe, &g.ow}}
	}
	g.oh, g.ph, g.phe = 1, 0, 0
	for i, d := range ds {
		a := graph.Axis{In: int64(*d.in), Kernel: int64(*d.k), Stride: at(wd.strides, i, 1), Dilation: at(wd.dilations, i, 1),
			PadBegin: at(wd.pads, i, 0), PadEnd: at(wd.pads, i+sp, 0), Want: -1}
		if err := a.Resolve(wd.autoPad, false, wd.ceil); err != nil {
			return err
		}
		*d.s, *d.d, *d.pb, *d.pe, *d.out = int(a.Stride), int(a.Dilation), int(a.PadBegin), int(a.PadEnd), int(a.Out)
	}
	return nil
}

// outShape writes [n, m, (oh,) ow].
func (g *geom) outShape(m int, out *dims) int {
	out[0], out[1] = int64(g.n), int64(m)
	if g.spatial == 2 {
		out[2], out[3] = int64(g.oh), int64(g.ow)
		return 4
	}
	out[2] = int64(g.ow)
	return 3
}

// convKernel is Conv as an implicit GEMM (conv_gemm.go), with the bias and
// an activation fused by fuse in its epilogue.
type convKernel struct {
	win   window
	group int
	pre   *convA  // constant weights, packed at Prepare
	epi   convEpi // activation after the bias
}

type convState struct {
	g    gemm
	w    gemmWork
	col  []float32
	conv convGemm
	work convWork
}

func compileConv(c *compileCtx) (kernel, error) {
	if ndSpatial(c) {
		return compileConvND(c)
	}
	w, err := readWindow(c.node)
	if err != nil {
		return nil, err
	}
	g := int(c.node.AttrInt("group", 1))
	if g < 1 {
		return nil, fmt.Errorf("group %d", g)
	}
	if err := spatialRank(c); err != nil {
		return nil, err
	}
	k := &convKernel{win: w, group: g}
	if wt := c.constInput(1); wt != nil && c.constInput(0) == nil && wt.DType == graph.Float32 &&
		len(wt.Shape) >= 3 && wt.Shape[0]%int64(g) == 0 && wt.Len() == int64(len(wt.F32)) {
		m := int(wt.Shape[0])
		k.pre = new(convA)
		packConvA(k.pre, wt.F32, g, m/g, len(wt.F32)/m, convMR(implAuto, m/g))
	}
	return k, nil
}

func (*convKernel) newState() any { return new(convState) }

func (k *convKernel) geometry(in []*graph.Tensor, g *geom) error {
	x, w := in[0], in[1]
	if x.DType != graph.Float32 || w.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	if len(w.Shape) != len(x.Shape) || len(x.Shape) < 3 {
		return fmt.Errorf("input %v and weights %v", x.Shape, w.Shape)
	}
	ks := w.Shape[2:]
	if k.win.kernel != nil && !sameShape(k.win.kernel, ks) {
		return fmt.Errorf("kernel_shape %v, weights %v", k.win.kernel, w.Shape)
	}
	if err := k.win.resolve(x.Shape, ks, g); err != nil {
		return err
	}
	g.m = int(w.Shape[0])
	if g.c != int(w.Shape[1])*k.group || g.m%k.group != 0 {
		return fmt.Errorf("input channels %d, weights %v, group %d", g.c, w.Shape, k.group)
	}
	if b := arg(in, 2); b != nil && (b.DType != graph.Float32 || len(b.F32) != g.m) {
		return fmt.Errorf("bias %s %v for %d channels", b.DType, b.Shape, g.m)
	}
	return nil
}

func (k *convKernel) infer(in, out []*graph.Tensor) error {
	var g geom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	var sh dims
	r := g.outShape(g.m, &sh)
	setShape(out[0], graph.Float32, sh[:r])
	return nil
}

func (k *convKernel) run(x *exec, in, out []*graph.Tensor) error {
	st := x.state.(*convState)
	t := &st.conv
	*t = convGemm{group: k.group, epi: k.epi, work: &st.work}
	_ = k.geometry(in, &t.g)
	if t.g.n*t.g.m*t.g.oh*t.g.ow == 0 {
		return nil
	}
	t.cg, t.mg = t.g.c/k.group, t.g.m/k.group
	t.khw = t.g.kh * t.g.kw
	t.kk = t.cg * t.khw
	t.x, t.y = in[0].F32, out[0].F32
	if b := arg(in, 2); b != nil {
		t.bias = b.F32
	}
	t.a = k.pre
	if mr := convMR(convImpl(t.impl), t.mg); t.a == nil || t.a.mg != t.mg || t.a.kk != t.kk || t.a.group != k.group || t.a.mr != mr {
		packConvA(&st.work.a, in[1].F32, k.group, t.mg, t.kk, mr)
		t.a = &st.work.a
	}
	if t.kk == 0 {
		for n := 0; n < t.g.n; n++ { // no reduction: the bias alone
			for m := 0; m < t.g.m; m++ {
				var bv float32
				if t.bias != nil {
					bv = t.bias[m]
				}
				plane := t.y[(n*t.g.m+m)*t.g.oh*t.g.ow:][:t.g.oh*t.g.ow]
				clear(plane)
				k.epi.apply(plane, plane, bv)
			}
		}
		return nil
	}
	t.run(x.pool)
	return nil
}

// convTransposeKernel is ConvTranspose via gemm and col2im.
type convTransposeKernel struct {
	win         window
	group       int
	outPad      []int64
	outShapeArg []int64
}

func compileConvTranspose(c *compileCtx) (kernel, error) {
	if ndSpatial(c) {
		return compileConvTransposeND(c)
	}
	w, err := readWindow(c.node)
	if err != nil {
		return nil, err
	}
	g := int(c.node.AttrInt("group", 1))
	if g < 1 {
		return nil, fmt.Errorf("group %d", g)
	}
	if err := spatialRank(c); err != nil {
		return nil, err
	}
	return &convTransposeKernel{win: w, group: g,
		outPad: c.node.AttrInts("output_padding", nil), outShapeArg: c.node.AttrInts("output_shape", nil)}, nil
}

func (*convTransposeKernel) newState() any { return new(convState) }

// geometry fills g with the output size in oh/ow and the pads; h/w are the
// input size as in Conv (the roles swap in col2im).
func (k *convTransposeKernel) geometry(in []*graph.Tensor, g *geom) error {
	x, w := in[0], in[1]
	if x.DType != graph.Float32 || w.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	sp := len(x.Shape) - 2
	if len(w.Shape) != len(x.Shape) || sp < 1 {
		return fmt.Errorf("input %v and weights %v", x.Shape, w.Shape)
	}
	if sp > 2 {
		return unsupported("%d spatial dimensions (1 and 2 are supported)", sp)
	}
	g.spatial = sp
	g.n, g.c = int(x.Shape[0]), int(x.Shape[1])
	if int(w.Shape[0]) != g.c {
		return fmt.Errorf("input channels %d, weights %v", g.c, w.Shape)
	}
	g.m = int(w.Shape[1]) * k.group
	if g.c%k.group != 0 {
		return fmt.Errorf("input channels %d not divisible by group %d", g.c, k.group)
	}
	type dim struct{ in, k, s, d, pb, pe, out *int }
	g.h, g.kh, g.sh, g.dh, g.oh, g.ph, g.phe = 1, 1, 1, 1, 1, 0, 0
	ds := []dim{{&g.w, &g.kw, &g.sw, &g.dw, &g.pw, &g.pwe, &g.ow}}
	if sp == 2 {
		ds = []dim{{&g.h, &g.kh, &g.sh, &g.dh, &g.ph, &g.phe, &g.oh}, {&g.w, &g.kw, &g.sw, &g.dw, &g.pw, &g.pwe, &g.ow}}
	}
	for i, d := range ds {
		a := graph.Axis{In: x.Shape[2+i], Kernel: w.Shape[2+i], Stride: at(k.win.strides, i, 1), Dilation: at(k.win.dilations, i, 1),
			PadBegin: at(k.win.pads, i, 0), PadEnd: at(k.win.pads, i+sp, 0), OutPad: at(k.outPad, i, 0), Want: -1}
		if k.outShapeArg != nil {
			a.Want = k.outShapeArg[len(k.outShapeArg)-sp+i]
		}
		if err := a.Resolve(k.win.autoPad, true, false); err != nil {
			return err
		}
		*d.in, *d.k = int(a.In), int(a.Kernel)
		*d.s, *d.d, *d.pb, *d.pe, *d.out = int(a.Stride), int(a.Dilation), int(a.PadBegin), int(a.PadEnd), int(a.Out)
	}
	if b := arg(in, 2); b != nil && (b.DType != graph.Float32 || len(b.F32) != g.m) {
		return fmt.Errorf("bias %s %v for %d channels", b.DType, b.Shape, g.m)
	}
	return nil
}

func (k *convTransposeKernel) infer(in, out []*graph.Tensor) error {
	var g geom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	var sh dims
	r := g.outShape(g.m, &sh)
	setShape(out[0], graph.Float32, sh[:r])
	return nil
}

func (k *convTransposeKernel) run(x *exec, in, out []*graph.Tensor) error {
	var g geom
	_ = k.geometry(in, &g)
	st := x.state.(*convState)
	X, W, Y := in[0].F32, in[1].F32, out[0].F32
	cg, mg := g.c/k.group, g.m/k.group
	kk := mg * g.kh * g.kw
	hw := g.h * g.w
	st.col = growSlice(st.col, kk*hw)
	clear(Y)
	for n := 0; n < g.n; n++ {
		for gi := 0; gi < k.group; gi++ {
			// col[(m,i,j), (y,x)] = Σ_c W[c, m, i, j] · X[c, y, x]
			st.g = gemm{tA: true, m: kk, n: hw, k: cg, alpha: 1, a: W[gi*cg*kk:], lda: kk,
				b: X[(n*g.c+gi*cg)*hw:], ldb: hw, c: st.col, ldc: hw, w: &st.w}
			st.g.run(x.pool)
			col2im(Y[(n*g.m+gi*mg)*g.oh*g.ow:], st.col, mg, &g)
		}
	}
	if b := arg(in, 2); b != nil {
		ohw := g.oh * g.ow
		for n := 0; n < g.n; n++ {
			for m := 0; m < g.m; m++ {
				row := Y[(n*g.m+m)*ohw : (n*g.m+m+1)*ohw]
				v := b.F32[m]
				for i := range row {
					row[i] += v
				}
			}
		}
	}
	return nil
}

// col2im scatters columns back into the (larger) output: input pixel (y, x)
// with kernel offset (i, j) lands at (y·s − p + i·d, x·s − p + j·d).
func col2im(y, col []float32, m int, g *geom) {
	hw := g.h * g.w
	for ch := 0; ch < m; ch++ {
		plane := y[ch*g.oh*g.ow : (ch+1)*g.oh*g.ow]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				row := col[((ch*g.kh+i)*g.kw+j)*hw:][:hw]
				for iy := 0; iy < g.h; iy++ {
					oy := iy*g.sh - g.ph + i*g.dh
					if oy < 0 || oy >= g.oh {
						continue
					}
					dst := plane[oy*g.ow : (oy+1)*g.ow]
					src := row[iy*g.w : (iy+1)*g.w]
					ox := -g.pw + j*g.dw
					for _, v := range src {
						if ox >= 0 && ox < g.ow {
							dst[ox] += v
						}
						ox += g.sw
					}
				}
			}
		}
	}
}

func init() {
	register("Conv", compileConv)
	register("ConvTranspose", compileConvTranspose)
}
