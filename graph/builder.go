package graph

import "fmt"

// Builder constructs a graph from Go code. Values are referred to by name;
// Op returns the names of the outputs it creates, so calls compose:
//
//	b := graph.NewBuilder("mlp")
//	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
//	h := b.Op("MatMul", x, b.Const("w", w))[0]
//	b.Output("score", b.Op("Tanh", h)[0])
//	g := b.Graph()
type Builder struct {
	g     *Graph
	names map[string]bool
	next  int
}

// NewBuilder starts an empty graph.
func NewBuilder(name string) *Builder {
	return &Builder{g: &Graph{Name: name}, names: map[string]bool{}}
}

// Unique returns a name not yet used in the graph, based on prefix.
func (b *Builder) Unique(prefix string) string {
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

// Input declares a graph input and returns its name.
func (b *Builder) Input(name string, dt DType, shape Shape) string {
	name = b.Unique(name)
	b.g.Inputs = append(b.g.Inputs, ValueInfo{Name: name, DType: dt, Shape: shape, HasShape: shape != nil})
	return name
}

// Const adds an initializer and returns its name.
func (b *Builder) Const(name string, t *Tensor) string {
	name = b.Unique(name)
	b.g.Initializers = append(b.g.Initializers, Initializer{Name: name, Tensor: t})
	return name
}

// Op adds a node with one output and no attributes.
func (b *Builder) Op(op string, inputs ...string) []string {
	return b.Node(op, inputs, 1)
}

// Node adds a node with nout outputs and the given attributes, returning the
// output names.
func (b *Builder) Node(op string, inputs []string, nout int, attrs ...*Attribute) []string {
	n := &Node{Name: b.Unique(op), OpType: op, Inputs: append([]string(nil), inputs...), Attrs: attrs}
	for i := 0; i < nout; i++ {
		n.Outputs = append(n.Outputs, b.Unique(fmt.Sprintf("%s_out%d", n.Name, i)))
	}
	b.g.Nodes = append(b.g.Nodes, n)
	return n.Outputs
}

// Op1 adds a node with one output and attributes, returning the output name.
func (b *Builder) Op1(op string, inputs []string, attrs ...*Attribute) string {
	return b.Node(op, inputs, 1, attrs...)[0]
}

// Output declares a graph output called name whose value is v. An Identity
// node renames v when the names differ.
func (b *Builder) Output(name, v string, dt DType, shape Shape) {
	if name != v {
		b.names[name] = true
		b.g.Nodes = append(b.g.Nodes, &Node{Name: b.Unique("Identity_" + name), OpType: "Identity", Inputs: []string{v}, Outputs: []string{name}})
	}
	b.g.Outputs = append(b.g.Outputs, ValueInfo{Name: name, DType: dt, Shape: shape, HasShape: shape != nil})
}

// Graph returns the graph built so far. The builder keeps a reference, so
// further calls change the same graph.
func (b *Builder) Graph() *Graph { return b.g }

// Attribute constructors.

// IntAttr is an int attribute.
func IntAttr(name string, v int64) *Attribute { return &Attribute{Name: name, Type: AttrInt, I: v} }

// FloatAttr is a float attribute.
func FloatAttr(name string, v float32) *Attribute {
	return &Attribute{Name: name, Type: AttrFloat, F: v}
}

// StringAttr is a string attribute.
func StringAttr(name, v string) *Attribute { return &Attribute{Name: name, Type: AttrString, S: v} }

// IntsAttr is an ints attribute.
func IntsAttr(name string, v ...int64) *Attribute {
	return &Attribute{Name: name, Type: AttrInts, Ints: v}
}

// FloatsAttr is a floats attribute.
func FloatsAttr(name string, v ...float32) *Attribute {
	return &Attribute{Name: name, Type: AttrFloats, Floats: v}
}

// TensorAttr is a tensor attribute.
func TensorAttr(name string, t *Tensor) *Attribute {
	return &Attribute{Name: name, Type: AttrTensor, T: t}
}
