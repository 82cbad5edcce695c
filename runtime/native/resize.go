package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// resizeKernel is Resize (opset 10 onwards) and Upsample, in nearest and
// linear (N-linear) modes.
type resizeKernel struct {
	linear     bool
	coord      string
	nearest    string
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
	k := &resizeKernel{
		coord: n.AttrString("coordinate_transformation_mode", "half_pixel"), nearest: n.AttrString("nearest_mode", "round_prefer_floor"),
		extrap: n.AttrFloat("extrapolation_value", 0), axes: n.AttrInts("axes", nil),
		keepAspect: n.AttrString("keep_aspect_ratio_policy", "stretch"), scalesIn: -1, sizesIn: -1, roiIn: -1,
	}
	switch mode := n.AttrString("mode", "nearest"); mode {
	case "nearest":
	case "linear", "bilinear", "trilinear":
		k.linear = true
	default:
		return nil, unsupported("%s mode %q", n.OpType, mode)
	}
	if n.AttrInt("antialias", 0) != 0 {
		return nil, unsupported("Resize with antialias")
	}
	switch {
	case n.OpType == "Upsample":
		k.coord, k.nearest = "asymmetric", "floor"
		if c.opset < 9 || n.Attr("scales") != nil {
			k.scalesAttr = n.AttrFloats("scales", nil)
		} else {
			k.scalesIn = 1
		}
	case c.opset < 11:
		k.coord, k.nearest = "asymmetric", "floor"
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
	switch k.coord {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize", "half_pixel_symmetric":
	default:
		return nil, unsupported("coordinate_transformation_mode %q", k.coord)
	}
	switch k.nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return nil, unsupported("nearest_mode %q", k.nearest)
	}
	switch k.keepAspect {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, fmt.Errorf("keep_aspect_ratio_policy %q", k.keepAspect)
	}
	return k, nil
}

// plan computes the output shape and per-axis scale and ROI.
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
	if t := arg(in, k.roiIn); k.coord == "tf_crop_and_resize" && k.roiIn >= 0 && t != nil {
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

// source maps output coordinate o along an axis resized from in to outLen
// elements at scale to the input coordinate. align_corners and
// tf_crop_and_resize divide by the unrounded output length in·scale, as
// ONNX's reference does; pytorch_half_pixel tests the integer length and
// half_pixel_symmetric adjusts by their ratio, as onnxruntime does.
func (k *resizeKernel) source(o int, in, outLen int64, scale, roiLo, roiHi float64) float64 {
	x := float64(o)
	out := scale * float64(in)
	switch k.coord {
	case "half_pixel":
		return (x+0.5)/scale - 0.5
	case "half_pixel_symmetric":
		adj := float64(outLen) / out
		center := float64(in) / 2
		return center*(1-adj) + (x+0.5)/scale - 0.5
	case "pytorch_half_pixel":
		if outLen > 1 {
			return (x+0.5)/scale - 0.5
		}
		return 0
	case "align_corners":
		if out == 1 {
			return 0
		}
		return x * float64(in-1) / (out - 1)
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	case "tf_crop_and_resize":
		if out > 1 {
			return roiLo*float64(in-1) + x*(roiHi-roiLo)*float64(in-1)/(out-1)
		}
		return 0.5 * (roiLo + roiHi) * float64(in-1)
	}
	return x / scale
}

func (k *resizeKernel) round(x float64) float64 {
	switch k.nearest {
	case "floor":
		return math.Floor(x)
	case "ceil":
		return math.Ceil(x)
	case "round_prefer_ceil":
		return math.Floor(x + 0.5)
	}
	if x == math.Floor(x)+0.5 {
		return math.Floor(x)
	}
	return math.Round(x)
}

// resizeState holds per-axis lookup tables: for each output coordinate, the
// two input indices and the weight of the second (-1 index: extrapolate).
type resizeState struct {
	i0, i1 []int
	w      []float64
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
	st := x.state.(*resizeState)
	st.i0, st.i1, st.w = growSlice(st.i0, total), growSlice(st.i1, total), growSlice(st.w, total)
	for ax := 0; ax < r; ax++ {
		n := t.Shape[ax]
		rl, rh := math.Float64frombits(uint64(lo[ax])), math.Float64frombits(uint64(hi[ax]))
		for o := 0; o < int(sh[ax]); o++ {
			j := base[ax] + o
			src := k.source(o, n, sh[ax], sc[ax], rl, rh)
			if k.coord == "tf_crop_and_resize" && (src < 0 || src > float64(n-1)) {
				st.i0[j], st.i1[j], st.w[j] = -1, -1, 0
				continue
			}
			if !k.linear {
				i := int(min(max(k.round(src), 0), float64(n-1)))
				st.i0[j], st.i1[j], st.w[j] = i, i, 0
				continue
			}
			src = min(max(src, 0), float64(n-1))
			i := int(math.Floor(src))
			st.i0[j], st.i1[j], st.w[j] = i, min(i+1, int(n-1)), src-float64(i)
		}
	}
	var stride [maxRank]int
	s := 1
	for i := r - 1; i >= 0; i-- {
		stride[i] = s
		s *= int(t.Shape[i])
	}
	var idx [maxRank]int
	for o := range y.F32 {
		var active [maxRank]int
		na, off, extrap := 0, 0, false
		for ax := 0; ax < r; ax++ {
			j := base[ax] + idx[ax]
			if st.i0[j] < 0 {
				extrap = true
				break
			}
			off += st.i0[j] * stride[ax]
			if st.w[j] != 0 && st.i1[j] != st.i0[j] {
				active[na] = ax
				na++
			}
		}
		if extrap {
			y.F32[o] = k.extrap
		} else {
			var v float64
			for c := 0; c < 1<<na; c++ {
				w, p := 1.0, off
				for b := 0; b < na; b++ {
					ax := active[b]
					j := base[ax] + idx[ax]
					if c&(1<<b) != 0 {
						w *= st.w[j]
						p += (st.i1[j] - st.i0[j]) * stride[ax]
					} else {
						w *= 1 - st.w[j]
					}
				}
				v += w * float64(t.F32[p])
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
