package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// The generic N-D window ops: Conv, ConvTranspose, MaxPool and AveragePool
// over three or more spatial dimensions (3-D volumes), computed directly,
// without im2col. They are correct rather than fast; the 1-D and 2-D paths
// of conv.go and pool2d.go carry the speed.

// ndSpatial reports whether a window op's node has more than two spatial
// dimensions, from its kernel_shape or its inputs' ranks.
func ndSpatial(c *compileCtx) bool {
	if len(c.node.AttrInts("kernel_shape", nil)) > 2 {
		return true
	}
	return c.inputRank(0) > 4 || c.inputRank(1) > 4
}

// ndGeom is the resolved geometry of one N-D window op.
type ndGeom struct {
	sp                           int
	in, k, s, d, pb, pe, out, ex [maxRank]int
}

// resolveND fills g for spatial input sizes in and kernel sizes k, as
// Conv and the pools define their output sizes.
func (wd *window) resolveND(in, k []int64, g *ndGeom) error {
	sp := len(in)
	if len(k) != sp {
		return fmt.Errorf("kernel of %d dimensions for an input with %d", len(k), sp)
	}
	g.sp = sp
	for i := 0; i < sp; i++ {
		a := graph.Axis{In: in[i], Kernel: k[i], Stride: at(wd.strides, i, 1), Dilation: at(wd.dilations, i, 1),
			PadBegin: at(wd.pads, i, 0), PadEnd: at(wd.pads, i+sp, 0), Want: -1}
		if err := a.Resolve(wd.autoPad, false, wd.ceil); err != nil {
			return err
		}
		g.in[i], g.k[i], g.s[i], g.d[i] = int(a.In), int(a.Kernel), int(a.Stride), int(a.Dilation)
		g.pb[i], g.pe[i], g.out[i] = int(a.PadBegin), int(a.PadEnd), int(a.Out)
		g.ex[i] = (g.k[i]-1)*g.d[i] + 1
	}
	return nil
}

// ndIndex steps a multi-index over sizes; false when it wraps around.
func ndIndex(idx *[maxRank]int, size *[maxRank]int, sp int) bool {
	for i := sp - 1; i >= 0; i-- {
		idx[i]++
		if idx[i] < size[i] {
			return true
		}
		idx[i] = 0
	}
	return false
}

func prodN(v *[maxRank]int, n int) int {
	p := 1
	for i := 0; i < n; i++ {
		p *= v[i]
	}
	return p
}

// convNDKernel is Conv over 3+ spatial dimensions.
type convNDKernel struct {
	win   window
	group int
}

func compileConvND(c *compileCtx) (kernel, error) {
	w := readWindowND(c.node) // Prepare has checked the attributes (graph's op table)
	g := int(c.node.AttrInt("group", 1))
	if g < 1 {
		return nil, fmt.Errorf("group %d", g)
	}
	return &convNDKernel{win: w, group: g}, nil
}

func readWindowND(n *graph.Node) window {
	return window{
		autoPad: n.AttrString("auto_pad", "NOTSET"), kernel: n.AttrInts("kernel_shape", nil),
		strides: n.AttrInts("strides", nil), pads: n.AttrInts("pads", nil), dilations: n.AttrInts("dilations", nil),
		ceil: n.AttrInt("ceil_mode", 0) != 0,
	}
}

func (k *convNDKernel) geometry(in []*graph.Tensor, g *ndGeom) error {
	x, w := in[0], in[1]
	if x.DType != graph.Float32 || w.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	if len(w.Shape) != len(x.Shape) || len(x.Shape) < 3 || len(x.Shape) > maxRank {
		return fmt.Errorf("input %v and weights %v", x.Shape, w.Shape)
	}
	if x.Shape[1] != w.Shape[1]*int64(k.group) || w.Shape[0]%int64(k.group) != 0 {
		return fmt.Errorf("input %v, weights %v and group %d disagree", x.Shape, w.Shape, k.group)
	}
	if b := arg(in, 2); b != nil && (len(b.Shape) != 1 || b.Shape[0] != w.Shape[0]) {
		return fmt.Errorf("bias %v for %d output channels", b.Shape, w.Shape[0])
	}
	return k.win.resolveND(x.Shape[2:], w.Shape[2:], g)
}

func (k *convNDKernel) infer(in, out []*graph.Tensor) error {
	var g ndGeom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	var sh dims
	sh[0], sh[1] = in[0].Shape[0], in[1].Shape[0]
	for i := 0; i < g.sp; i++ {
		sh[2+i] = int64(g.out[i])
	}
	setShape(out[0], graph.Float32, sh[:2+g.sp])
	return nil
}

func (k *convNDKernel) run(_ *exec, in, out []*graph.Tensor) error {
	var g ndGeom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	x, w, y := in[0], in[1], out[0].F32
	n, c, m := int(x.Shape[0]), int(x.Shape[1]), int(w.Shape[0])
	cg, mg := c/k.group, m/k.group
	inSize, outSize, kSize := prodN(&g.in, g.sp), prodN(&g.out, g.sp), prodN(&g.k, g.sp)
	var inStride [maxRank]int
	st := 1
	for i := g.sp - 1; i >= 0; i-- {
		inStride[i] = st
		st *= g.in[i]
	}
	var bias []float32
	if b := arg(in, 2); b != nil {
		bias = b.F32
	}
	o := 0
	for b := 0; b < n; b++ {
		for oc := 0; oc < m; oc++ {
			grp := oc / mg
			var oi [maxRank]int
			for p := 0; p < outSize; p++ {
				acc := float32(0)
				if bias != nil {
					acc = bias[oc]
				}
				for ci := 0; ci < cg; ci++ {
					xc := x.F32[(b*c+grp*cg+ci)*inSize:]
					wc := w.F32[(oc*cg+ci)*kSize:]
					var ki [maxRank]int
					for q := 0; q < kSize; q++ {
						off, inside := 0, true
						for i := 0; i < g.sp; i++ {
							pos := oi[i]*g.s[i] - g.pb[i] + ki[i]*g.d[i]
							if pos < 0 || pos >= g.in[i] {
								inside = false
								break
							}
							off += pos * inStride[i]
						}
						if inside {
							acc += xc[off] * wc[q]
						}
						ndIndex(&ki, &g.k, g.sp)
					}
				}
				y[o] = acc
				o++
				ndIndex(&oi, &g.out, g.sp)
			}
		}
	}
	return nil
}

// convTransposeNDKernel is ConvTranspose over 3+ spatial dimensions.
type convTransposeNDKernel struct {
	win                 window
	group               int
	outPad, outShapeArg []int64
}

func compileConvTransposeND(c *compileCtx) (kernel, error) {
	w := readWindowND(c.node) // Prepare has checked the attributes (graph's op table)
	g := int(c.node.AttrInt("group", 1))
	if g < 1 {
		return nil, fmt.Errorf("group %d", g)
	}
	return &convTransposeNDKernel{win: w, group: g, outPad: c.node.AttrInts("output_padding", nil),
		outShapeArg: c.node.AttrInts("output_shape", nil)}, nil
}

// geometry: g.in is the input's size, g.out the output's, pads as ONNX
// derives them (from output_shape or auto_pad when given).
func (k *convTransposeNDKernel) geometry(in []*graph.Tensor, g *ndGeom) error {
	x, w := in[0], in[1]
	if x.DType != graph.Float32 || w.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	if len(w.Shape) != len(x.Shape) || len(x.Shape) < 3 || len(x.Shape) > maxRank {
		return fmt.Errorf("input %v and weights %v", x.Shape, w.Shape)
	}
	if w.Shape[0] != x.Shape[1] || x.Shape[1]%int64(k.group) != 0 {
		return fmt.Errorf("input %v, weights %v and group %d disagree", x.Shape, w.Shape, k.group)
	}
	sp := len(x.Shape) - 2
	g.sp = sp
	for i := 0; i < sp; i++ {
		a := graph.Axis{In: x.Shape[2+i], Kernel: w.Shape[2+i], Stride: at(k.win.strides, i, 1), Dilation: at(k.win.dilations, i, 1),
			PadBegin: at(k.win.pads, i, 0), PadEnd: at(k.win.pads, i+sp, 0), OutPad: at(k.outPad, i, 0), Want: -1}
		if len(k.outShapeArg) > 0 {
			j := i + len(k.outShapeArg) - sp // output_shape may include N, C
			if j < 0 {
				return fmt.Errorf("output_shape %v for %d spatial dimensions", k.outShapeArg, sp)
			}
			a.Want = k.outShapeArg[j]
		}
		if err := a.Resolve(k.win.autoPad, true, false); err != nil {
			return err
		}
		g.in[i], g.k[i], g.s[i], g.d[i] = int(a.In), int(a.Kernel), int(a.Stride), int(a.Dilation)
		g.pb[i], g.pe[i], g.out[i] = int(a.PadBegin), int(a.PadEnd), int(a.Out)
		g.ex[i] = (g.k[i]-1)*g.d[i] + 1
	}
	return nil
}

func (k *convTransposeNDKernel) infer(in, out []*graph.Tensor) error {
	var g ndGeom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	var sh dims
	sh[0], sh[1] = in[0].Shape[0], in[1].Shape[1]*int64(k.group)
	for i := 0; i < g.sp; i++ {
		sh[2+i] = int64(g.out[i])
	}
	setShape(out[0], graph.Float32, sh[:2+g.sp])
	return nil
}

func (k *convTransposeNDKernel) run(_ *exec, in, out []*graph.Tensor) error {
	var g ndGeom
	if err := k.geometry(in, &g); err != nil {
		return err
	}
	x, w, y := in[0], in[1], out[0].F32
	n, c := int(x.Shape[0]), int(x.Shape[1])
	mg := int(w.Shape[1])
	m := mg * k.group
	cg := c / k.group
	inSize, outSize, kSize := prodN(&g.in, g.sp), prodN(&g.out, g.sp), prodN(&g.k, g.sp)
	var outStride [maxRank]int
	st := 1
	for i := g.sp - 1; i >= 0; i-- {
		outStride[i] = st
		st *= g.out[i]
	}
	for b := 0; b < n; b++ {
		for oc := 0; oc < m; oc++ {
			yc := y[(b*m+oc)*outSize : (b*m+oc+1)*outSize]
			v := float32(0)
			if bias := arg(in, 2); bias != nil {
				v = bias.F32[oc]
			}
			for i := range yc {
				yc[i] = v
			}
		}
		for ci := 0; ci < c; ci++ {
			grp := ci / cg
			xc := x.F32[(b*c+ci)*inSize:]
			var ii [maxRank]int
			for p := 0; p < inSize; p++ {
				xv := xc[p]
				for om := 0; om < mg; om++ {
					oc := grp*mg + om
					yc := y[(b*m+oc)*outSize:]
					wc := w.F32[(ci*mg+om)*kSize:]
					var ki [maxRank]int
					for q := 0; q < kSize; q++ {
						off, inside := 0, true
						for i := 0; i < g.sp; i++ {
							pos := ii[i]*g.s[i] - g.pb[i] + ki[i]*g.d[i]
							if pos < 0 || pos >= g.out[i] {
								inside = false
								break
							}
							off += pos * outStride[i]
						}
						if inside {
							yc[off] += xv * wc[q]
						}
						ndIndex(&ki, &g.k, g.sp)
					}
				}
				ndIndex(&ii, &g.in, g.sp)
			}
		}
	}
	return nil
}

// poolNDKernel is MaxPool and AveragePool over 3+ spatial dimensions.
type poolNDKernel struct {
	win        window
	max        bool
	includePad bool
}

func compilePoolND(c *compileCtx, isMax bool) (kernel, error) {
	w := readWindowND(c.node) // Prepare has checked the attributes (graph's op table)
	if w.kernel == nil {
		return nil, fmt.Errorf("kernel_shape is required")
	}
	if len(c.node.Outputs) > 1 && c.node.Outputs[1] != "" {
		return nil, unsupported("MaxPool's Indices output over 3+ spatial dimensions")
	}
	return &poolNDKernel{win: w, max: isMax, includePad: c.node.AttrInt("count_include_pad", 0) != 0}, nil
}

func (k *poolNDKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if x.DType != graph.Float32 || len(x.Shape) < 3 || len(x.Shape) > maxRank {
		return fmt.Errorf("pool input %s %v", x.DType, x.Shape)
	}
	var g ndGeom
	if err := k.win.resolveND(x.Shape[2:], k.win.kernel, &g); err != nil {
		return err
	}
	var sh dims
	sh[0], sh[1] = x.Shape[0], x.Shape[1]
	for i := 0; i < g.sp; i++ {
		sh[2+i] = int64(g.out[i])
	}
	setShape(out[0], graph.Float32, sh[:2+g.sp])
	return nil
}

func (k *poolNDKernel) run(_ *exec, in, out []*graph.Tensor) error {
	x := in[0]
	var g ndGeom
	if err := k.win.resolveND(x.Shape[2:], k.win.kernel, &g); err != nil {
		return err
	}
	planes := int(x.Shape[0] * x.Shape[1])
	inSize, outSize, kSize := prodN(&g.in, g.sp), prodN(&g.out, g.sp), prodN(&g.k, g.sp)
	var inStride [maxRank]int
	st := 1
	for i := g.sp - 1; i >= 0; i-- {
		inStride[i] = st
		st *= g.in[i]
	}
	y := out[0].F32
	for p := 0; p < planes; p++ {
		xc := x.F32[p*inSize : (p+1)*inSize]
		var oi [maxRank]int
		for o := 0; o < outSize; o++ {
			best, sum, cnt, padCnt := float32(math.Inf(-1)), float32(0), 0, 0
			var ki [maxRank]int
			for q := 0; q < kSize; q++ {
				off, inside, inPad := 0, true, true
				for i := 0; i < g.sp; i++ {
					pos := oi[i]*g.s[i] - g.pb[i] + ki[i]*g.d[i]
					if pos < 0 || pos >= g.in[i] {
						inside = false
					}
					if pos < -g.pb[i] || pos >= g.in[i]+g.pe[i] {
						inPad = false
					}
					off += pos * inStride[i]
				}
				if inPad {
					padCnt++
				}
				if inside {
					v := xc[off]
					if v > best || math.IsNaN(float64(v)) {
						best = v
					}
					sum += v
					cnt++
				}
				ndIndex(&ki, &g.k, g.sp)
			}
			switch {
			case k.max:
				y[p*outSize+o] = best
			case k.includePad:
				y[p*outSize+o] = sum / float32(padCnt)
			case cnt > 0:
				y[p*outSize+o] = sum / float32(cnt)
			default:
				y[p*outSize+o] = 0
			}
			ndIndex(&oi, &g.out, g.sp)
		}
	}
	return nil
}
