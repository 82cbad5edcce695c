package graph

import (
	"fmt"
	"math"
)

// ResizeMode is what the interpolation of a Resize (or Upsample) node
// depends on, besides sizes: the mode, the coordinate transformation, the
// nearest rounding and the cubic kernel's parameters.
type ResizeMode struct {
	Mode           string // nearest, linear or cubic
	Coord          string
	Nearest        string
	CubicA         float64
	ExcludeOutside bool
}

// ResizeModeOf reads a Resize or Upsample node's attributes; Upsample and
// Resize before opset 11 are asymmetric with floor rounding.
func ResizeModeOf(n *Node, opset int64) (ResizeMode, error) {
	m := ResizeMode{
		Mode: n.AttrString("mode", "nearest"), Coord: n.AttrString("coordinate_transformation_mode", "half_pixel"),
		Nearest: n.AttrString("nearest_mode", "round_prefer_floor"), CubicA: float64(n.AttrFloat("cubic_coeff_a", -0.75)),
		ExcludeOutside: n.AttrInt("exclude_outside", 0) != 0,
	}
	switch m.Mode {
	case "nearest", "linear", "cubic":
	case "bilinear", "trilinear": // Upsample's old names
		m.Mode = "linear"
	default:
		return m, fmt.Errorf("%s mode %q is not nearest, linear or cubic", n.OpType, m.Mode)
	}
	if n.OpType == "Upsample" || opset < 11 {
		m.Coord, m.Nearest = "asymmetric", "floor"
	}
	switch m.Coord {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize", "half_pixel_symmetric":
	default:
		return m, fmt.Errorf("coordinate_transformation_mode %q is unknown", m.Coord)
	}
	switch m.Nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return m, fmt.Errorf("nearest_mode %q is unknown", m.Nearest)
	}
	return m, nil
}

// Source maps output coordinate o of an axis resized from in to outLen
// elements at scale into the input. align_corners and tf_crop_and_resize
// divide by the unrounded length in·scale, as ONNX's reference does;
// pytorch_half_pixel tests the integer length and half_pixel_symmetric
// adjusts by their ratio, as onnxruntime does. roiLo and roiHi are the
// region of tf_crop_and_resize, as fractions of the axis.
func (m ResizeMode) Source(o, in, outLen int64, scale, roiLo, roiHi float64) float64 {
	x := float64(o)
	out := scale * float64(in)
	switch m.Coord {
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
		if outLen > 1 {
			return roiLo*float64(in-1) + x*(roiHi-roiLo)*float64(in-1)/float64(outLen-1)
		}
		return 0.5 * (roiLo + roiHi) * float64(in-1)
	}
	return x / scale
}

func (m ResizeMode) round(x float64) float64 {
	switch m.Nearest {
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

// MaxResizeTaps is the most input elements one output coordinate reads
// along an axis (cubic).
const MaxResizeTaps = 4

// Taps gives the input indices and weights that output coordinate o of an
// axis reads (at most MaxResizeTaps; idx and w must hold that many), and
// how many; 0 means the point lies outside a tf_crop_and_resize region and
// takes the extrapolation value.
func (m ResizeMode) Taps(o, in, outLen int64, scale, roiLo, roiHi float64, idx []int64, w []float64) int {
	if scale == 1 && outLen == in && m.Coord != "tf_crop_and_resize" {
		// An axis left alone is copied, whatever the mode (onnxruntime does
		// so; tf_half_pixel_for_nn would otherwise shift it by half a pixel).
		idx[0], w[0] = o, 1
		return 1
	}
	x := m.Source(o, in, outLen, scale, roiLo, roiHi)
	if m.Coord == "tf_crop_and_resize" && (x < 0 || x > float64(in-1)) {
		return 0
	}
	clamp := func(i int64) int64 { return min(max(i, 0), in-1) }
	switch m.Mode {
	case "nearest":
		idx[0], w[0] = clamp(int64(m.round(x))), 1
		return 1
	case "linear":
		x = min(max(x, 0), float64(in-1))
		i := int64(math.Floor(x))
		f := x - float64(i)
		idx[0], w[0] = i, 1-f
		if f == 0 || i+1 >= in {
			w[0] = 1
			return 1
		}
		idx[1], w[1] = i+1, f
		return 2
	}
	// cubic: Keys' kernel with coefficient a on the four neighbours.
	a := m.CubicA
	i := int64(math.Floor(x))
	t := x - float64(i)
	kern := func(d float64) float64 {
		d = math.Abs(d)
		switch {
		case d <= 1:
			return ((a+2)*d-(a+3))*d*d + 1
		case d < 2:
			return ((a*d-5*a)*d+8*a)*d - 4*a
		}
		return 0
	}
	sum := 0.0
	for k := int64(0); k < 4; k++ {
		j := i - 1 + k
		wk := kern(t + 1 - float64(k))
		if m.ExcludeOutside && (j < 0 || j >= in) {
			wk = 0
		}
		idx[k], w[k] = clamp(j), wk
		sum += wk
	}
	if m.ExcludeOutside && sum != 0 {
		for k := range 4 {
			w[k] /= sum
		}
	}
	return 4
}
