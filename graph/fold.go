package graph

// maxFold bounds the integer tensors fold evaluates: argument vectors, not data.
const maxFold = 256

// fold is the value half of inference: it evaluates n when it computes a
// small int64 tensor (or a float32 vector by Concat) from known ones — the
// argument arithmetic exporters emit, e.g. PyTorch's F.pad writes its pads as
// ConstantOfShape → Concat → Reshape → Slice → Transpose → Reshape → Cast —
// and records the value in Consts, so later rules (and the autodiff's) read
// those arguments as constants.
func (b *Facts) fold(n *Node) {
	if len(n.Outputs) != 1 || n.Outputs[0] == "" || (n.Domain != "" && n.Domain != "ai.onnx") {
		return
	}
	if o := Op(n.OpType); o == nil || !o.hasRequired(n, b.Opset) {
		return
	}
	var ins []*Tensor
	for i, name := range n.Inputs {
		if name == "" {
			ins = append(ins, nil)
			continue
		}
		if n.OpType == "Shape" && i == 0 {
			// Shape's data stands in as its dimensions.
			var dims []int64
			if t := b.Consts[name]; t != nil {
				dims = append([]int64(nil), t.Shape...)
			} else if d, ok := b.staticDims(name); ok {
				dims = d
			} else {
				return
			}
			ins = append(ins, NewInt64([]int64{int64(len(dims))}, dims))
			continue
		}
		t := b.Consts[name]
		if t == nil {
			t = b.svalTensor(name)
		}
		if t == nil || NumElements(t.Shape) > maxFold {
			return
		}
		ins = append(ins, t)
	}
	if len(ins) == 0 {
		return
	}
	t := foldOp(n, ins, b.Opset)
	switch {
	case t == nil:
	case t.DType == Int64 && len(t.I64) <= maxFold, t.DType == Float32 && len(t.F32) <= maxFold:
		b.Consts[n.Outputs[0]] = t
	}
}

// svalTensor is a shape vector (or scalar) whose symbolic value is fully
// known, as a constant.
func (b *Facts) svalTensor(name string) *Tensor {
	in := b.Values[name]
	if in == nil || in.Value == nil || !in.HasShape || len(in.Shape) > 1 || in.DType != Int64 {
		return nil
	}
	v := make([]int64, len(in.Value))
	for i, d := range in.Value {
		if !d.Known() {
			return nil
		}
		v[i] = d.Value
	}
	if len(in.Shape) == 0 {
		if len(v) != 1 {
			return nil
		}
		return ScalarInt64(v[0])
	}
	return NewInt64([]int64{int64(len(v))}, v)
}

func ints(t *Tensor) ([]int64, bool) {
	if t == nil {
		return nil, false
	}
	v, err := t.AsInt64s()
	return v, err == nil
}

func foldOp(n *Node, in []*Tensor, opset int64) *Tensor {
	x := in[0]
	switch n.OpType {
	case "Shape":
		start, end := n.AttrInt("start", 0), n.AttrInt("end", int64(len(x.I64)))
		r := int64(len(x.I64))
		start, end = clampIdx(start, r), clampIdx(end, r)
		if end < start {
			end = start
		}
		return NewInt64([]int64{end - start}, append([]int64(nil), x.I64[start:end]...))
	case "Cast":
		if DType(n.AttrInt("to", 0)) != Int64 {
			return nil
		}
		v, ok := ints(x)
		if !ok {
			return nil
		}
		return NewInt64(x.Shape, v)
	case "Identity":
		return x
	case "Neg":
		if x.DType != Int64 {
			return nil
		}
		out := make([]int64, len(x.I64))
		for i, v := range x.I64 {
			out[i] = -v
		}
		return NewInt64(x.Shape, out)
	case "Add", "Sub", "Mul", "Div":
		y := in[1]
		if x.DType != Int64 || y == nil || y.DType != Int64 {
			return nil
		}
		shape := x.Shape
		switch {
		case len(x.I64) == len(y.I64) && len(x.Shape) == len(y.Shape):
		case len(y.I64) == 1 && len(y.Shape) <= len(x.Shape):
		case len(x.I64) == 1 && len(x.Shape) <= len(y.Shape):
			shape = y.Shape
		default:
			return nil
		}
		m := max(len(x.I64), len(y.I64))
		out := make([]int64, m)
		for i := range out {
			a, c := x.I64[i%len(x.I64)], y.I64[i%len(y.I64)]
			switch n.OpType {
			case "Add":
				out[i] = a + c
			case "Sub":
				out[i] = a - c
			case "Div":
				if c == 0 {
					return nil
				}
				out[i] = a / c
			default:
				out[i] = a * c
			}
		}
		return NewInt64(shape, out)
	case "ConstantOfShape":
		dims, ok := ints(x)
		if !ok || len(dims) > 1 {
			return nil
		}
		v := int64(0)
		if a := n.Attr("value"); a != nil && a.T != nil {
			if a.T.DType != Int64 || len(a.T.I64) != 1 {
				return nil
			}
			v = a.T.I64[0]
		}
		cnt := NumElements(dims)
		if cnt < 0 || cnt > maxFold {
			return nil
		}
		out := make([]int64, cnt)
		for i := range out {
			out[i] = v
		}
		return NewInt64(dims, out)
	case "Concat":
		if len(x.Shape) != 1 {
			return nil
		}
		if x.DType == Float32 { // Resize scales written as Concat([1, 1], [2, 2])
			var out []float32
			for _, t := range in {
				if t == nil || t.DType != Float32 || len(t.Shape) != 1 {
					return nil
				}
				out = append(out, t.F32...)
			}
			return NewFloat32([]int64{int64(len(out))}, out)
		}
		var out []int64
		for _, t := range in {
			if t == nil || t.DType != Int64 || len(t.Shape) != 1 {
				return nil
			}
			out = append(out, t.I64...)
		}
		return NewInt64([]int64{int64(len(out))}, out)
	case "Reshape", "Unsqueeze", "Squeeze", "Flatten":
		if x.DType != Int64 {
			return nil
		}
		shape, ok := foldShape(n, in, opset)
		if !ok {
			return nil
		}
		return NewInt64(shape, x.I64)
	case "Transpose":
		if x.DType != Int64 {
			return nil
		}
		return foldTranspose(x, n.AttrInts("perm", nil))
	case "Slice":
		if x.DType != Int64 || opset < 10 {
			return nil
		}
		return foldSlice(x, in)
	case "Gather":
		idx, ok := ints(arg1(in))
		if !ok || x.DType != Int64 || len(x.Shape) != 1 || n.AttrInt("axis", 0) != 0 {
			return nil
		}
		out := make([]int64, len(idx))
		for i, j := range idx {
			if j < 0 {
				j += int64(len(x.I64))
			}
			if j < 0 || j >= int64(len(x.I64)) {
				return nil
			}
			out[i] = x.I64[j]
		}
		return NewInt64(in[1].Shape, out)
	}
	return nil
}

func arg1(in []*Tensor) *Tensor {
	if len(in) > 1 {
		return in[1]
	}
	return nil
}

func clampIdx(i, r int64) int64 {
	if i < 0 {
		i += r
	}
	return max(0, min(i, r))
}

// foldShape is the output shape of a shape-only op on a known tensor.
func foldShape(n *Node, in []*Tensor, opset int64) ([]int64, bool) {
	x := in[0]
	r := int64(len(x.Shape))
	switch n.OpType {
	case "Reshape":
		target, ok := ints(arg1(in))
		if !ok {
			return nil, false
		}
		out := append([]int64(nil), target...)
		known, neg := int64(1), -1
		for i, d := range out {
			switch {
			case d == 0 && n.AttrInt("allowzero", 0) == 0:
				if int64(i) >= r {
					return nil, false
				}
				out[i] = x.Shape[i]
			case d == -1:
				if neg >= 0 {
					return nil, false
				}
				neg = i
				continue
			}
			known *= out[i]
		}
		if neg >= 0 {
			if known == 0 {
				return nil, false
			}
			out[neg] = int64(len(x.I64)) / known
		}
		return out, NumElements(out) == int64(len(x.I64))
	case "Flatten":
		a := n.AttrInt("axis", 1)
		if a < 0 {
			a += r
		}
		if a < 0 || a > r {
			return nil, false
		}
		return []int64{NumElements(x.Shape[:a]), NumElements(x.Shape[a:])}, true
	}
	var axes []int64
	if opset >= 13 {
		if len(in) > 1 && in[1] != nil {
			v, ok := ints(in[1])
			if !ok {
				return nil, false
			}
			axes = v
		}
	} else {
		axes = n.AttrInts("axes", nil)
	}
	if n.OpType == "Unsqueeze" {
		or := r + int64(len(axes))
		mark := make([]bool, or)
		for _, a := range axes {
			if a < 0 {
				a += or
			}
			if a < 0 || a >= or || mark[a] {
				return nil, false
			}
			mark[a] = true
		}
		var out []int64
		j := 0
		for i := int64(0); i < or; i++ {
			if mark[i] {
				out = append(out, 1)
			} else {
				out = append(out, x.Shape[j])
				j++
			}
		}
		return out, true
	}
	drop := make([]bool, r)
	for _, a := range axes {
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r || x.Shape[a] != 1 {
			return nil, false
		}
		drop[a] = true
	}
	var out []int64
	for i, d := range x.Shape {
		if (len(axes) == 0 && d == 1) || drop[i] {
			continue
		}
		out = append(out, d)
	}
	return out, true
}

func strides(shape []int64) []int64 {
	st := make([]int64, len(shape))
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// walk calls f with every multi-index of shape, in row-major order.
func walk(shape []int64, f func(idx []int64)) {
	idx := make([]int64, len(shape))
	if NumElements(shape) == 0 {
		return
	}
	for {
		f(idx)
		j := len(shape) - 1
		for ; j >= 0; j-- {
			idx[j]++
			if idx[j] < shape[j] {
				break
			}
			idx[j] = 0
		}
		if j < 0 {
			return
		}
	}
}

func foldTranspose(x *Tensor, perm []int64) *Tensor {
	r := len(x.Shape)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil
	}
	shape := make([]int64, r)
	for i, p := range perm {
		if p < 0 || int(p) >= r {
			return nil
		}
		shape[i] = x.Shape[p]
	}
	st := strides(x.Shape)
	out := make([]int64, 0, len(x.I64))
	walk(shape, func(idx []int64) {
		off := int64(0)
		for i, p := range perm {
			off += idx[i] * st[p]
		}
		out = append(out, x.I64[off])
	})
	return NewInt64(shape, out)
}

func foldSlice(x *Tensor, in []*Tensor) *Tensor {
	get := func(i int) ([]int64, bool) {
		if i >= len(in) || in[i] == nil {
			return nil, true
		}
		return ints(in[i])
	}
	starts, ok1 := get(1)
	ends, ok2 := get(2)
	axes, ok3 := get(3)
	steps, ok4 := get(4)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(starts) != len(ends) {
		return nil
	}
	r := len(x.Shape)
	sel := make([][]int64, r)
	for i := range sel {
		for j := int64(0); j < x.Shape[i]; j++ {
			sel[i] = append(sel[i], j)
		}
	}
	for k := range starts {
		a := int64(k)
		if axes != nil {
			a = axes[k]
		}
		if a < 0 {
			a += int64(r)
		}
		if a < 0 || int(a) >= r {
			return nil
		}
		step := int64(1)
		if steps != nil {
			step = steps[k]
		}
		if step == 0 {
			return nil
		}
		st, cnt := SliceRange(starts[k], ends[k], step, x.Shape[a])
		sel[a] = sel[a][:0]
		for j := int64(0); j < cnt; j++ {
			sel[a] = append(sel[a], st+j*step)
		}
	}
	shape := make([]int64, r)
	for i := range sel {
		shape[i] = int64(len(sel[i]))
	}
	st := strides(x.Shape)
	var out []int64
	walk(shape, func(idx []int64) {
		off := int64(0)
		for i, j := range idx {
			off += sel[i][j] * st[i]
		}
		out = append(out, x.I64[off])
	})
	return NewInt64(shape, out)
}

// staticDims returns a value's dimensions when all are fixed.
func (b *Facts) staticDims(x string) ([]int64, bool) {
	in := b.Values[x]
	if in == nil || !in.HasShape {
		return nil, false
	}
	out := make([]int64, len(in.Shape))
	for i, d := range in.Shape {
		if !d.Known() {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}
