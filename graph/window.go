package graph

import (
	"errors"
	"fmt"
)

// Window is the resolved geometry of a Conv, ConvTranspose or pooling node
// over its spatial axes: explicit pads (auto_pad and ConvTranspose's
// output_shape resolved) and input and output sizes, −1 where unknown. It is
// the one place that does this arithmetic: shape inference, the autodiff's
// rules and the native kernels all use it.
type Window struct {
	In, Out, Kernel, Strides, Dilations []int64
	PadBegin, PadEnd, OutPad            []int64
	Group                               int64
}

func fill(v []int64, k int, def int64) []int64 {
	if len(v) == k {
		return append([]int64(nil), v...)
	}
	out := make([]int64, k)
	for i := range out {
		out[i] = def
	}
	return out
}

// NewWindow resolves n's window for input spatial sizes in (−1 where
// unknown) and, when n has no kernel_shape, the kernel's spatial sizes
// (from the weights; −1 where unknown).
func NewWindow(n *Node, in, kernel []int64) (Window, error) {
	k := len(in)
	g := Window{Group: n.AttrInt("group", 1), In: append([]int64(nil), in...)}
	g.Kernel = n.AttrInts("kernel_shape", nil)
	if g.Kernel == nil {
		g.Kernel = kernel
	}
	if len(g.Kernel) != k {
		return g, fmt.Errorf("kernel shape of rank %d for %d spatial axes", len(g.Kernel), k)
	}
	g.Strides = fill(n.AttrInts("strides", nil), k, 1)
	g.Dilations = fill(n.AttrInts("dilations", nil), k, 1)
	g.OutPad = fill(n.AttrInts("output_padding", nil), k, 0)
	for i := 0; i < k; i++ {
		if g.Strides[i] < 1 || g.Dilations[i] < 1 || g.Kernel[i] == 0 || g.Kernel[i] < -1 {
			return g, fmt.Errorf("kernel %v, strides %v, dilations %v: sizes must be positive", g.Kernel, g.Strides, g.Dilations)
		}
	}
	pads := fill(n.AttrInts("pads", nil), 2*k, 0)
	g.PadBegin, g.PadEnd = pads[:k:k], pads[k:]
	g.Out = make([]int64, k)
	auto := n.AttrString("auto_pad", "NOTSET")
	transpose := n.OpType == "ConvTranspose"
	outShape := n.AttrInts("output_shape", nil)
	if len(outShape) > k {
		outShape = outShape[len(outShape)-k:]
	}
	ceil := n.AttrInt("ceil_mode", 0) != 0
	for i := 0; i < k; i++ {
		g.Out[i] = -1
		if g.In[i] < 0 || g.Kernel[i] < 0 {
			if auto == "VALID" {
				g.PadBegin[i], g.PadEnd[i] = 0, 0
			}
			continue
		}
		a := Axis{In: g.In[i], Kernel: g.Kernel[i], Stride: g.Strides[i], Dilation: g.Dilations[i],
			PadBegin: g.PadBegin[i], PadEnd: g.PadEnd[i], OutPad: g.OutPad[i], Want: -1}
		if outShape != nil {
			a.Want = outShape[i]
		}
		if err := a.Resolve(auto, transpose, ceil); err != nil {
			return g, err
		}
		g.PadBegin[i], g.PadEnd[i], g.Out[i] = a.PadBegin, a.PadEnd, a.Out
	}
	return g, nil
}

// Axis is one spatial axis of a window op, all sizes known. Resolve fills
// Out and, where auto_pad or output_shape decide them, the pads. It
// allocates nothing, so kernels call it on every run.
type Axis struct {
	In, Kernel, Stride, Dilation int64
	PadBegin, PadEnd             int64 // explicit pads; resolved
	OutPad                       int64 // ConvTranspose's output_padding
	Want                         int64 // ConvTranspose's output_shape entry, or −1
	Out                          int64
}

// Resolve computes the axis' pads and output size for auto_pad (NOTSET,
// VALID, SAME_UPPER, SAME_LOWER), as ConvTranspose when transpose, with
// ceil_mode when ceil (pools).
func (a *Axis) Resolve(autoPad string, transpose, ceil bool) error {
	in, s, d := a.In, a.Stride, a.Dilation
	if s < 1 || d < 1 || a.Kernel < 1 {
		return fmt.Errorf("kernel %d, stride %d, dilation %d: sizes must be positive", a.Kernel, s, d)
	}
	ext := d*(a.Kernel-1) + 1
	if transpose {
		full := s*(in-1) + a.OutPad + ext
		switch {
		case a.Want >= 0 || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER":
			want := in * s
			if a.Want >= 0 {
				want = a.Want
			}
			// A wanted size beyond what the input reaches stays zero there.
			total := max(full-want, 0)
			if autoPad == "SAME_UPPER" {
				a.PadBegin, a.PadEnd = total/2, total-total/2
			} else {
				a.PadBegin, a.PadEnd = total-total/2, total/2
			}
			a.Out = want
		case autoPad == "VALID":
			a.PadBegin, a.PadEnd = 0, 0
			a.Out = full
		default:
			a.Out = full - a.PadBegin - a.PadEnd
		}
		if a.Out < 0 {
			return errors.New("negative output size")
		}
		return nil
	}
	switch autoPad {
	case "SAME_UPPER", "SAME_LOWER":
		want := (in + s - 1) / s
		total := max((want-1)*s+ext-in, 0)
		if autoPad == "SAME_UPPER" {
			a.PadBegin, a.PadEnd = total/2, total-total/2
		} else {
			a.PadBegin, a.PadEnd = total-total/2, total/2
		}
	case "VALID":
		a.PadBegin, a.PadEnd = 0, 0
	}
	span := in + a.PadBegin + a.PadEnd - ext
	if span < 0 {
		return fmt.Errorf("kernel extent %d exceeds padded input %d", ext, in+a.PadBegin+a.PadEnd)
	}
	o := span/s + 1
	if ceil && span%s != 0 {
		o++
		if (o-1)*s >= in+a.PadBegin { // the last window would start in the end padding
			o--
		}
	}
	a.Out = o
	return nil
}

// Static reports an error unless every spatial size is known.
func (g Window) Static() error {
	for i := range g.In {
		if g.In[i] < 0 || g.Out[i] < 0 || g.Kernel[i] < 0 {
			return errors.New("the spatial sizes of input and output must be known")
		}
	}
	return nil
}

// dimsOf turns symbolic dimensions into sizes, −1 where unknown.
func dimsOf(s Shape) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = -1
		if d.Known() {
			out[i] = d.Value
		}
	}
	return out
}

// WindowOf resolves n's window from the facts of its input x and weights w
// (nil when absent).
func WindowOf(n *Node, x Shape, w *Fact) (Window, error) {
	var kernel []int64
	if w != nil && w.HasShape && len(w.Shape) == len(x) {
		kernel = dimsOf(w.Shape[2:])
	}
	return NewWindow(n, dimsOf(x[2:]), kernel)
}

func inferConv(n *Node, ins []*Fact) ([]*Fact, error) {
	x := in0(ins)
	out := &Fact{DType: x.DType}
	if !x.HasShape || len(x.Shape) < 3 {
		return []*Fact{out}, nil
	}
	var w *Fact
	if len(ins) > 1 {
		w = ins[1]
	}
	geo, err := WindowOf(n, x.Shape, w)
	if err != nil {
		return nil, err
	}
	s := Shape{x.Shape[0], Unknown}
	switch n.OpType {
	case "Conv":
		if w != nil && w.HasShape && len(w.Shape) > 0 {
			s[1] = w.Shape[0]
		}
	case "ConvTranspose":
		if w != nil && w.HasShape && len(w.Shape) > 1 && w.Shape[1].Known() {
			s[1] = Dim{Value: w.Shape[1].Value * n.AttrInt("group", 1)}
		}
	default:
		s[1] = x.Shape[1]
	}
	for _, o := range geo.Out {
		if o < 0 {
			s = append(s, Unknown)
		} else {
			s = append(s, Dim{Value: o})
		}
	}
	outs := []*Fact{out}
	out.Shape, out.HasShape = s, true
	if n.OpType == "MaxPool" && len(n.Outputs) > 1 {
		outs = append(outs, ranked(Int64, s))
	}
	return outs, nil
}

// AxesArg reads a node's integer list argument that is input idx from opset
// from and the "axes" attribute before. The node's form tells which (an
// older node cannot have the input), so the opset is not needed; ok is false
// when the input is not a constant.
func (b *Facts) AxesArg(n *Node, idx int, from int64) ([]int64, bool) {
	if name := n.Input(idx); name != "" {
		t := b.Consts[name]
		if t == nil {
			return nil, false
		}
		v, err := t.AsInt64s()
		return v, err == nil
	}
	return n.AttrInts("axes", nil), true
}

func normAxes(axes []int64, r int) []int64 {
	out := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += int64(r)
		}
		out[i] = a
	}
	return out
}

func allAxes(r int) []int64 {
	out := make([]int64, r)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}
