package graph

import (
	"errors"
	"fmt"
)

// ShapeFunc infers the output types of one node from its input types. Inputs
// with unknown rank have HasShape false. Returning nil outputs means "unknown".
type ShapeFunc func(n *Node, in []ValueInfo, consts map[string]*Tensor) ([]ValueInfo, error)

var shapeFuncs = map[string]ShapeFunc{}

// RegisterShapeFunc adds or replaces the shape inference rule of an op type.
func RegisterShapeFunc(op string, f ShapeFunc) { shapeFuncs[op] = f }

// InferShapes walks the graph in topological order and derives the dtype and
// symbolic shape of every value it can. It fails when two facts contradict
// (incompatible broadcast dimensions, inner dimensions of a product, a declared
// shape that disagrees with the derived one).
func InferShapes(g *Graph) (map[string]ValueInfo, error) {
	order, err := g.TopoOrder()
	if err != nil {
		return nil, err
	}
	known := map[string]ValueInfo{}
	consts := g.InitializerMap()
	for _, in := range g.Initializers {
		known[in.Name] = ValueInfo{Name: in.Name, DType: in.Tensor.DType, Shape: Fixed(in.Tensor.Shape...), HasShape: true}
	}
	for _, in := range g.Inputs {
		if _, ok := consts[in.Name]; !ok {
			known[in.Name] = in
		}
	}
	declared := map[string]ValueInfo{}
	for _, v := range g.ValueInfo {
		declared[v.Name] = v
	}
	for _, v := range g.Outputs {
		declared[v.Name] = v
	}
	var errs []error
	for _, n := range order {
		if n.OpType == "Constant" {
			if t := constantValue(n); t != nil && len(n.Outputs) > 0 {
				consts[n.Outputs[0]] = t
			}
		}
		f := shapeFuncs[n.OpType]
		if f == nil || (n.Domain != "" && n.Domain != "ai.onnx") {
			continue
		}
		ins := make([]ValueInfo, len(n.Inputs))
		for i, name := range n.Inputs {
			ins[i] = known[name]
			ins[i].Name = name
		}
		outs, err := f(n, ins, consts)
		if err != nil {
			errs = append(errs, &NodeError{n.Label(), n.OpType, fmt.Errorf("%w: %v", ErrShapeConflict, err)})
			continue
		}
		for i, o := range outs {
			if i >= len(n.Outputs) || n.Outputs[i] == "" {
				continue
			}
			o.Name = n.Outputs[i]
			if d, ok := declared[o.Name]; ok {
				if err := compatible(d, o); err != nil {
					errs = append(errs, &NodeError{n.Label(), n.OpType, fmt.Errorf("%w: output %q declared %s, inferred %s: %v", ErrShapeConflict, o.Name, d.Shape, o.Shape, err)})
				}
				o = merge(d, o)
			}
			known[o.Name] = o
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return known, nil
}

func constantValue(n *Node) *Tensor {
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

func compatible(a, b ValueInfo) error {
	if a.DType != Undefined && b.DType != Undefined && a.DType != b.DType {
		return fmt.Errorf("dtype %s vs %s", a.DType, b.DType)
	}
	if !a.HasShape || !b.HasShape {
		return nil
	}
	if len(a.Shape) != len(b.Shape) {
		return fmt.Errorf("rank %d vs %d", len(a.Shape), len(b.Shape))
	}
	for i := range a.Shape {
		if a.Shape[i].Known() && b.Shape[i].Known() && a.Shape[i].Value != b.Shape[i].Value {
			return fmt.Errorf("dimension %d is %d vs %d", i, a.Shape[i].Value, b.Shape[i].Value)
		}
	}
	return nil
}

// merge keeps the more specific of two compatible facts.
func merge(decl, inf ValueInfo) ValueInfo {
	out := inf
	if out.DType == Undefined {
		out.DType = decl.DType
	}
	if !inf.HasShape {
		out.Shape, out.HasShape = decl.Shape, decl.HasShape
		return out
	}
	// Ranks that differ are a conflict the caller reports; keep the inferred.
	if decl.HasShape && len(decl.Shape) == len(inf.Shape) {
		out.Shape = append(Shape(nil), inf.Shape...)
		for i := range out.Shape {
			if !out.Shape[i].Known() && (decl.Shape[i].Known() || decl.Shape[i].Param != "") {
				out.Shape[i] = decl.Shape[i]
			}
		}
	}
	return out
}

// Broadcast combines shapes by ONNX multidirectional broadcasting.
func Broadcast(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		if len(s) > rank {
			rank = len(s)
		}
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = Dim{Value: 1}
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d.Known() && d.Value == 1:
			case o.Known() && o.Value == 1:
				*o = d
			case d.Known() && o.Known() && d.Value != o.Value:
				return nil, fmt.Errorf("cannot broadcast dimension %d against %d", o.Value, d.Value)
			case !o.Known() && d.Known():
				*o = d
			case d.Param != "" && o.Param == "" && !o.Known():
				*o = d
			}
		}
	}
	return out, nil
}

func same(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) == 0 {
		return nil, nil
	}
	return []ValueInfo{in[0]}, nil
}

func broadcastOp(dtype DType) ShapeFunc {
	return func(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
		var shapes []Shape
		out := ValueInfo{DType: dtype}
		for i, v := range in {
			if n.OpType == "Where" && i == 0 {
				// the condition broadcasts but does not set the dtype
			} else if out.DType == Undefined {
				out.DType = v.DType
			}
			if v.Name == "" {
				continue
			}
			if !v.HasShape {
				return []ValueInfo{out}, nil
			}
			shapes = append(shapes, v.Shape)
		}
		s, err := Broadcast(shapes...)
		if err != nil {
			return nil, err
		}
		out.Shape, out.HasShape = s, true
		return []ValueInfo{out}, nil
	}
}

func matmulShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) < 2 || !in[0].HasShape || !in[1].HasShape {
		return nil, nil
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
	var out Shape
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
	out = append(out, batch...)
	if len(a) >= 2 {
		out = append(out, a[len(a)-2])
	}
	if len(b) >= 2 {
		out = append(out, b[len(b)-1])
	}
	return []ValueInfo{{DType: in[0].DType, Shape: out, HasShape: true}}, nil
}

func gemmShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) < 2 || !in[0].HasShape || !in[1].HasShape || len(in[0].Shape) != 2 || len(in[1].Shape) != 2 {
		return nil, nil
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
	if len(in) > 2 && in[2].Name != "" && in[2].HasShape {
		if _, err := Broadcast(out, in[2].Shape); err != nil {
			return nil, fmt.Errorf("bias: %v", err)
		}
	}
	return []ValueInfo{{DType: in[0].DType, Shape: out, HasShape: true}}, nil
}

func castShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := in[0]
	out.DType = DType(n.AttrInt("to", 0))
	return []ValueInfo{out}, nil
}

func shapeShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) == 0 || !in[0].HasShape {
		return []ValueInfo{{DType: Int64}}, nil
	}
	r := int64(len(in[0].Shape))
	start, end := n.AttrInt("start", 0), n.AttrInt("end", r)
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = clamp(start, 0, r), clamp(end, 0, r)
	if end < start {
		end = start
	}
	return []ValueInfo{{DType: Int64, Shape: Fixed(end - start), HasShape: true}}, nil
}

func clamp(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func concatShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	var ref *ValueInfo
	for i := range in {
		if !in[i].HasShape {
			return nil, nil
		}
		if ref == nil {
			ref = &in[i]
		}
	}
	if ref == nil {
		return nil, nil
	}
	r := int64(len(ref.Shape))
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		return nil, fmt.Errorf("axis %d out of range for rank %d", n.AttrInt("axis", 0), r)
	}
	out := append(Shape(nil), ref.Shape...)
	total := int64(0)
	allKnown := true
	for _, v := range in {
		if int64(len(v.Shape)) != r {
			return nil, fmt.Errorf("inputs of rank %d and %d", r, len(v.Shape))
		}
		for i, d := range v.Shape {
			if int64(i) == axis {
				if d.Known() {
					total += d.Value
				} else {
					allKnown = false
				}
				continue
			}
			if d.Known() && out[i].Known() && d.Value != out[i].Value {
				return nil, fmt.Errorf("dimension %d is %d in one input and %d in another", i, out[i].Value, d.Value)
			}
			if !out[i].Known() && d.Known() {
				out[i] = d
			}
		}
	}
	out[axis] = Unknown
	if allKnown {
		out[axis] = Dim{Value: total}
	}
	return []ValueInfo{{DType: ref.DType, Shape: out, HasShape: true}}, nil
}

func reshapeShape(n *Node, in []ValueInfo, consts map[string]*Tensor) ([]ValueInfo, error) {
	if len(in) < 2 {
		return nil, nil
	}
	out := ValueInfo{DType: in[0].DType}
	t := consts[in[1].Name]
	if t == nil || t.DType != Int64 {
		return []ValueInfo{out}, nil
	}
	allowZero := n.AttrInt("allowzero", 0) != 0
	s := make(Shape, len(t.I64))
	infer := -1
	for i, v := range t.I64 {
		switch {
		case v == -1:
			if infer >= 0 {
				return nil, errors.New("two -1 dimensions in the target shape")
			}
			infer = i
			s[i] = Unknown
		case v == 0 && !allowZero:
			if in[0].HasShape && i < len(in[0].Shape) {
				s[i] = in[0].Shape[i]
			} else {
				s[i] = Unknown
			}
		case v < -1:
			return nil, fmt.Errorf("invalid target dimension %d", v)
		default:
			s[i] = Dim{Value: v}
		}
	}
	if infer >= 0 && in[0].HasShape {
		total, known := int64(1), true
		for _, d := range in[0].Shape {
			if !d.Known() {
				known = false
				break
			}
			total *= d.Value
		}
		rest := int64(1)
		for i, d := range s {
			if i == infer {
				continue
			}
			if !d.Known() {
				known = false
				break
			}
			rest *= d.Value
		}
		if known && rest != 0 {
			if total%rest != 0 {
				return nil, fmt.Errorf("cannot reshape %d elements to %v", total, t.I64)
			}
			s[infer] = Dim{Value: total / rest}
		}
	}
	out.Shape, out.HasShape = s, true
	return []ValueInfo{out}, nil
}

func compareOp(n *Node, in []ValueInfo, c map[string]*Tensor) ([]ValueInfo, error) {
	outs, err := broadcastOp(Bool)(n, in, c)
	if err != nil || outs == nil {
		return outs, err
	}
	outs[0].DType = Bool
	return outs, nil
}

func init() {
	for _, op := range []string{"Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Relu",
		"LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "Erf", "Sin", "Cos", "Identity",
		"Softmax", "LogSoftmax", "Clip", "InstanceNormalization", "GroupNormalization", "LayerNormalization",
		"BatchNormalization", "Dropout", "Floor", "Ceil", "Round", "Sign", "Not", "HardSwish", "Mish", "Gelu", "CumSum"} {
		RegisterShapeFunc(op, same)
	}
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "PRelu", "Mod", "And", "Or", "Xor"} {
		RegisterShapeFunc(op, broadcastOp(Undefined))
	}
	for _, op := range []string{"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"} {
		RegisterShapeFunc(op, compareOp)
	}
	RegisterShapeFunc("MatMul", matmulShape)
	RegisterShapeFunc("Gemm", gemmShape)
	RegisterShapeFunc("Cast", castShape)
	RegisterShapeFunc("Shape", shapeShape)
	RegisterShapeFunc("Concat", concatShape)
	RegisterShapeFunc("Reshape", reshapeShape)
}
