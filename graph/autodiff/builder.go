package autodiff

import (
	"fmt"
	"math"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// vinfo is what the autodiff knows about a value: the inference engine's
// fact (graph.Facts), kept current for every node a rule emits.
type vinfo = graph.Fact

// builder holds the graph being extended: a copy of the model's graph, the
// facts known about every value (dtype, symbolic shape, constant value), and
// caches that keep emitted constants and shapes shared.
type builder struct {
	src      *graph.Model
	g        *graph.Graph
	opset    int64
	f        *graph.Facts // the one inference engine, fed every node emitted
	info     map[string]*vinfo
	consts   map[string]*graph.Tensor
	producer map[string]*graph.Node
	names    map[string]bool
	constKey map[string]string
	next     int
}

func newBuilder(m *graph.Model) (*builder, error) {
	opset := m.Opset("")
	if opset == 0 {
		opset = 21 // a bare Model from graph.Builder: newest semantics
	}
	if opset < MinOpset {
		return nil, fmt.Errorf("autodiff: opset %d is older than %d, the oldest the autodiff emits ops for", opset, MinOpset)
	}
	src := m.Graph
	g := &graph.Graph{
		Name:         src.Name,
		Doc:          src.Doc,
		Inputs:       append([]graph.ValueInfo(nil), src.Inputs...),
		Outputs:      append([]graph.ValueInfo(nil), src.Outputs...),
		ValueInfo:    append([]graph.ValueInfo(nil), src.ValueInfo...),
		Initializers: append([]graph.Initializer(nil), src.Initializers...),
	}
	for _, n := range src.Nodes {
		c := *n // attributes are shared, read-only; names are rewired, so copied
		c.Inputs = append([]string(nil), n.Inputs...)
		c.Outputs = append([]string(nil), n.Outputs...)
		g.Nodes = append(g.Nodes, &c)
	}
	f := graph.NewFacts(opset)
	b := &builder{
		src: m, g: g, opset: opset, f: f,
		info:     f.Values,
		consts:   f.Consts,
		producer: map[string]*graph.Node{},
		names:    map[string]bool{},
		constKey: map[string]string{},
	}
	inits := src.InitializerMap()
	for i, in := range g.Inputs {
		b.names[in.Name] = true
		if _, ok := inits[in.Name]; !ok && in.HasShape {
			// Name unknown sizes, so that what flows from one input keeps its
			// identity: a cotangent shaped like an output then provably
			// matches the values that output came from, even differentiated
			// again. The names are declared on the copy's inputs.
			in.Shape = append(graph.Shape{}, in.Shape...)
			for j, d := range in.Shape {
				if !d.Known() && d.Param == "" {
					in.Shape[j] = graph.Dim{Param: fmt.Sprintf("%s_dim%d", sanitize(in.Name), j)}
				}
			}
			g.Inputs[i] = in
		}
		b.setInfo(in.Name, &vinfo{DType: in.DType, Shape: in.Shape, HasShape: in.HasShape})
	}
	for _, in := range g.Initializers {
		b.names[in.Name] = true
		b.consts[in.Name] = in.Tensor
		b.setInfo(in.Name, graph.ConstFact(in.Tensor))
	}
	for _, n := range g.Nodes {
		b.names[n.Name] = true
		for _, o := range n.Outputs {
			b.names[o] = true
			if o != "" {
				b.producer[o] = n
			}
		}
	}
	for _, v := range g.ValueInfo {
		b.names[v.Name] = true
	}
	order, err := g.TopoOrder()
	if err != nil {
		return nil, fmt.Errorf("autodiff: %w", err)
	}
	declared := map[string]graph.ValueInfo{}
	for _, v := range append(append([]graph.ValueInfo(nil), g.ValueInfo...), g.Outputs...) {
		declared[v.Name] = v
	}
	for _, n := range order {
		if err := b.infer(n); err != nil {
			return nil, fmt.Errorf("autodiff: %w", err)
		}
		for _, o := range n.Outputs {
			d, ok := declared[o]
			in := b.info[o]
			if !ok || in == nil {
				continue
			}
			if in.DType == graph.Undefined {
				in.DType = d.DType
			}
			if d.HasShape && !in.HasShape {
				in.Shape, in.HasShape = d.Shape, true
			} else if d.HasShape && len(d.Shape) == len(in.Shape) {
				for i := range in.Shape {
					if !in.Shape[i].Known() && in.Shape[i].Param == "" {
						in.Shape[i] = d.Shape[i]
					}
				}
			}
		}
	}
	return b, nil
}

// infer records the facts of n's outputs (and, for integer argument
// arithmetic, their values) with graph's engine.
func (b *builder) infer(n *graph.Node) error { return b.f.Infer(n) }

// forwardOrder is the topological order of the nodes now in the graph.
func (b *builder) forwardOrder() ([]*graph.Node, error) {
	order, err := b.g.TopoOrder()
	if err != nil {
		return nil, fmt.Errorf("autodiff: %w", err)
	}
	return order, nil
}

func (b *builder) model() *graph.Model {
	m := *b.src
	m.Opsets = append([]graph.OpsetImport(nil), b.src.Opsets...)
	m.Metadata = append([]graph.MetadataProp(nil), b.src.Metadata...)
	m.Graph = b.g
	return &m
}

func (b *builder) setInfo(name string, in *vinfo) { b.info[name] = in }

func (b *builder) dtype(name string) graph.DType {
	if in := b.info[name]; in != nil {
		return in.DType
	}
	return graph.Undefined
}

// isFloat reports whether a value can carry a gradient. Values whose dtype
// inference could not find count as float, so that a missing fact shows up
// as an error from a rule rather than a silently zero gradient.
func (b *builder) isFloat(name string) bool {
	dt := b.dtype(name)
	return dt == graph.Float32 || dt == graph.Undefined
}

func (b *builder) unique(prefix string) string {
	if !b.names[prefix] {
		b.names[prefix] = true
		return prefix
	}
	for {
		b.next++
		n := fmt.Sprintf("%s_%d", prefix, b.next)
		if !b.names[n] {
			b.names[n] = true
			return n
		}
	}
}

// node appends a node with the given outputs and records what shape
// inference derives for them. Inference failures of emitted nodes are
// programmer errors in a rule, so they panic (and tests catch them).
func (b *builder) node(op string, inputs, outputs []string, attrs ...*graph.Attribute) *graph.Node {
	var kept []*graph.Attribute
	for _, a := range attrs {
		if a != nil {
			kept = append(kept, a)
		}
	}
	n := &graph.Node{Name: b.unique("grad/" + op), OpType: op, Inputs: append([]string(nil), inputs...), Outputs: outputs, Attrs: kept}
	b.g.Nodes = append(b.g.Nodes, n)
	for _, o := range outputs {
		b.producer[o] = n
	}
	if err := b.infer(n); err != nil {
		panic(fmt.Sprintf("autodiff: emitted node %s: %v", op, err))
	}
	return n
}

// op appends a one-output node and returns its output's name.
func (b *builder) op(op string, inputs []string, attrs ...*graph.Attribute) string {
	return b.opN(op, inputs, 1, attrs...)[0]
}

func (b *builder) opN(op string, inputs []string, nout int, attrs ...*graph.Attribute) []string {
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = b.unique(fmt.Sprintf("grad/%s_out", op))
	}
	b.node(op, inputs, outs, attrs...)
	return outs
}

// constant adds (or reuses) an initializer holding t.
func (b *builder) constant(t *graph.Tensor) string {
	key := fmt.Sprintf("%d|%v|%v|%v|%v", t.DType, t.Shape, t.F32, t.I64, t.B)
	if name, ok := b.constKey[key]; ok {
		return name
	}
	name := b.unique("grad/const")
	b.g.Initializers = append(b.g.Initializers, graph.Initializer{Name: name, Tensor: t})
	b.consts[name] = t
	b.setInfo(name, graph.ConstFact(t))
	b.constKey[key] = name
	return name
}

// scalar is a rank-0 float32 constant, which broadcasts against anything.
func (b *builder) scalar(v float64) string { return b.constant(graph.ScalarFloat32(float32(v))) }

// ints is a 1-D int64 constant.
func (b *builder) ints(v ...int64) string {
	return b.constant(graph.NewInt64([]int64{int64(len(v))}, append([]int64(nil), v...)))
}

func (b *builder) add(x, y string) string { return b.op("Add", []string{x, y}) }
func (b *builder) sub(x, y string) string { return b.op("Sub", []string{x, y}) }
func (b *builder) mul(x, y string) string { return b.op("Mul", []string{x, y}) }
func (b *builder) div(x, y string) string { return b.op("Div", []string{x, y}) }
func (b *builder) neg(x string) string    { return b.op("Neg", []string{x}) }
func (b *builder) un(op, x string) string { return b.op(op, []string{x}) }
func (b *builder) where(c, x, y string) string {
	return b.op("Where", []string{c, x, y})
}

// sum adds gradient contributions of one value (all of its shape).
func (b *builder) sum(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	case 2:
		return b.add(list[0], list[1])
	}
	return b.op("Sum", list)
}

// shapeOf is Shape(x); CSE merges repeats.
func (b *builder) shapeOf(x string) string { return b.op("Shape", []string{x}) }

// rank returns x's rank, or an error when inference does not know it.
func (b *builder) rank(x string) (int, error) {
	in := b.info[x]
	if in == nil || !in.HasShape {
		return 0, fmt.Errorf("the rank of %q is unknown (shape inference could not derive it)", x)
	}
	return len(in.Shape), nil
}

// shape is x's inferred Shape: nil when the rank is unknown, non-nil
// (possibly empty) otherwise.
func (b *builder) shape(x string) graph.Shape {
	if in := b.info[x]; in != nil && in.HasShape {
		if in.Shape == nil {
			return graph.Shape{}
		}
		return in.Shape
	}
	return nil
}

// staticDims returns x's dimensions when all are fixed.
func (b *builder) staticDims(x string) ([]int64, bool) {
	in := b.info[x]
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

// dim returns x's dimension i when it is fixed.
func (b *builder) dim(x string, i int) (int64, error) {
	s := b.shape(x)
	if s == nil || i < 0 || i >= len(s) || !s[i].Known() {
		return 0, fmt.Errorf("dimension %d of %q must be known (have %v)", i, x, s)
	}
	return s[i].Value, nil
}

// sameShape reports whether two values surely have the same shape.
func (b *builder) sameShape(x, y string) bool {
	sx, sy := b.shape(x), b.shape(y)
	if sx == nil || sy == nil || len(sx) != len(sy) {
		return false
	}
	for i := range sx {
		if !sameDim(sx[i], sy[i]) {
			return false
		}
	}
	return true
}

// reshapeLike reshapes g to x's shape (a no-op when they surely agree).
func (b *builder) reshapeLike(g, x string) string {
	if b.sameShape(g, x) {
		return g
	}
	if dims, ok := b.staticDims(x); ok {
		return b.op("Reshape", []string{g, b.ints(dims...)})
	}
	return b.op("Reshape", []string{g, b.shapeOf(x)})
}

// reduceSum sums over axes, as an input from opset 13 and an attribute before.
func (b *builder) reduceSum(x string, axes []int64, keep bool) string {
	k := graph.IntAttr("keepdims", 0)
	if keep {
		k = graph.IntAttr("keepdims", 1)
	}
	if b.opset >= 13 {
		return b.op("ReduceSum", []string{x, b.ints(axes...)}, k)
	}
	return b.op("ReduceSum", []string{x}, graph.IntsAttr("axes", axes...), k)
}

// reduce applies ReduceMean/Max/Min/LogSumExp, whose axes became an input in
// opset 18.
func (b *builder) reduce(op, x string, axes []int64, keep bool) string {
	if op == "ReduceSum" {
		return b.reduceSum(x, axes, keep)
	}
	k := graph.IntAttr("keepdims", 0)
	if keep {
		k = graph.IntAttr("keepdims", 1)
	}
	if b.opset >= 18 {
		return b.op(op, []string{x, b.ints(axes...)}, k)
	}
	return b.op(op, []string{x}, graph.IntsAttr("axes", axes...), k)
}

func (b *builder) unsqueeze(x string, axes []int64) string {
	if len(axes) == 0 {
		return x
	}
	if b.opset >= 13 {
		return b.op("Unsqueeze", []string{x, b.ints(axes...)})
	}
	return b.op("Unsqueeze", []string{x}, graph.IntsAttr("axes", axes...))
}

func (b *builder) squeeze(x string, axes []int64) string {
	if len(axes) == 0 {
		return x
	}
	if b.opset >= 13 {
		return b.op("Squeeze", []string{x, b.ints(axes...)})
	}
	return b.op("Squeeze", []string{x}, graph.IntsAttr("axes", axes...))
}

func (b *builder) transpose(x string, perm []int64) string {
	id := true
	for i, p := range perm {
		if p != int64(i) {
			id = false
		}
	}
	if id {
		return x
	}
	return b.op("Transpose", []string{x}, graph.IntsAttr("perm", perm...))
}

// slice takes x[starts:ends:steps] along axes (constants).
func (b *builder) slice(x string, starts, ends, axes, steps []int64) string {
	in := []string{x, b.ints(starts...), b.ints(ends...), b.ints(axes...)}
	if steps != nil {
		in = append(in, b.ints(steps...))
	}
	return b.op("Slice", in)
}

// zerosLike is a float32 tensor of zeros with x's shape.
func (b *builder) zerosLike(x string) string {
	if dims, ok := b.staticDims(x); ok {
		return b.op("ConstantOfShape", []string{b.ints(dims...)}, graph.TensorAttr("value", graph.NewFloat32([]int64{1}, []float32{0})))
	}
	return b.op("ConstantOfShape", []string{b.shapeOf(x)}, graph.TensorAttr("value", graph.NewFloat32([]int64{1}, []float32{0})))
}

// unbroadcast sums g (shaped like a broadcast result) down to x's Shape: the
// gradient of an operand that was broadcast. The axes come from the
// symbolic shapes: leading axes x lacks, and axes where x has a fixed 1 and
// g does not. peers are the op's other operands: where x's size is unknown,
// x was not broadcast if every peer is absent, a fixed 1 or x itself along
// that axis. A dimension that may or may not have been broadcast is an error
// rather than a guess.
func (b *builder) unbroadcast(g, x string, peers ...string) (string, error) {
	if b.sameShape(g, x) {
		return g, nil
	}
	sg, sx := b.shape(g), b.shape(x)
	if sg == nil || sx == nil {
		return "", fmt.Errorf("cannot sum the gradient %q down to the shape of %q: rank unknown", g, x)
	}
	if len(sx) > len(sg) {
		return "", fmt.Errorf("operand %q has rank %d above the result's %d", x, len(sx), len(sg))
	}
	off := len(sg) - len(sx)
	var axes []int64
	for i := 0; i < off; i++ {
		axes = append(axes, int64(i))
	}
	inner := false
	for i, dx := range sx {
		dg := sg[off+i]
		switch {
		case sameDim(dx, dg):
		case dx.Known() && dx.Value == 1:
			axes = append(axes, int64(off+i))
			inner = true
		case dx.Known() && dg.Known():
			return "", fmt.Errorf("cannot sum dimension %d of size %d down to %d", off+i, dg.Value, dx.Value)
		case dx.Known() && !dg.Known() && dg.Param == "":
			// A fixed size other than 1 is never stretched: it is the result's.
		case dx.Param != "" && dg.Param == "" && !dg.Known():
			// Nor is a named size, such as the batch.
		case b.alone(x, len(sx)-i, peers):
		default:
			return "", fmt.Errorf("cannot tell whether %q was broadcast along axis %d (%v against %v); declare its shape", x, i, dx, dg)
		}
	}
	if len(axes) == 0 {
		return b.reshapeLike(g, x), nil
	}
	if !inner {
		return b.reshapeLike(b.reduceSum(g, axes, false), x), nil
	}
	return b.reshapeLike(b.reduceSum(g, axes, true), x), nil
}

// alone reports whether, at the axis fromEnd places from the right, every
// peer other than x itself is absent or a fixed 1, so the result's size
// there is x's.
func (b *builder) alone(x string, fromEnd int, peers []string) bool {
	if len(peers) == 0 {
		return false
	}
	for _, p := range peers {
		if p == x || p == "" {
			continue
		}
		s := b.shape(p)
		if s == nil {
			return false
		}
		if j := len(s) - fromEnd; j >= 0 {
			if d := s[j]; !(d.Known() && d.Value == 1) {
				return false
			}
		}
	}
	return true
}

// axesArg reads a node's axes: input idx from opset from, else the "axes"
// attribute; ok is false when the input is not a constant.
func (b *builder) axesArg(n *graph.Node, idx int, from int64) ([]int64, bool) {
	return b.f.AxesArg(n, idx, from)
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

func sameDim(a, b graph.Dim) bool {
	if a.Known() && b.Known() {
		return a.Value == b.Value
	}
	return a.Param != "" && a.Param == b.Param
}

// finish shares common subexpressions and drops what the outputs do not need.
func (b *builder) finish() {
	b.bypassIdentities()
	b.cse()
	b.prune()
}

// bypassIdentities points the readers of an Identity's output at its input
// (the Identity itself stays only when it names a graph output); gradient
// outputs of a model differentiated again otherwise pile up as chains.
func (b *builder) bypassIdentities() {
	outputs := map[string]bool{}
	for _, o := range b.g.Outputs {
		outputs[o.Name] = true
	}
	alias := map[string]string{}
	for _, n := range b.g.Nodes {
		if n.OpType == "Identity" && (n.Domain == "" || n.Domain == "ai.onnx") && len(n.Inputs) == 1 && len(n.Outputs) == 1 && !outputs[n.Outputs[0]] {
			alias[n.Outputs[0]] = n.Inputs[0]
		}
	}
	resolve := func(v string) string {
		for i := 0; i < len(alias)+1; i++ {
			a, ok := alias[v]
			if !ok {
				break
			}
			v = a
		}
		return v
	}
	for _, n := range b.g.Nodes {
		for i, in := range n.Inputs {
			if _, ok := alias[in]; ok {
				n.Inputs[i] = resolve(in)
			}
		}
	}
}

// cse merges nodes that compute the same op on the same inputs with the same
// attributes, in one forward sweep.
func (b *builder) cse() {
	order, err := b.g.TopoOrder()
	if err != nil {
		return
	}
	outputs := map[string]bool{}
	for _, o := range b.g.Outputs {
		outputs[o.Name] = true
	}
	rename := map[string]string{}
	seen := map[string]*graph.Node{}
	drop := map[*graph.Node]bool{}
	for _, n := range order {
		for i, in := range n.Inputs {
			if r, ok := rename[in]; ok {
				n.Inputs[i] = r
			}
		}
		if strings.HasPrefix(n.OpType, "Random") || n.OpType == "Dropout" && n.AttrInt("training_mode", 0) != 0 {
			continue
		}
		key := nodeKey(n)
		prev, ok := seen[key]
		if !ok {
			seen[key] = n
			continue
		}
		keep := true
		for _, o := range n.Outputs {
			if outputs[o] {
				keep = false
			}
		}
		if !keep || len(prev.Outputs) != len(n.Outputs) {
			continue
		}
		for i, o := range n.Outputs {
			rename[o] = prev.Outputs[i]
		}
		drop[n] = true
	}
	if len(drop) == 0 {
		return
	}
	kept := b.g.Nodes[:0]
	for _, n := range b.g.Nodes {
		if !drop[n] {
			kept = append(kept, n)
		}
	}
	b.g.Nodes = kept
}

func nodeKey(n *graph.Node) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s|%s|%q|%d", n.Domain, n.OpType, n.Inputs, len(n.Outputs))
	for _, a := range n.Attrs {
		fmt.Fprintf(&sb, "|%s:%d:%v:%d:%q:%v:%v:%q", a.Name, a.Type, math.Float32bits(a.F), a.I, a.S, a.Floats, a.Ints, a.Strings)
		if a.T != nil {
			fmt.Fprintf(&sb, ":%d%v%v%v%v%x", a.T.DType, a.T.Shape, a.T.F32, a.T.I64, a.T.B, a.T.Raw)
		}
		if a.G != nil || len(a.Graphs) > 0 || len(a.Tensors) > 0 {
			fmt.Fprintf(&sb, ":%p", a) // subgraphs: never merged
		}
	}
	return sb.String()
}

// prune removes nodes, initializers and value infos that no output needs,
// leaving the nodes in topological order.
func (b *builder) prune() {
	order, err := b.g.TopoOrder()
	if err != nil {
		return // cannot happen: the graph was ordered before and rules only append
	}
	need := map[string]bool{}
	for _, o := range b.g.Outputs {
		need[o.Name] = true
	}
	keep := map[*graph.Node]bool{}
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		use := false
		for _, o := range n.Outputs {
			if need[o] {
				use = true
			}
		}
		if !use {
			continue
		}
		keep[n] = true
		for _, in := range n.Inputs {
			need[in] = true
		}
		for _, a := range n.Attrs {
			for _, sg := range append([]*graph.Graph{a.G}, a.Graphs...) {
				if sg != nil {
					markOuter(sg, need)
				}
			}
		}
	}
	kept := make([]*graph.Node, 0, len(keep))
	defined := map[string]bool{}
	for _, n := range order {
		if keep[n] {
			kept = append(kept, n)
			for _, o := range n.Outputs {
				defined[o] = true
			}
		}
	}
	b.g.Nodes = kept
	for _, in := range b.g.Inputs {
		need[in.Name] = true // weights that older exporters also list as inputs
	}
	inits := b.g.Initializers[:0:0]
	for _, in := range b.g.Initializers {
		if need[in.Name] {
			inits = append(inits, in)
		}
	}
	b.g.Initializers = inits
	vis := b.g.ValueInfo[:0:0]
	for _, v := range b.g.ValueInfo {
		if defined[v.Name] {
			vis = append(vis, v)
		}
	}
	b.g.ValueInfo = vis
}

// markOuter marks every name a subgraph reads as needed (over-approximating:
// its own values are marked too, which is harmless).
func markOuter(g *graph.Graph, need map[string]bool) {
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			need[in] = true
		}
		for _, a := range n.Attrs {
			for _, sg := range append([]*graph.Graph{a.G}, a.Graphs...) {
				if sg != nil {
					markOuter(sg, need)
				}
			}
		}
	}
}
