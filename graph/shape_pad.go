package graph

import "fmt"

// padShape is Pad's output shape when the pads are known: a dimension with
// no padding keeps its (possibly symbolic) size.
func padShape(n *Node, in []ValueInfo, c map[string]*Tensor) ([]ValueInfo, error) {
	out := ValueInfo{DType: in[0].DType}
	if !in[0].HasShape {
		return []ValueInfo{out}, nil
	}
	r := len(in[0].Shape)
	var pads []int64
	if a := n.Attr("pads"); a != nil && len(n.Inputs) < 2 {
		pads = a.Ints
	} else if len(in) > 1 && c[in[1].Name] != nil {
		v, err := c[in[1].Name].AsInt64s()
		if err != nil {
			return nil, err
		}
		pads = v
	} else {
		out.Shape, out.HasShape = make(Shape, r), true
		for i := range out.Shape {
			out.Shape[i] = Unknown
		}
		return []ValueInfo{out}, nil
	}
	axes := make([]int64, r)
	for i := range axes {
		axes[i] = int64(i)
	}
	if len(in) > 3 && in[3].Name != "" {
		t := c[in[3].Name]
		if t == nil {
			return []ValueInfo{out}, nil
		}
		v, err := t.AsInt64s()
		if err != nil {
			return nil, err
		}
		axes = v
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("pads has %d values for %d axes", len(pads), len(axes))
	}
	out.Shape, out.HasShape = append(Shape(nil), in[0].Shape...), true
	for i, a := range axes {
		if a < 0 {
			a += int64(r)
		}
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("pad axis %d out of range", axes[i])
		}
		p := pads[i] + pads[i+len(axes)]
		switch d := out.Shape[a]; {
		case p == 0:
		case d.Known():
			if d.Value+p < 0 {
				return nil, fmt.Errorf("pads crop axis %d of size %d below zero", a, d.Value)
			}
			out.Shape[a] = Dim{Value: d.Value + p}
		default:
			out.Shape[a] = Unknown
		}
	}
	return []ValueInfo{out}, nil
}

// gatherElementsShape: the output has the indices' shape and the data's dtype.
func gatherElementsShape(_ *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) < 2 {
		return nil, nil
	}
	out := in[1]
	out.Name, out.DType = "", in[0].DType
	return []ValueInfo{out}, nil
}

func init() {
	RegisterShapeFunc("Pad", padShape)
	RegisterShapeFunc("Trilu", same)
	RegisterShapeFunc("GatherElements", gatherElementsShape)
}

// PadIndex maps output index j of an axis of size d padded by begin and end
// to the input index it copies, or −1 for the pad value. Negative pads crop
// first and the positive ones pad what is left, as ONNX's reference does;
// edge, reflect (about the edge elements, repeatedly, as numpy) and wrap then
// read the cropped axis.
func PadIndex(mode string, j, begin, end, d int64) int64 {
	lo := max(-begin, 0)
	n := d - lo - max(-end, 0)
	if n < 0 {
		return -1
	}
	s := PadSource(mode, j-max(begin, 0), n)
	if s < 0 {
		return -1
	}
	return s + lo
}

// PadSource maps position s of a padded axis (counted from the input's
// first element, so negative in the begin padding) into an input axis of
// size d for Pad's mode: constant (−1: the pad value), edge, reflect or wrap.
func PadSource(mode string, s, d int64) int64 {
	if d <= 0 {
		return -1
	}
	if s >= 0 && s < d {
		return s
	}
	switch mode {
	case "edge":
		if s < 0 {
			return 0
		}
		return d - 1
	case "wrap":
		m := s % d
		if m < 0 {
			m += d
		}
		return m
	case "reflect":
		if d == 1 {
			return 0
		}
		period := 2 * (d - 1)
		m := s % period
		if m < 0 {
			m += period
		}
		if m >= d {
			m = period - m
		}
		return m
	}
	return -1
}
