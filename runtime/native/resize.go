package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// resizeKernel is Resize (opset 10 onwards) and Upsample, in nearest,
// linear (N-linear) and cubic modes; graph.ResizeMode gives each output
// coordinate's input taps and weights, the same ones the autodiff's rule
// uses.
type resizeKernel struct {
	mode       graph.ResizeMode
	extrap     float32
	axes       []int64
	keepAspect string
	scalesAttr []float32 // Upsample-7
	scalesIn   int       // input index of scales, -1 if none
	sizesIn    int
	roiIn      int
}

func compileResize(c *compileCtx) (kernel, error) {
	n := c.node
	mode, err := graph.ResizeModeOf(n, c.opset)
	if err != nil {
		return nil, unsupported("%v", err)
	}
	k := &resizeKernel{
		mode: mode, extrap: n.AttrFloat("extrapolation_value", 0), axes: n.AttrInts("axes", nil),
		keepAspect: n.AttrString("keep_aspect_ratio_policy", "stretch"), scalesIn: -1, sizesIn: -1, roiIn: -1,
	}
	if n.AttrInt("antialias", 0) != 0 {
		return nil, unsupported("Resize with antialias")
	}
	switch {
	case n.OpType == "Upsample":
		if c.opset < 9 || n.Attr("scales") != nil {
			k.scalesAttr = n.AttrFloats("scales", nil)
		} else {
			k.scalesIn = 1
		}
	case c.opset < 11:
		k.scalesIn = 1
	default:
		if c.hasInput(1) {
			k.roiIn = 1
		}
		if c.hasInput(2) {
			k.scalesIn = 2
		}
		if c.hasInput(3) {
			k.sizesIn = 3
		}
	}
	switch k.keepAspect {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, fmt.Errorf("keep_aspect_ratio_policy %q", k.keepAspect)
	}
	return k, nil
}

func (k *resizeKernel) plan(in []*graph.Tensor, out, roiLo, roiHi *dims, scale *[maxRank]float64) error {
	x := in[0]
	r := len(x.Shape)
	if err := checkRank(r); err != nil {
		return err
	}
	var axes [maxRank]int
	na := r
	for i := range r {
		axes[i] = i
	}
	if k.axes != nil {
		na = len(k.axes)
		for i, a := range k.axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return err
			}
			axes[i] = ax
		}
	}
	for i := range r {
		out[i] = x.Shape[i]
		scale[i] = 1
		roiLo[i], roiHi[i] = 0, 1
	}
	var scales []float32
	if k.scalesAttr != nil {
		scales = k.scalesAttr
	} else if t := arg(in, k.scalesIn); k.scalesIn >= 0 && t != nil && len(t.F32) > 0 {
		if t.DType != graph.Float32 {
			return fmt.Errorf("scales are %s, not float32", t.DType)
		}
		scales = t.F32
	}
	var sizes []int64
	if t := arg(in, k.sizesIn); k.sizesIn >= 0 && t != nil && len(t.I64) > 0 {
		sizes = t.I64
	}
	switch {
	case sizes != nil:
		if len(sizes) != na {
			return fmt.Errorf("%d sizes for %d axes", len(sizes), na)
		}
		if k.keepAspect != "stretch" {
			s := math.Inf(1)
			if k.keepAspect == "not_smaller" {
				s = math.Inf(-1)
			}
			for i := 0; i < na; i++ {
				v := float64(sizes[i]) / float64(x.Shape[axes[i]])
				if k.keepAspect == "not_larger" {
					s = math.Min(s, v)
				} else {
					s = math.Max(s, v)
				}
			}
			for i := 0; i < na; i++ {
				ax := axes[i]
				scale[ax] = s
				out[ax] = int64(math.Round(s * float64(x.Shape[ax])))
			}
			break
		}
		for i := 0; i < na; i++ {
			ax := axes[i]
			out[ax] = sizes[i]
			scale[ax] = float64(sizes[i]) / float64(x.Shape[ax])
		}
	case scales != nil:
		if len(scales) != na {
			return fmt.Errorf("%d scales for %d axes", len(scales), na)
		}
		for i := 0; i < na; i++ {
			ax := axes[i]
			if scales[i] <= 0 {
				return fmt.Errorf("scale %g is not positive", scales[i])
			}
			scale[ax] = float64(scales[i])
			out[ax] = int64(math.Floor(float64(x.Shape[ax]) * float64(scales[i])))
		}
	default:
		return fmt.Errorf("neither scales nor sizes given")
	}
	if t := arg(in, k.roiIn); k.mode.Coord == "tf_crop_and_resize" && k.roiIn >= 0 && t != nil {
		if len(t.F32) != 2*na {
			return fmt.Errorf("roi has %d values for %d axes", len(t.F32), na)
		}
		for i := 0; i < na; i++ {
			roiLo[axes[i]], roiHi[axes[i]] = int64(math.Float64bits(float64(t.F32[i]))), int64(math.Float64bits(float64(t.F32[na+i])))
		}
	} else {
		for i := 0; i < r; i++ {
			roiLo[i], roiHi[i] = int64(math.Float64bits(0)), int64(math.Float64bits(1))
		}
	}
	return nil
}

func (k *resizeKernel) infer(in, out []*graph.Tensor) error {
	if err := checkF32(in[0]); err != nil {
		return err
	}
	var sh, lo, hi dims
	var sc [maxRank]float64
	if err := k.plan(in, &sh, &lo, &hi, &sc); err != nil {
		return err
	}
	setShape(out[0], graph.Float32, sh[:len(in[0].Shape)])
	return nil
}

// resizeState holds per-axis tap tables: for each output coordinate, the
// number of input taps (0: extrapolate) and their indices and weights.
type resizeState struct {
	n    []int
	idx  []int64
	w    []float64
	wt   []float64 // resize2D's bilinear weight products, four per output pixel
	cols []resizeCol
	task resizeTask
}

func (*resizeKernel) newState() any { return new(resizeState) }

func (k *resizeKernel) run(x *exec, in, out []*graph.Tensor) error {
	t, y := in[0], out[0]
	var sh, lo, hi dims
	var sc [maxRank]float64
	if err := k.plan(in, &sh, &lo, &hi, &sc); err != nil {
		return err
	}
	r := len(t.Shape)
	var base [maxRank]int
	total := 0
	for i := 0; i < r; i++ {
		base[i] = total
		total += int(sh[i])
	}
	const K = graph.MaxResizeTaps
	st := x.state.(*resizeState)
	st.n, st.idx, st.w = growSlice(st.n, total), growSlice(st.idx, K*total), growSlice(st.w, K*total)
	for ax := 0; ax < r; ax++ {
		rl, rh := math.Float64frombits(uint64(lo[ax])), math.Float64frombits(uint64(hi[ax]))
		for o := 0; o < int(sh[ax]); o++ {
			j := base[ax] + o
			st.n[j] = k.mode.Taps(int64(o), t.Shape[ax], sh[ax], sc[ax], rl, rh, st.idx[K*j:K*j+K], st.w[K*j:K*j+K])
		}
	}
	if resize2D(x.pool, st, t, y, sh[:r], base[:r]) {
		return nil
	}
	var stride [maxRank]int
	s := 1
	for i := r - 1; i >= 0; i-- {
		stride[i] = s
		s *= int(t.Shape[i])
	}
	var idx [maxRank]int
	for o := range y.F32 {
		var active [maxRank]int // axes with several taps
		na, off, extrap, w0 := 0, 0, false, 1.0
		for ax := 0; ax < r; ax++ {
			j := base[ax] + idx[ax]
			switch st.n[j] {
			case 0:
				extrap = true
			case 1:
				off += int(st.idx[K*j]) * stride[ax]
				w0 *= st.w[K*j]
			default:
				active[na] = ax
				na++
			}
		}
		if extrap {
			y.F32[o] = k.extrap
		} else {
			// Sum over every combination of the active axes' taps.
			var tap [maxRank]int
			v := 0.0
			for {
				w, p := w0, off
				for b := 0; b < na; b++ {
					j := base[active[b]] + idx[active[b]]
					w *= st.w[K*j+tap[b]]
					p += int(st.idx[K*j+tap[b]]) * stride[active[b]]
				}
				v += w * float64(t.F32[p])
				b := na - 1
				for ; b >= 0; b-- {
					tap[b]++
					if tap[b] < st.n[base[active[b]]+idx[active[b]]] {
						break
					}
					tap[b] = 0
				}
				if b < 0 {
					break
				}
			}
			y.F32[o] = float32(v)
		}
		for ax := r - 1; ax >= 0; ax-- {
			idx[ax]++
			if idx[ax] < int(sh[ax]) {
				break
			}
			idx[ax] = 0
		}
	}
	return nil
}

func init() {
	register("Resize", compileResize)
	register("Upsample", compileResize)
}
