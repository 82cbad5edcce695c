package graph

import (
	"errors"
	"fmt"
)

// Fact is what inference knows about one value: its element type, its
// symbolic shape, and — for 1-D int64 shape vectors and scalars — its
// symbolic value, so that Shape → Gather → Concat → Reshape chains (torch's
// Reshape(x, Shape(y))) keep y's symbolic sizes.
type Fact struct {
	DType    DType
	Shape    Shape
	HasShape bool
	// Value is the symbolic value of a 1-D int64 shape vector (or of a
	// scalar, as one element), nil when unknown.
	Value []Dim
}

// InferFunc derives the facts of a node's outputs (one per output, nil
// where unknown) from the facts of its inputs (nil for an omitted optional
// input). f gives the constants and the opset in force.
type InferFunc func(f *Facts, n *Node, in []*Fact) ([]*Fact, error)

// Facts is the one shape-and-value inference engine: graph.InferShapes,
// the autodiff (which infers each node it emits as it goes) and the
// backends use it, and every op's rule lives in the op table.
type Facts struct {
	Opset  int64
	Values map[string]*Fact
	Consts map[string]*Tensor
}

// NewFacts starts an engine for a model at opset (0: the newest).
func NewFacts(opset int64) *Facts {
	if opset == 0 {
		opset = 21
	}
	return &Facts{Opset: opset, Values: map[string]*Fact{}, Consts: map[string]*Tensor{}}
}

// SetConst records a value known at build time.
func (b *Facts) SetConst(name string, t *Tensor) {
	b.Consts[name] = t
	b.Values[name] = ConstFact(t)
}

// ConstFact is the fact of a known tensor.
func ConstFact(t *Tensor) *Fact {
	in := &Fact{DType: t.DType, Shape: Fixed(t.Shape...), HasShape: true}
	if t.DType == Int64 && len(t.Shape) <= 1 && len(t.I64) <= 64 {
		in.Value = Fixed(t.I64...)
	}
	return in
}

func ranked(dt DType, s Shape) *Fact {
	return &Fact{DType: dt, Shape: s, HasShape: true}
}

// Infer records the facts of n's outputs (unknown facts for ops outside the
// default domain or without a rule). Errors are *NodeError.
func (b *Facts) Infer(n *Node) error {
	ins := make([]*Fact, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		if in := b.Values[name]; in != nil {
			ins[i] = in
		} else {
			ins[i] = &Fact{}
		}
	}
	var outs []*Fact
	// A node short of its required inputs has unknown outputs here;
	// CheckNode reports it.
	if o := Op(n.OpType); o != nil && o.Infer != nil && (n.Domain == "" || n.Domain == "ai.onnx") && o.hasRequired(n, b.Opset) {
		var err error
		if outs, err = o.Infer(b, n, ins); err != nil {
			return &NodeError{Node: n.Label(), Op: n.OpType, Err: err}
		}
	}
	for i, o := range n.Outputs {
		if o == "" {
			continue
		}
		if i < len(outs) && outs[i] != nil {
			b.Values[o] = outs[i]
		} else {
			b.Values[o] = &Fact{}
		}
	}
	b.fold(n)
	return nil
}

// ConstantValue reads a Constant node's value, whichever attribute holds it;
// nil when none does (or the attribute is a sparse tensor or strings).
func ConstantValue(n *Node) *Tensor {
	if a := n.Attr("value"); a != nil && a.T != nil {
		return a.T
	}
	if a := n.Attr("value_ints"); a != nil {
		return NewInt64([]int64{int64(len(a.Ints))}, a.Ints)
	}
	if a := n.Attr("value_int"); a != nil {
		return ScalarInt64(a.I)
	}
	if a := n.Attr("value_floats"); a != nil {
		return NewFloat32([]int64{int64(len(a.Floats))}, a.Floats)
	}
	if a := n.Attr("value_float"); a != nil {
		return ScalarFloat32(a.F)
	}
	return nil
}

// in0 is the first input's fact, empty when absent.
func in0(ins []*Fact) *Fact {
	if len(ins) > 0 && ins[0] != nil {
		return ins[0]
	}
	return &Fact{}
}

// on registers an inference rule for op types (the table's Infer field).
func on(f InferFunc, ops ...string) {
	for _, op := range ops {
		mustOp(op).Infer = f
	}
}

// unary wraps a rule of the first input alone.
func unary(f func(b *Facts, n *Node, x *Fact) ([]*Fact, error)) InferFunc {
	return func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return f(b, n, in0(ins)) }
}

func init() {
	on(func(b *Facts, n *Node, _ []*Fact) ([]*Fact, error) {
		t := ConstantValue(n)
		if t == nil || len(n.Outputs) == 0 {
			return nil, nil
		}
		b.Consts[n.Outputs[0]] = t
		return []*Fact{ConstFact(t)}, nil
	}, "Constant")
	on(unary(func(_ *Facts, _ *Node, x *Fact) ([]*Fact, error) {
		return []*Fact{{DType: x.DType, Shape: x.Shape, HasShape: x.HasShape}}, nil
	}), "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Relu",
		"LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "Erf", "Sin", "Cos", "Tan", "Identity",
		"Softmax", "LogSoftmax", "Clip", "InstanceNormalization", "GroupNormalization", "BatchNormalization",
		"LayerNormalization", "Floor", "Ceil", "Round", "Sign", "HardSwish", "Mish", "Gelu", "CumSum", "Celu",
		"ThresholdedRelu", "Hardmax", "LpNormalization", "MeanVarianceNormalization", "Asin", "Acos", "Atan",
		"Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Shrink", "LRN", "Trilu")
	on(unary(func(_ *Facts, _ *Node, x *Fact) ([]*Fact, error) {
		return []*Fact{{DType: Bool, Shape: x.Shape, HasShape: x.HasShape}}, nil
	}), "Not", "IsNaN", "IsInf")
	on(unary(func(_ *Facts, _ *Node, x *Fact) ([]*Fact, error) {
		return []*Fact{{DType: x.DType, Shape: x.Shape, HasShape: x.HasShape}, {DType: Bool, Shape: x.Shape, HasShape: x.HasShape}}, nil
	}), "Dropout")
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferBroadcast(n.OpType, ins) },
		"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Mod", "And", "Or", "Xor", "Where",
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) {
		return []*Fact{{DType: DType(n.AttrInt("to", 0)), Shape: x.Shape, HasShape: x.HasShape, Value: x.Value}}, nil
	}), "Cast")
	on(func(_ *Facts, _ *Node, ins []*Fact) ([]*Fact, error) {
		x, dt := in0(ins), DType(Undefined)
		if len(ins) > 1 && ins[1] != nil {
			dt = ins[1].DType
		}
		return []*Fact{{DType: dt, Shape: x.Shape, HasShape: x.HasShape}}, nil
	}, "CastLike")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) { return inferShapeOp(n, x), nil }), "Shape")
	on(func(_ *Facts, _ *Node, _ []*Fact) ([]*Fact, error) {
		return []*Fact{ranked(Int64, Shape{})}, nil
	}, "Size")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferReshape(n, ins) }, "Reshape")
	on(unary((*Facts).inferUnsqueeze), "Unsqueeze")
	on(unary((*Facts).inferSqueeze), "Squeeze")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferGather(n, ins) }, "Gather")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) { return inferTranspose(n, x) }), "Transpose")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferSlice(n, ins) }, "Slice")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) { return inferFlatten(n, x) }), "Flatten")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferExpand(n, ins) }, "Expand")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferTile(n, ins) }, "Tile")
	on(unary((*Facts).inferSplit), "Split")
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferConcat(n, ins) }, "Concat")
	on(unary((*Facts).inferReduce), "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) { return inferArg(n, x) }), "ArgMax", "ArgMin")
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferConv(n, ins) },
		"Conv", "ConvTranspose", "AveragePool", "MaxPool", "LpPool")
	on(unary(func(_ *Facts, _ *Node, x *Fact) ([]*Fact, error) {
		if !x.HasShape || len(x.Shape) < 2 {
			return []*Fact{{DType: x.DType}}, nil
		}
		s := append(Shape(nil), x.Shape[:2]...)
		for range x.Shape[2:] {
			s = append(s, Dim{Value: 1})
		}
		return []*Fact{ranked(x.DType, s)}, nil
	}), "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) {
		dt := Float32
		if a := n.Attr("value"); a != nil && a.T != nil {
			dt = a.T.DType
		}
		if x.Value != nil {
			return []*Fact{ranked(dt, append(Shape(nil), x.Value...))}, nil
		}
		if x.HasShape && len(x.Shape) == 1 && x.Shape[0].Known() {
			s := make(Shape, x.Shape[0].Value)
			for i := range s {
				s[i] = Unknown
			}
			return []*Fact{ranked(dt, s)}, nil
		}
		return []*Fact{{DType: dt}}, nil
	}), "ConstantOfShape")
	on(unary(func(_ *Facts, _ *Node, x *Fact) ([]*Fact, error) {
		return []*Fact{ranked(x.DType, Shape{Unknown})}, nil
	}), "Range")
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferMatMul(ins) }, "MatMul")
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferGemm(n, ins) }, "Gemm")
}

// inferMatMul follows numpy's matmul: batch dimensions broadcast, a 1-D
// operand loses its added axis.
func inferMatMul(in []*Fact) ([]*Fact, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, nil
	}
	if !in[0].HasShape || !in[1].HasShape {
		return []*Fact{{DType: in[0].DType}}, nil
	}
	a, b := in[0].Shape, in[1].Shape
	if len(a) == 0 || len(b) == 0 {
		return nil, errors.New("MatMul of a scalar")
	}
	ka := a[len(a)-1]
	kb := b[0]
	if len(b) >= 2 {
		kb = b[len(b)-2]
	}
	if ka.Known() && kb.Known() && ka.Value != kb.Value {
		return nil, fmt.Errorf("inner dimensions %d and %d differ", ka.Value, kb.Value)
	}
	var batchA, batchB Shape
	if len(a) >= 2 {
		batchA = a[:len(a)-2]
	}
	if len(b) >= 2 {
		batchB = b[:len(b)-2]
	}
	batch, err := Broadcast(batchA, batchB)
	if err != nil {
		return nil, err
	}
	out := append(Shape{}, batch...)
	if len(a) >= 2 {
		out = append(out, a[len(a)-2])
	}
	if len(b) >= 2 {
		out = append(out, b[len(b)-1])
	}
	return []*Fact{ranked(in[0].DType, out)}, nil
}

func inferGemm(n *Node, in []*Fact) ([]*Fact, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, nil
	}
	if !in[0].HasShape || !in[1].HasShape || len(in[0].Shape) != 2 || len(in[1].Shape) != 2 {
		return []*Fact{{DType: in[0].DType}}, nil
	}
	a, b := in[0].Shape, in[1].Shape
	m, ka := a[0], a[1]
	if n.AttrInt("transA", 0) != 0 {
		m, ka = a[1], a[0]
	}
	kb, nn := b[0], b[1]
	if n.AttrInt("transB", 0) != 0 {
		kb, nn = b[1], b[0]
	}
	if ka.Known() && kb.Known() && ka.Value != kb.Value {
		return nil, fmt.Errorf("inner dimensions %d and %d differ", ka.Value, kb.Value)
	}
	out := Shape{m, nn}
	if len(in) > 2 && in[2] != nil && in[2].HasShape {
		if _, err := Broadcast(out, in[2].Shape); err != nil {
			return nil, fmt.Errorf("bias: %v", err)
		}
	}
	return []*Fact{ranked(in[0].DType, out)}, nil
}

func inferBroadcast(op string, ins []*Fact) ([]*Fact, error) {
	out := &Fact{}
	var shapes []Shape
	all := true
	for i, in := range ins {
		if in == nil {
			continue
		}
		if out.DType == Undefined && !(op == "Where" && i == 0) {
			out.DType = in.DType
		}
		if !in.HasShape {
			all = false
			continue
		}
		shapes = append(shapes, in.Shape)
	}
	if boolOps[op] {
		out.DType = Bool
	}
	if !all {
		return []*Fact{out}, nil
	}
	s, err := Broadcast(shapes...)
	if err != nil {
		return nil, err
	}
	out.Shape, out.HasShape = s, true
	if out.DType == Int64 && len(ins) == 2 && ins[0] != nil && ins[1] != nil {
		out.Value = valueArith(op, ins[0].Value, ins[1].Value)
	}
	return []*Fact{out}, nil
}

// valueArith carries shape-vector values through the arithmetic exporters
// emit on sizes (PyTorch's x.reshape(n, c, h*w) multiplies two dimensions):
// known operands give known results, a factor 1 or a term 0 keeps the other
// side's symbol, anything else is unknown.
func valueArith(op string, a, b []Dim) []Dim {
	if a == nil || b == nil || (len(a) != len(b) && len(a) != 1 && len(b) != 1) {
		return nil
	}
	n := max(len(a), len(b))
	out := make([]Dim, n)
	for i := range out {
		x, y := a[i%len(a)], b[i%len(b)]
		isK := func(d Dim, v int64) bool { return d.Known() && d.Value == v }
		switch {
		case x.Known() && y.Known():
			switch op {
			case "Add":
				out[i] = Dim{Value: x.Value + y.Value}
			case "Sub":
				out[i] = Dim{Value: x.Value - y.Value}
			case "Mul":
				out[i] = Dim{Value: x.Value * y.Value}
			case "Div":
				if y.Value == 0 {
					return nil
				}
				out[i] = Dim{Value: x.Value / y.Value}
			default:
				return nil
			}
			if out[i].Value < 0 {
				out[i] = Unknown
			}
		case op == "Mul" && isK(y, 1), (op == "Add" || op == "Sub") && isK(y, 0), op == "Div" && isK(y, 1):
			out[i] = x
		case op == "Mul" && isK(x, 1), op == "Add" && isK(x, 0):
			out[i] = y
		default:
			out[i] = Unknown
		}
	}
	return out
}

func inferShapeOp(n *Node, in *Fact) []*Fact {
	if !in.HasShape {
		return []*Fact{{DType: Int64}}
	}
	r := int64(len(in.Shape))
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
	out := ranked(Int64, Fixed(end-start))
	out.Value = append([]Dim(nil), in.Shape[start:end]...)
	return []*Fact{out}
}

func (b *Facts) inferReshape(n *Node, ins []*Fact) ([]*Fact, error) {
	x, sh := ins[0], ins[1]
	out := &Fact{DType: x.DType}
	if sh == nil {
		return []*Fact{out}, nil
	}
	target := sh.Value
	if target == nil {
		if sh.HasShape && len(sh.Shape) == 1 && sh.Shape[0].Known() {
			s := make(Shape, sh.Shape[0].Value)
			for i := range s {
				s[i] = Unknown
			}
			out.Shape, out.HasShape = s, true
		}
		return []*Fact{out}, nil
	}
	allowZero := n.AttrInt("allowzero", 0) != 0
	s := make(Shape, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d.Param == "" && d.Value == -1:
			infer = i
			s[i] = Unknown
		case d.Known() && d.Value == 0 && !allowZero:
			s[i] = Unknown
			if x.HasShape && i < len(x.Shape) {
				s[i] = x.Shape[i]
			}
		default:
			s[i] = d
		}
	}
	if infer >= 0 && x.HasShape {
		// Cancel matching symbolic factors, then divide the fixed ones.
		num := map[string]int{}
		total := int64(1)
		ok := true
		for _, d := range x.Shape {
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
				s[infer] = Dim{Value: total / rest}
			case total == rest:
				s[infer] = Dim{Param: left}
			}
		}
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

func (b *Facts) inferUnsqueeze(n *Node, x *Fact) ([]*Fact, error) {
	axes, ok := b.AxesArg(n, 1, 13)
	out := &Fact{DType: x.DType}
	if !ok || !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape) + len(axes)
	axes = normAxes(axes, r)
	mark := make([]bool, r)
	for _, a := range axes {
		if a < 0 || int(a) >= r || mark[a] {
			return nil, fmt.Errorf("bad Unsqueeze axes %v for rank %d", axes, len(x.Shape))
		}
		mark[a] = true
	}
	s := make(Shape, r)
	j := 0
	for i := range s {
		if mark[i] {
			s[i] = Dim{Value: 1}
		} else {
			s[i] = x.Shape[j]
			j++
		}
	}
	out.Shape, out.HasShape = s, true
	if x.Value != nil && len(x.Shape) <= 1 {
		out.Value = x.Value
	}
	return []*Fact{out}, nil
}

func (b *Facts) inferSqueeze(n *Node, x *Fact) ([]*Fact, error) {
	axes, ok := b.AxesArg(n, 1, 13)
	out := &Fact{DType: x.DType}
	if !ok || !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	drop := make([]bool, r)
	if len(axes) == 0 {
		for i, d := range x.Shape {
			if !d.Known() {
				return []*Fact{out}, nil
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
	var s Shape
	for i, d := range x.Shape {
		if !drop[i] {
			s = append(s, d)
		}
	}
	if s == nil {
		s = Shape{}
	}
	out.Shape, out.HasShape = s, true
	if x.Value != nil && len(s) <= 1 {
		out.Value = x.Value
	}
	return []*Fact{out}, nil
}

func (b *Facts) inferGather(n *Node, ins []*Fact) ([]*Fact, error) {
	data, idx := ins[0], ins[1]
	out := &Fact{DType: data.DType}
	if !data.HasShape || !idx.HasShape {
		return []*Fact{out}, nil
	}
	r := len(data.Shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || int(axis) >= r {
		return nil, fmt.Errorf("Gather axis %d out of range for rank %d", n.AttrInt("axis", 0), r)
	}
	s := append(Shape(nil), data.Shape[:axis]...)
	s = append(s, idx.Shape...)
	s = append(s, data.Shape[axis+1:]...)
	out.Shape, out.HasShape = s, true
	if data.Value != nil && r == 1 {
		if t := b.Consts[n.Inputs[1]]; t != nil && t.DType == Int64 {
			sv := make([]Dim, len(t.I64))
			for i, k := range t.I64 {
				if k < 0 {
					k += int64(len(data.Value))
				}
				if k < 0 || int(k) >= len(data.Value) {
					return nil, fmt.Errorf("Gather index %d out of range", t.I64[i])
				}
				sv[i] = data.Value[k]
			}
			out.Value = sv
		}
	}
	return []*Fact{out}, nil
}

func inferTranspose(n *Node, x *Fact) ([]*Fact, error) {
	out := &Fact{DType: x.DType}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	perm := n.AttrInts("perm", nil)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	s := make(Shape, r)
	for i, p := range perm {
		if p < 0 || int(p) >= r {
			return nil, fmt.Errorf("perm %v for rank %d", perm, r)
		}
		s[i] = x.Shape[p]
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

// SliceArgs reads a Slice node's constant arguments (inputs from opset 10),
// normalized to one entry per axis of a rank-r input; ok is false when they
// are not constants.
func (b *Facts) SliceArgs(n *Node, r int) (starts, ends, axes, steps []int64, ok bool) {
	get := func(i int) ([]int64, bool) {
		name := n.Input(i)
		if name == "" {
			return nil, true
		}
		t := b.Consts[name]
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

// SliceRange clamps one axis' slice to a dimension of size d, as ONNX does,
// returning the effective start and the number of elements taken.
func SliceRange(start, end, step, d int64) (int64, int64) {
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

func (b *Facts) inferSlice(n *Node, ins []*Fact) ([]*Fact, error) {
	x := ins[0]
	out := &Fact{DType: x.DType}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	starts, ends, axes, steps, ok := b.SliceArgs(n, r)
	s := append(Shape(nil), x.Shape...)
	if !ok {
		for _, i := range axes {
			if i >= 0 && int(i) < r {
				s[i] = Unknown
			}
		}
		if axes == nil {
			for i := range s {
				s[i] = Unknown
			}
		}
		out.Shape, out.HasShape = s, true
		return []*Fact{out}, nil
	}
	var sv []Dim
	if x.Value != nil && r == 1 {
		sv = x.Value
	}
	for k, a := range axes {
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("Slice axis %d out of range for rank %d", a, r)
		}
		if steps[k] == 0 {
			return nil, fmt.Errorf("Slice step 0")
		}
		d := x.Shape[a]
		if !d.Known() {
			if starts[k] == 0 && ends[k] >= 1<<31 && steps[k] == 1 {
				continue
			}
			s[a] = Unknown
			sv = nil
			continue
		}
		st, cnt := SliceRange(starts[k], ends[k], steps[k], d.Value)
		s[a] = Dim{Value: cnt}
		if sv != nil {
			var nv []Dim
			for i := int64(0); i < cnt; i++ {
				nv = append(nv, sv[st+i*steps[k]])
			}
			sv = nv
		}
	}
	out.Shape, out.HasShape, out.Value = s, true, sv
	return []*Fact{out}, nil
}

func inferFlatten(n *Node, x *Fact) ([]*Fact, error) {
	out := &Fact{DType: x.DType}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	axis := n.AttrInt("axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	prod := func(ds Shape) Dim {
		p := int64(1)
		for _, d := range ds {
			if !d.Known() {
				if len(ds) == 1 {
					return d
				}
				return Unknown
			}
			p *= d.Value
		}
		return Dim{Value: p}
	}
	out.Shape, out.HasShape = Shape{prod(x.Shape[:axis]), prod(x.Shape[axis:])}, true
	return []*Fact{out}, nil
}

func (b *Facts) inferExpand(n *Node, ins []*Fact) ([]*Fact, error) {
	x, sh := ins[0], ins[1]
	out := &Fact{DType: x.DType}
	if !x.HasShape || sh == nil {
		return []*Fact{out}, nil
	}
	target := sh.Value
	if target == nil {
		if sh.HasShape && len(sh.Shape) == 1 && sh.Shape[0].Known() {
			target = make([]Dim, sh.Shape[0].Value)
			for i := range target {
				target[i] = Unknown
			}
		} else {
			return []*Fact{out}, nil
		}
	}
	s, err := Broadcast(x.Shape, Shape(target))
	if err != nil {
		return nil, err
	}
	// An unknown target entry next to a known x dimension may still be 1.
	off := len(s) - len(x.Shape)
	for i := range s {
		if i >= off && !target[i-(len(s)-len(target))].Known() && target[i-(len(s)-len(target))].Param == "" {
			if d := x.Shape[i-off]; !(d.Known() && d.Value == 1) {
				s[i] = d
			}
		}
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

func (b *Facts) inferTile(n *Node, ins []*Fact) ([]*Fact, error) {
	x := ins[0]
	out := &Fact{DType: x.DType}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	s := make(Shape, len(x.Shape))
	t := b.Consts[n.Input(1)]
	for i, d := range x.Shape {
		s[i] = Unknown
		if t != nil && i < len(t.I64) {
			if t.I64[i] == 1 {
				s[i] = d
			} else if d.Known() {
				s[i] = Dim{Value: d.Value * t.I64[i]}
			}
		}
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

// splitSizes reads Split's sizes (attribute before opset 13, input from 13;
// num_outputs from 18), or equal parts.
func (b *Facts) splitSizes(n *Node, d Dim) ([]int64, bool) {
	var sizes []int64
	if n.Attr("split") == nil {
		if name := n.Input(1); name != "" {
			t := b.Consts[name]
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

func (b *Facts) inferSplit(n *Node, x *Fact) ([]*Fact, error) {
	outs := make([]*Fact, len(n.Outputs))
	for i := range outs {
		outs[i] = &Fact{DType: x.DType}
	}
	if !x.HasShape {
		return outs, nil
	}
	r := len(x.Shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	sizes, ok := b.splitSizes(n, x.Shape[axis])
	for i := range outs {
		s := append(Shape(nil), x.Shape...)
		s[axis] = Unknown
		if ok && i < len(sizes) {
			s[axis] = Dim{Value: sizes[i]}
		}
		outs[i].Shape, outs[i].HasShape = s, true
	}
	return outs, nil
}

func inferConcat(n *Node, ins []*Fact) ([]*Fact, error) {
	out := &Fact{}
	var ref *Fact
	for _, in := range ins {
		if in == nil {
			continue
		}
		if out.DType == Undefined {
			out.DType = in.DType
		}
		if !in.HasShape {
			return []*Fact{out}, nil
		}
		ref = in
	}
	if ref == nil {
		return []*Fact{out}, nil
	}
	r := len(ref.Shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || int(axis) >= r {
		return nil, fmt.Errorf("Concat axis %d out of range for rank %d", n.AttrInt("axis", 0), r)
	}
	s := append(Shape(nil), ref.Shape...)
	total := Dim{Value: 0}
	var sv []Dim
	svOK := r == 1
	for _, in := range ins {
		if in == nil {
			continue
		}
		if len(in.Shape) != r {
			return nil, fmt.Errorf("Concat of ranks %d and %d", r, len(in.Shape))
		}
		for i, d := range in.Shape {
			if i == int(axis) {
				if d.Known() && total.Known() {
					total.Value += d.Value
				} else {
					total = Unknown
				}
			} else if d.Known() && s[i].Known() && d.Value != s[i].Value {
				return nil, fmt.Errorf("dimension %d is %d in one input and %d in another", i, s[i].Value, d.Value)
			} else if !s[i].Known() && s[i].Param == "" {
				s[i] = d
			}
		}
		if in.Value == nil {
			svOK = false
		}
		sv = append(sv, in.Value...)
	}
	s[axis] = total
	out.Shape, out.HasShape = s, true
	if svOK && out.DType == Int64 {
		out.Value = sv
	}
	return []*Fact{out}, nil
}

// ReduceAxes reads a Reduce* node's axes: an input for ReduceSum from opset 13
// and for the others from 18.
func (b *Facts) ReduceAxes(n *Node) ([]int64, bool) {
	from := int64(18)
	if n.OpType == "ReduceSum" {
		from = 13
	}
	return b.AxesArg(n, 1, from)
}

func (b *Facts) inferReduce(n *Node, x *Fact) ([]*Fact, error) {
	out := &Fact{DType: x.DType}
	axes, ok := b.ReduceAxes(n)
	if !ok || !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	if len(axes) == 0 {
		if n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return []*Fact{{DType: x.DType, Shape: x.Shape, HasShape: true}}, nil
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
	s := Shape{}
	for i, d := range x.Shape {
		switch {
		case !red[i]:
			s = append(s, d)
		case keep:
			s = append(s, Dim{Value: 1})
		}
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

func inferArg(n *Node, x *Fact) ([]*Fact, error) {
	out := &Fact{DType: Int64}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(r)
	}
	s := Shape{}
	for i, d := range x.Shape {
		if i == int(axis) {
			if n.AttrInt("keepdims", 1) != 0 {
				s = append(s, Dim{Value: 1})
			}
			continue
		}
		s = append(s, d)
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

var boolOps = map[string]bool{"And": true, "Or": true, "Xor": true, "Equal": true, "Less": true, "Greater": true,
	"LessOrEqual": true, "GreaterOrEqual": true, "Not": true, "IsNaN": true, "IsInf": true}

func init() {
	// GatherElements: the indices' shape, the data's type.
	on(func(_ *Facts, _ *Node, ins []*Fact) ([]*Fact, error) {
		data := in0(ins)
		if len(ins) < 2 || ins[1] == nil || !ins[1].HasShape {
			return []*Fact{{DType: data.DType}}, nil
		}
		return []*Fact{ranked(data.DType, ins[1].Shape)}, nil
	}, "GatherElements")
	on(func(b *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return b.inferPad(n, ins) }, "Pad")
}

// inferPad adds constant pads (attribute before opset 11, input from 11,
// optionally for some axes only from 18) to the input's dimensions.
func (b *Facts) inferPad(n *Node, ins []*Fact) ([]*Fact, error) {
	x := in0(ins)
	out := &Fact{DType: x.DType}
	if !x.HasShape {
		return []*Fact{out}, nil
	}
	r := len(x.Shape)
	pads := n.AttrInts("pads", nil)
	if name := n.Input(1); name != "" {
		t := b.Consts[name]
		if t == nil {
			s := make(Shape, r)
			for i := range s {
				s[i] = Unknown
			}
			out.Shape, out.HasShape = s, true
			return []*Fact{out}, nil
		}
		v, err := t.AsInt64s()
		if err != nil {
			return []*Fact{out}, nil
		}
		pads = v
	}
	axes := allAxes(r)
	if name := n.Input(3); name != "" {
		t := b.Consts[name]
		if t == nil {
			return []*Fact{out}, nil
		}
		v, err := t.AsInt64s()
		if err != nil {
			return []*Fact{out}, nil
		}
		axes = normAxes(v, r)
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
	}
	s := append(Shape(nil), x.Shape...)
	for k, a := range axes {
		if a < 0 || int(a) >= r {
			return nil, fmt.Errorf("Pad axis %d out of range for rank %d", a, r)
		}
		if d := s[a]; d.Known() {
			v := d.Value + pads[k] + pads[k+len(axes)]
			if v < 0 {
				return nil, fmt.Errorf("padded dimension %d is negative", a)
			}
			s[a] = Dim{Value: v}
		} else if pads[k]+pads[k+len(axes)] != 0 {
			s[a] = Unknown
		}
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}
