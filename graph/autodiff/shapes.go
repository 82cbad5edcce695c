package autodiff

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// vinfo is what the autodiff knows about a value. Beyond graph.InferShapes
// it covers every op a rule emits or differentiates, and it propagates the
// symbolic values of shape vectors (Shape → Gather → Concat → Reshape), so
// that torch's Reshape(x, Shape(y)) keeps y's symbolic shape and broadcasts
// can be undone without guessing.
type vinfo struct {
	dt     graph.DType
	shape  graph.Shape
	ranked bool
	// sval is the symbolic value of a 1-D int64 shape vector (or of a scalar,
	// as one element), nil when unknown.
	sval []graph.Dim
}

func constInfo(t *graph.Tensor) *vinfo {
	in := &vinfo{dt: t.DType, shape: graph.Fixed(t.Shape...), ranked: true}
	if t.DType == graph.Int64 && len(t.Shape) <= 1 && len(t.I64) <= 64 {
		in.sval = graph.Fixed(t.I64...)
	}
	return in
}

func ranked(dt graph.DType, s graph.Shape) *vinfo {
	return &vinfo{dt: dt, shape: s, ranked: true}
}

// infer records the facts of n's outputs.
func (b *builder) infer(n *graph.Node) error {
	ins := make([]*vinfo, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		if in := b.info[name]; in != nil {
			ins[i] = in
		} else {
			ins[i] = &vinfo{}
		}
	}
	outs, err := b.inferOp(n, ins)
	if err != nil {
		return &graph.NodeError{Node: n.Label(), Op: n.OpType, Err: err}
	}
	for i, o := range n.Outputs {
		if o == "" {
			continue
		}
		if i < len(outs) && outs[i] != nil {
			b.info[o] = outs[i]
		} else {
			b.info[o] = &vinfo{}
		}
	}
	b.fold(n)
	return nil
}

var sameShapeOps = map[string]bool{}

func init() {
	for _, op := range []string{"Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Relu",
		"LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "Erf", "Sin", "Cos", "Tan", "Identity",
		"Softmax", "LogSoftmax", "Clip", "InstanceNormalization", "GroupNormalization",
		"Floor", "Ceil", "Round", "Sign", "HardSwish", "Mish", "Gelu", "CumSum", "Celu", "ThresholdedRelu"} {
		sameShapeOps[op] = true
	}
}

var broadcastOps = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Max": true,
	"Min": true, "Sum": true, "Mean": true, "PRelu": true, "Mod": true, "And": true, "Or": true, "Xor": true, "Where": true,
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true}

var boolOps = map[string]bool{"And": true, "Or": true, "Xor": true, "Equal": true, "Less": true, "Greater": true,
	"LessOrEqual": true, "GreaterOrEqual": true, "Not": true, "IsNaN": true, "IsInf": true}

func (b *builder) inferOp(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	in0 := &vinfo{}
	if len(ins) > 0 && ins[0] != nil {
		in0 = ins[0]
	}
	switch op := n.OpType; {
	case op == "Constant":
		t := constantValue(n)
		if t == nil {
			return nil, nil
		}
		b.consts[n.Outputs[0]] = t
		return []*vinfo{constInfo(t)}, nil
	case sameShapeOps[op]:
		return []*vinfo{{dt: in0.dt, shape: in0.shape, ranked: in0.ranked}}, nil
	case op == "Not" || op == "IsNaN" || op == "IsInf":
		return []*vinfo{{dt: graph.Bool, shape: in0.shape, ranked: in0.ranked}}, nil
	case op == "Dropout":
		return []*vinfo{{dt: in0.dt, shape: in0.shape, ranked: in0.ranked}, {dt: graph.Bool, shape: in0.shape, ranked: in0.ranked}}, nil
	case op == "BatchNormalization" || op == "LayerNormalization":
		return []*vinfo{{dt: in0.dt, shape: in0.shape, ranked: in0.ranked}}, nil
	case broadcastOps[op]:
		return inferBroadcast(op, ins)
	case op == "Cast":
		return []*vinfo{{dt: graph.DType(n.AttrInt("to", 0)), shape: in0.shape, ranked: in0.ranked, sval: in0.sval}}, nil
	case op == "CastLike":
		return []*vinfo{{dt: ins[1].dt, shape: in0.shape, ranked: in0.ranked}}, nil
	case op == "Shape":
		return inferShapeOp(n, in0), nil
	case op == "Size":
		return []*vinfo{ranked(graph.Int64, graph.Shape{})}, nil
	case op == "Reshape":
		return b.inferReshape(n, ins)
	case op == "Unsqueeze":
		return b.inferUnsqueeze(n, in0)
	case op == "Squeeze":
		return b.inferSqueeze(n, in0)
	case op == "Gather":
		return b.inferGather(n, ins)
	case op == "Transpose":
		return inferTranspose(n, in0)
	case op == "Slice":
		return b.inferSlice(n, ins)
	case op == "Flatten":
		return inferFlatten(n, in0)
	case op == "Expand":
		return b.inferExpand(n, ins)
	case op == "Tile":
		return b.inferTile(n, ins)
	case op == "Split":
		return b.inferSplit(n, in0)
	case op == "Concat":
		return inferConcat(n, ins)
	case len(op) > 6 && op[:6] == "Reduce":
		return b.inferReduce(n, in0)
	case op == "ArgMax" || op == "ArgMin":
		return inferArg(n, in0)
	case op == "Conv" || op == "ConvTranspose" || op == "AveragePool" || op == "MaxPool":
		return b.inferConv(n, ins)
	case op == "GlobalAveragePool" || op == "GlobalMaxPool":
		if !in0.ranked || len(in0.shape) < 2 {
			return []*vinfo{{dt: in0.dt}}, nil
		}
		s := append(graph.Shape(nil), in0.shape[:2]...)
		for range in0.shape[2:] {
			s = append(s, graph.Dim{Value: 1})
		}
		return []*vinfo{ranked(in0.dt, s)}, nil
	case op == "ConstantOfShape":
		dt := graph.Float32
		if a := n.Attr("value"); a != nil && a.T != nil {
			dt = a.T.DType
		}
		if in0.sval != nil {
			return []*vinfo{ranked(dt, append(graph.Shape(nil), in0.sval...))}, nil
		}
		if in0.ranked && len(in0.shape) == 1 && in0.shape[0].Known() {
			s := make(graph.Shape, in0.shape[0].Value)
			for i := range s {
				s[i] = graph.Unknown
			}
			return []*vinfo{ranked(dt, s)}, nil
		}
		return []*vinfo{{dt: dt}}, nil
	case op == "Range":
		return []*vinfo{ranked(in0.dt, graph.Shape{graph.Unknown})}, nil
	case op == "Resize" || op == "Upsample":
		return b.inferResize(n, ins)
	}
	return b.inferFallback(n)
}

// inferFallback asks graph.InferShapes about a one-node graph.
func (b *builder) inferFallback(n *graph.Node) ([]*vinfo, error) {
	mini := &graph.Graph{Nodes: []*graph.Node{n}}
	seen := map[string]bool{}
	for _, name := range n.Inputs {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if t := b.consts[name]; t != nil {
			mini.Initializers = append(mini.Initializers, graph.Initializer{Name: name, Tensor: t})
			continue
		}
		in := b.info[name]
		vi := graph.ValueInfo{Name: name}
		if in != nil {
			vi.DType, vi.Shape, vi.HasShape = in.dt, in.shape, in.ranked
		}
		mini.Inputs = append(mini.Inputs, vi)
	}
	known, err := graph.InferShapes(mini)
	if err != nil {
		return nil, err
	}
	outs := make([]*vinfo, len(n.Outputs))
	for i, o := range n.Outputs {
		if v, ok := known[o]; ok {
			outs[i] = &vinfo{dt: v.DType, shape: v.Shape, ranked: v.HasShape}
		}
	}
	return outs, nil
}

func inferBroadcast(op string, ins []*vinfo) ([]*vinfo, error) {
	out := &vinfo{}
	var shapes []graph.Shape
	all := true
	for i, in := range ins {
		if in == nil {
			continue
		}
		if out.dt == graph.Undefined && !(op == "Where" && i == 0) {
			out.dt = in.dt
		}
		if !in.ranked {
			all = false
			continue
		}
		shapes = append(shapes, in.shape)
	}
	if boolOps[op] {
		out.dt = graph.Bool
	}
	if !all {
		return []*vinfo{out}, nil
	}
	s, err := graph.Broadcast(shapes...)
	if err != nil {
		return nil, err
	}
	out.shape, out.ranked = s, true
	if out.dt == graph.Int64 && len(ins) == 2 && ins[0] != nil && ins[1] != nil {
		out.sval = svalArith(op, ins[0].sval, ins[1].sval)
	}
	return []*vinfo{out}, nil
}

// svalArith carries shape-vector values through the arithmetic exporters
// emit on sizes (PyTorch's x.reshape(n, c, h*w) multiplies two dimensions):
// known operands give known results, a factor 1 or a term 0 keeps the other
// side's symbol, anything else is unknown.
func svalArith(op string, a, b []graph.Dim) []graph.Dim {
	if a == nil || b == nil || (len(a) != len(b) && len(a) != 1 && len(b) != 1) {
		return nil
	}
	n := max(len(a), len(b))
	out := make([]graph.Dim, n)
	for i := range out {
		x, y := a[i%len(a)], b[i%len(b)]
		isK := func(d graph.Dim, v int64) bool { return d.Known() && d.Value == v }
		switch {
		case x.Known() && y.Known():
			switch op {
			case "Add":
				out[i] = graph.Dim{Value: x.Value + y.Value}
			case "Sub":
				out[i] = graph.Dim{Value: x.Value - y.Value}
			case "Mul":
				out[i] = graph.Dim{Value: x.Value * y.Value}
			case "Div":
				if y.Value == 0 {
					return nil
				}
				out[i] = graph.Dim{Value: x.Value / y.Value}
			default:
				return nil
			}
			if out[i].Value < 0 {
				out[i] = graph.Unknown
			}
		case op == "Mul" && isK(y, 1), (op == "Add" || op == "Sub") && isK(y, 0), op == "Div" && isK(y, 1):
			out[i] = x
		case op == "Mul" && isK(x, 1), op == "Add" && isK(x, 0):
			out[i] = y
		default:
			out[i] = graph.Unknown
		}
	}
	return out
}

func inferShapeOp(n *graph.Node, in *vinfo) []*vinfo {
	if !in.ranked {
		return []*vinfo{{dt: graph.Int64}}
	}
	r := int64(len(in.shape))
	start, end := n.AttrInt("start", 0), n.AttrInt("end", r)
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = min(max(start, 0), r), min(max(end, 0), r)
	if end < start {
		end = start
	}
	out := ranked(graph.Int64, graph.Fixed(end-start))
	out.sval = append([]graph.Dim(nil), in.shape[start:end]...)
	return []*vinfo{out}
}

func (b *builder) inferReshape(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	x, sh := ins[0], ins[1]
	out := &vinfo{dt: x.dt}
	if sh == nil {
		return []*vinfo{out}, nil
	}
	target := sh.sval
	if target == nil {
		if sh.ranked && len(sh.shape) == 1 && sh.shape[0].Known() {
			s := make(graph.Shape, sh.shape[0].Value)
			for i := range s {
				s[i] = graph.Unknown
			}
			out.shape, out.ranked = s, true
		}
		return []*vinfo{out}, nil
	}
	allowZero := n.AttrInt("allowzero", 0) != 0
	s := make(graph.Shape, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d.Param == "" && d.Value == -1:
			infer = i
			s[i] = graph.Unknown
		case d.Known() && d.Value == 0 && !allowZero:
			s[i] = graph.Unknown
			if x.ranked && i < len(x.shape) {
				s[i] = x.shape[i]
			}
		default:
			s[i] = d
		}
	}
	if infer >= 0 && x.ranked {
		// Cancel matching symbolic factors, then divide the fixed ones.
		num := map[string]int{}
		total := int64(1)
		ok := true
		for _, d := range x.shape {
			switch {
			case d.Known():
				total *= d.Value
			case d.Param != "":
				num[d.Param]++
			default:
				ok = false
			}
		}
		rest := int64(1)
		for i, d := range s {
			if i == infer {
				continue
			}
			switch {
			case d.Known():
				rest *= d.Value
			case d.Param != "" && num[d.Param] > 0:
				num[d.Param]--
			default:
				ok = false
			}
		}
		left := ""
		for p, c := range num {
			if c > 1 || (c == 1 && left != "") {
				ok = false
			}
			if c == 1 {
				left = p
			}
		}
		if ok && rest != 0 && total%rest == 0 {
			switch {
			case left == "":
				s[infer] = graph.Dim{Value: total / rest}
			case total == rest:
				s[infer] = graph.Dim{Param: left}
			}
		}
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

func (b *builder) inferUnsqueeze(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	axes, ok := b.axesArg(n, 1, 13)
	out := &vinfo{dt: x.dt}
	if !ok || !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape) + len(axes)
	axes = normAxes(axes, r)
	mark := make([]bool, r)
	for _, a := range axes {
		if a < 0 || int(a) >= r || mark[a] {
			return nil, fmt.Errorf("bad Unsqueeze axes %v for rank %d", axes, len(x.shape))
		}
		mark[a] = true
	}
	s := make(graph.Shape, r)
	j := 0
	for i := range s {
		if mark[i] {
			s[i] = graph.Dim{Value: 1}
		} else {
			s[i] = x.shape[j]
			j++
		}
	}
	out.shape, out.ranked = s, true
	if x.sval != nil && len(x.shape) <= 1 {
		out.sval = x.sval
	}
	return []*vinfo{out}, nil
}

func (b *builder) inferSqueeze(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	axes, ok := b.axesArg(n, 1, 13)
	out := &vinfo{dt: x.dt}
	if !ok || !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	drop := make([]bool, r)
	if len(axes) == 0 {
		for i, d := range x.shape {
			if !d.Known() {
				return []*vinfo{out}, nil
			}
			drop[i] = d.Value == 1
		}
	}
	for _, a := range normAxes(axes, r) {
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("bad Squeeze axis for rank %d", r)
		}
		drop[a] = true
	}
	var s graph.Shape
	for i, d := range x.shape {
		if !drop[i] {
			s = append(s, d)
		}
	}
	if s == nil {
		s = graph.Shape{}
	}
	out.shape, out.ranked = s, true
	if x.sval != nil && len(s) <= 1 {
		out.sval = x.sval
	}
	return []*vinfo{out}, nil
}

func (b *builder) inferGather(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	data, idx := ins[0], ins[1]
	out := &vinfo{dt: data.dt}
	if !data.ranked || !idx.ranked {
		return []*vinfo{out}, nil
	}
	r := len(data.shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || int(axis) >= r {
		return nil, fmt.Errorf("Gather axis %d out of range for rank %d", n.AttrInt("axis", 0), r)
	}
	s := append(graph.Shape(nil), data.shape[:axis]...)
	s = append(s, idx.shape...)
	s = append(s, data.shape[axis+1:]...)
	out.shape, out.ranked = s, true
	if data.sval != nil && r == 1 {
		if t := b.consts[n.Inputs[1]]; t != nil && t.DType == graph.Int64 {
			sv := make([]graph.Dim, len(t.I64))
			for i, k := range t.I64 {
				if k < 0 {
					k += int64(len(data.sval))
				}
				if k < 0 || int(k) >= len(data.sval) {
					return nil, fmt.Errorf("Gather index %d out of range", t.I64[i])
				}
				sv[i] = data.sval[k]
			}
			out.sval = sv
		}
	}
	return []*vinfo{out}, nil
}

func inferTranspose(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	out := &vinfo{dt: x.dt}
	if !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	perm := n.AttrInts("perm", nil)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	s := make(graph.Shape, r)
	for i, p := range perm {
		if p < 0 || int(p) >= r {
			return nil, fmt.Errorf("perm %v for rank %d", perm, r)
		}
		s[i] = x.shape[p]
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

// sliceArgs reads a Slice node's constant arguments (inputs from opset 10),
// normalized to one entry per axis of a rank-r input; ok is false when they
// are not constants.
func (b *builder) sliceArgs(n *graph.Node, r int) (starts, ends, axes, steps []int64, ok bool) {
	get := func(i int) ([]int64, bool) {
		name := n.Input(i)
		if name == "" {
			return nil, true
		}
		t := b.consts[name]
		if t == nil {
			return nil, false
		}
		v, err := t.AsInt64s()
		return v, err == nil
	}
	var ok1, ok2, ok3, ok4 bool
	starts, ok1 = get(1)
	ends, ok2 = get(2)
	axes, ok3 = get(3)
	steps, ok4 = get(4)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(starts) != len(ends) {
		return nil, nil, nil, nil, false
	}
	if axes == nil {
		axes = allAxes(len(starts))
	}
	axes = normAxes(axes, r)
	if steps == nil {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	return starts, ends, axes, steps, len(axes) == len(starts) && len(steps) == len(starts)
}

// sliceRange clamps one axis' slice to a dimension of size d, as ONNX does,
// returning the effective start and the number of elements taken.
func sliceRange(start, end, step, d int64) (int64, int64) {
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start, end = min(max(start, 0), d), min(max(end, 0), d)
		if end <= start {
			return start, 0
		}
		return start, (end - start + step - 1) / step
	}
	start, end = min(max(start, -1), d-1), min(max(end, -1), d-1)
	if end >= start {
		return start, 0
	}
	return start, (start - end + (-step) - 1) / (-step)
}

func (b *builder) inferSlice(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	x := ins[0]
	out := &vinfo{dt: x.dt}
	if !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	starts, ends, axes, steps, ok := b.sliceArgs(n, r)
	s := append(graph.Shape(nil), x.shape...)
	if !ok {
		for _, i := range axes {
			if i >= 0 && int(i) < r {
				s[i] = graph.Unknown
			}
		}
		if axes == nil {
			for i := range s {
				s[i] = graph.Unknown
			}
		}
		out.shape, out.ranked = s, true
		return []*vinfo{out}, nil
	}
	var sv []graph.Dim
	if x.sval != nil && r == 1 {
		sv = x.sval
	}
	for k, a := range axes {
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("Slice axis %d out of range for rank %d", a, r)
		}
		if steps[k] == 0 {
			return nil, fmt.Errorf("Slice step 0")
		}
		d := x.shape[a]
		if !d.Known() {
			if starts[k] == 0 && ends[k] >= 1<<31 && steps[k] == 1 {
				continue
			}
			s[a] = graph.Unknown
			sv = nil
			continue
		}
		st, cnt := sliceRange(starts[k], ends[k], steps[k], d.Value)
		s[a] = graph.Dim{Value: cnt}
		if sv != nil {
			var nv []graph.Dim
			for i := int64(0); i < cnt; i++ {
				nv = append(nv, sv[st+i*steps[k]])
			}
			sv = nv
		}
	}
	out.shape, out.ranked, out.sval = s, true, sv
	return []*vinfo{out}, nil
}

func inferFlatten(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	out := &vinfo{dt: x.dt}
	if !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	axis := n.AttrInt("axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	prod := func(ds graph.Shape) graph.Dim {
		p := int64(1)
		for _, d := range ds {
			if !d.Known() {
				if len(ds) == 1 {
					return d
				}
				return graph.Unknown
			}
			p *= d.Value
		}
		return graph.Dim{Value: p}
	}
	out.shape, out.ranked = graph.Shape{prod(x.shape[:axis]), prod(x.shape[axis:])}, true
	return []*vinfo{out}, nil
}

func (b *builder) inferExpand(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	x, sh := ins[0], ins[1]
	out := &vinfo{dt: x.dt}
	if !x.ranked || sh == nil {
		return []*vinfo{out}, nil
	}
	target := sh.sval
	if target == nil {
		if sh.ranked && len(sh.shape) == 1 && sh.shape[0].Known() {
			target = make([]graph.Dim, sh.shape[0].Value)
			for i := range target {
				target[i] = graph.Unknown
			}
		} else {
			return []*vinfo{out}, nil
		}
	}
	s, err := graph.Broadcast(x.shape, graph.Shape(target))
	if err != nil {
		return nil, err
	}
	// An unknown target entry next to a known x dimension may still be 1.
	off := len(s) - len(x.shape)
	for i := range s {
		if i >= off && !target[i-(len(s)-len(target))].Known() && target[i-(len(s)-len(target))].Param == "" {
			if d := x.shape[i-off]; !(d.Known() && d.Value == 1) {
				s[i] = d
			}
		}
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

func (b *builder) inferTile(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	x := ins[0]
	out := &vinfo{dt: x.dt}
	if !x.ranked {
		return []*vinfo{out}, nil
	}
	s := make(graph.Shape, len(x.shape))
	t := b.consts[n.Input(1)]
	for i, d := range x.shape {
		s[i] = graph.Unknown
		if t != nil && i < len(t.I64) {
			if t.I64[i] == 1 {
				s[i] = d
			} else if d.Known() {
				s[i] = graph.Dim{Value: d.Value * t.I64[i]}
			}
		}
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

// splitSizes reads Split's sizes (attribute before opset 13, input from 13;
// num_outputs from 18), or equal parts.
func (b *builder) splitSizes(n *graph.Node, d graph.Dim) ([]int64, bool) {
	var sizes []int64
	if b.opset >= 13 {
		if name := n.Input(1); name != "" {
			t := b.consts[name]
			if t == nil {
				return nil, false
			}
			sizes = t.I64
		}
	} else {
		sizes = n.AttrInts("split", nil)
	}
	if sizes != nil {
		return sizes, true
	}
	if !d.Known() {
		return nil, false
	}
	k := int64(len(n.Outputs))
	if num := n.AttrInt("num_outputs", 0); num > 0 {
		k = num
	}
	part := (d.Value + k - 1) / k
	for left := d.Value; left > 0; left -= part {
		sizes = append(sizes, min(part, left))
	}
	return sizes, len(sizes) == len(n.Outputs)
}

func (b *builder) inferSplit(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	outs := make([]*vinfo, len(n.Outputs))
	for i := range outs {
		outs[i] = &vinfo{dt: x.dt}
	}
	if !x.ranked {
		return outs, nil
	}
	r := len(x.shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	sizes, ok := b.splitSizes(n, x.shape[axis])
	for i := range outs {
		s := append(graph.Shape(nil), x.shape...)
		s[axis] = graph.Unknown
		if ok && i < len(sizes) {
			s[axis] = graph.Dim{Value: sizes[i]}
		}
		outs[i].shape, outs[i].ranked = s, true
	}
	return outs, nil
}

func inferConcat(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	out := &vinfo{}
	var ref *vinfo
	for _, in := range ins {
		if in == nil {
			continue
		}
		if out.dt == graph.Undefined {
			out.dt = in.dt
		}
		if !in.ranked {
			return []*vinfo{out}, nil
		}
		ref = in
	}
	if ref == nil {
		return []*vinfo{out}, nil
	}
	r := len(ref.shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || int(axis) >= r {
		return nil, fmt.Errorf("Concat axis %d out of range for rank %d", n.AttrInt("axis", 0), r)
	}
	s := append(graph.Shape(nil), ref.shape...)
	total := graph.Dim{Value: 0}
	var sv []graph.Dim
	svOK := r == 1
	for _, in := range ins {
		if in == nil {
			continue
		}
		if len(in.shape) != r {
			return nil, fmt.Errorf("Concat of ranks %d and %d", r, len(in.shape))
		}
		for i, d := range in.shape {
			if i == int(axis) {
				if d.Known() && total.Known() {
					total.Value += d.Value
				} else {
					total = graph.Unknown
				}
			} else if !s[i].Known() && s[i].Param == "" {
				s[i] = d
			}
		}
		if in.sval == nil {
			svOK = false
		}
		sv = append(sv, in.sval...)
	}
	s[axis] = total
	out.shape, out.ranked = s, true
	if svOK && out.dt == graph.Int64 {
		out.sval = sv
	}
	return []*vinfo{out}, nil
}

// reduceAxes reads a Reduce* node's axes: an input for ReduceSum from opset 13
// and for the others from 18.
func (b *builder) reduceAxes(n *graph.Node) ([]int64, bool) {
	from := int64(18)
	if n.OpType == "ReduceSum" {
		from = 13
	}
	return b.axesArg(n, 1, from)
}

func (b *builder) inferReduce(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	out := &vinfo{dt: x.dt}
	axes, ok := b.reduceAxes(n)
	if !ok || !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	if len(axes) == 0 {
		if n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return []*vinfo{{dt: x.dt, shape: x.shape, ranked: true}}, nil
		}
		axes = allAxes(r)
	}
	red := make([]bool, r)
	for _, a := range normAxes(axes, r) {
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("axis out of range for rank %d", r)
		}
		red[a] = true
	}
	keep := n.AttrInt("keepdims", 1) != 0
	s := graph.Shape{}
	for i, d := range x.shape {
		switch {
		case !red[i]:
			s = append(s, d)
		case keep:
			s = append(s, graph.Dim{Value: 1})
		}
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

func inferArg(n *graph.Node, x *vinfo) ([]*vinfo, error) {
	out := &vinfo{dt: graph.Int64}
	if !x.ranked {
		return []*vinfo{out}, nil
	}
	r := len(x.shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	s := graph.Shape{}
	for i, d := range x.shape {
		if i == int(axis) {
			if n.AttrInt("keepdims", 1) != 0 {
				s = append(s, graph.Dim{Value: 1})
			}
			continue
		}
		s = append(s, d)
	}
	out.shape, out.ranked = s, true
	return []*vinfo{out}, nil
}

func (b *builder) inferConv(n *graph.Node, ins []*vinfo) ([]*vinfo, error) {
	x := ins[0]
	out := &vinfo{dt: x.dt}
	if !x.ranked || len(x.shape) < 3 {
		return []*vinfo{out}, nil
	}
	var w *vinfo
	if len(ins) > 1 {
		w = ins[1]
	}
	geo, err := b.geometry(n, x.shape, w)
	if err != nil {
		return nil, err
	}
	s := graph.Shape{x.shape[0], graph.Unknown}
	switch n.OpType {
	case "Conv":
		if w != nil && w.ranked && len(w.shape) > 0 {
			s[1] = w.shape[0]
		}
	case "ConvTranspose":
		if w != nil && w.ranked && len(w.shape) > 1 && w.shape[1].Known() {
			s[1] = graph.Dim{Value: w.shape[1].Value * n.AttrInt("group", 1)}
		}
	default:
		s[1] = x.shape[1]
	}
	for _, o := range geo.out {
		if o < 0 {
			s = append(s, graph.Unknown)
		} else {
			s = append(s, graph.Dim{Value: o})
		}
	}
	outs := []*vinfo{out}
	out.shape, out.ranked = s, true
	if n.OpType == "MaxPool" && len(n.Outputs) > 1 {
		outs = append(outs, ranked(graph.Int64, s))
	}
	return outs, nil
}

func constantValue(n *graph.Node) *graph.Tensor {
	if a := n.Attr("value"); a != nil && a.T != nil {
		return a.T
	}
	if a := n.Attr("value_ints"); a != nil {
		return graph.NewInt64([]int64{int64(len(a.Ints))}, a.Ints)
	}
	if a := n.Attr("value_int"); a != nil {
		return graph.ScalarInt64(a.I)
	}
	if a := n.Attr("value_floats"); a != nil {
		return graph.NewFloat32([]int64{int64(len(a.Floats))}, a.Floats)
	}
	if a := n.Attr("value_float"); a != nil {
		return graph.ScalarFloat32(a.F)
	}
	return nil
}
