package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// padKernel is Pad in every opset form: pads and value as attributes (opset
// 2–10), as inputs (11 on), with an axes input (18 on); modes constant,
// reflect, edge and wrap (19). Negative pads crop, before the positive ones
// pad, as ONNX's reference does (graph.PadIndex maps the indices).
type padKernel struct {
	mode      string
	padsAttr  []int64 // opset < 11
	valueAttr float32
	attrForm  bool
}

type padState struct {
	maps [maxRank][]int // per axis: output index → input index, −1 for the constant
}

func compilePad(c *compileCtx) (kernel, error) {
	n := c.node
	k := &padKernel{mode: n.AttrString("mode", "constant")}
	switch k.mode {
	case "constant", "reflect", "edge":
	case "wrap":
		if c.opset < 19 {
			return nil, fmt.Errorf("Pad mode \"wrap\" needs opset 19, model has %d", c.opset)
		}
	default:
		return nil, fmt.Errorf("Pad mode %q is not constant, reflect, edge or wrap", k.mode)
	}
	if c.opset < 11 {
		k.attrForm = true
		a := n.Attr("pads")
		if a == nil {
			a = n.Attr("paddings") // Pad-1
		}
		if a == nil {
			return nil, fmt.Errorf("Pad needs a pads attribute before opset 11")
		}
		k.padsAttr = a.Ints
		k.valueAttr = n.AttrFloat("value", 0)
	}
	return k, nil
}

func (*padKernel) newState() any { return new(padState) }

// pads returns the begin and end pads of every axis.
func (k *padKernel) pads(in []*graph.Tensor) (begin, end dims, err error) {
	x := in[0]
	r := len(x.Shape)
	var p []int64
	if k.attrForm {
		p = k.padsAttr
	} else {
		pt := arg(in, 1)
		if pt == nil {
			return begin, end, fmt.Errorf("Pad needs its pads input")
		}
		if pt.DType != graph.Int64 {
			return begin, end, fmt.Errorf("pads must be int64, got %s", pt.DType)
		}
		p = pt.I64
	}
	axes := make([]int, 0, maxRank)
	if at := arg(in, 3); at != nil && !k.attrForm {
		vals, err := at.AsInt64s()
		if err != nil {
			return begin, end, fmt.Errorf("Pad axes: %w", err)
		}
		for _, a := range vals {
			if a < -int64(r) || a >= int64(r) {
				return begin, end, fmt.Errorf("Pad axis %d out of range for rank %d", a, r)
			}
			if a < 0 {
				a += int64(r)
			}
			for _, b := range axes {
				if b == int(a) {
					return begin, end, fmt.Errorf("Pad axis %d repeated", a)
				}
			}
			axes = append(axes, int(a))
		}
	} else {
		for i := 0; i < r; i++ {
			axes = append(axes, i)
		}
	}
	if len(p) != 2*len(axes) {
		return begin, end, fmt.Errorf("pads has %d values, want %d (2 per padded axis)", len(p), 2*len(axes))
	}
	for i, a := range axes {
		begin[a], end[a] = p[i], p[i+len(axes)]
	}
	return begin, end, nil
}

func (k *padKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	begin, end, err := k.pads(in)
	if err != nil {
		return err
	}
	var sh dims
	for i, d := range x.Shape {
		sh[i] = d + begin[i] + end[i]
		if sh[i] < 0 {
			return fmt.Errorf("pads %d, %d crop axis %d of size %d below zero", begin[i], end[i], i, d)
		}
		kept := d - max(-begin[i], 0) - max(-end[i], 0)
		if k.mode != "constant" && sh[i] > 0 && kept <= 0 {
			return fmt.Errorf("Pad mode %q cannot pad axis %d: nothing is left of it after cropping", k.mode, i)
		}
	}
	if v := arg(in, 2); v != nil && !k.attrForm {
		if v.DType != x.DType {
			return fmt.Errorf("constant_value is %s, data is %s", v.DType, x.DType)
		}
		if graph.NumElements(v.Shape) != 1 {
			return fmt.Errorf("constant_value must hold one value, has shape %v", v.Shape)
		}
	}
	setShape(out[0], x.DType, sh[:len(x.Shape)])
	return nil
}

func (k *padKernel) run(x *exec, in, out []*graph.Tensor) error {
	begin, end, err := k.pads(in)
	if err != nil {
		return err
	}
	st := x.state.(*padState)
	src, dst := in[0], out[0]
	r := len(src.Shape)
	for a := 0; a < r; a++ {
		n := int(dst.Shape[a])
		st.maps[a] = growSlice(st.maps[a], n)[:n]
		for j := 0; j < n; j++ {
			st.maps[a][j] = int(graph.PadIndex(k.mode, int64(j), begin[a], end[a], src.Shape[a]))
		}
	}
	switch src.DType {
	case graph.Float32:
		v := k.valueAttr
		if c := arg(in, 2); c != nil && !k.attrForm {
			v = c.F32[0]
		}
		padCopy(data[float32](dst), data[float32](src), src.Shape, dst.Shape, &st.maps, v)
	case graph.Int64:
		v := int64(k.valueAttr)
		if c := arg(in, 2); c != nil && !k.attrForm {
			v = c.I64[0]
		}
		padCopy(data[int64](dst), data[int64](src), src.Shape, dst.Shape, &st.maps, v)
	case graph.Bool:
		v := k.valueAttr != 0
		if c := arg(in, 2); c != nil && !k.attrForm {
			v = c.B[0]
		}
		padCopy(data[bool](dst), data[bool](src), src.Shape, dst.Shape, &st.maps, v)
	default:
		return fmt.Errorf("Pad of %s", src.DType)
	}
	return nil
}

// padCopy fills d row by row: the outer axes pick a source row (or the
// constant), the last axis maps element by element.
func padCopy[T elem](d, s []T, sShape, dShape []int64, maps *[maxRank][]int, value T) {
	r := len(dShape)
	if len(d) == 0 {
		return
	}
	if r == 0 {
		d[0] = s[0]
		return
	}
	var stride dims
	st := int64(1)
	for i := r - 1; i >= 0; i-- {
		stride[i] = st
		st *= sShape[i]
	}
	last := maps[r-1]
	n := len(last)
	// the longest run of the row that reads consecutive source elements
	// (the interior, for constant padding) is copied in one piece
	lo, hi := 0, 0
	for j := 0; j < n; {
		if last[j] < 0 {
			j++
			continue
		}
		k := j + 1
		for k < n && last[k] == last[k-1]+1 {
			k++
		}
		if k-j > hi-lo {
			lo, hi = j, k
		}
		j = k
	}
	var idx dims
	for o := 0; o < len(d); o += n {
		base, inside := 0, true
		for a := 0; a < r-1; a++ {
			m := maps[a][idx[a]]
			if m < 0 {
				inside = false
				break
			}
			base += m * int(stride[a])
		}
		row := d[o : o+n]
		if !inside {
			for j := range row {
				row[j] = value
			}
		} else {
			for j, m := range last[:lo] {
				if m < 0 {
					row[j] = value
				} else {
					row[j] = s[base+m]
				}
			}
			if hi > lo {
				copy(row[lo:hi], s[base+last[lo]:base+last[lo]+hi-lo])
			}
			for j := hi; j < n; j++ {
				if m := last[j]; m < 0 {
					row[j] = value
				} else {
					row[j] = s[base+m]
				}
			}
		}
		for a := r - 2; a >= 0; a-- {
			idx[a]++
			if idx[a] < dShape[a] {
				break
			}
			idx[a] = 0
		}
	}
}

func init() {
	register("Pad", compilePad)
}
