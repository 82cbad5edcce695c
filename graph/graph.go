package graph

import (
	"fmt"
	"strings"
)

// Dim is one dimension of a declared shape: a fixed size, a named symbolic
// size (Param, such as "N" for the batch), or unknown (neither).
type Dim struct {
	Value int64
	Param string
}

// Known reports whether the dimension has a fixed size.
func (d Dim) Known() bool { return d.Param == "" && d.Value >= 0 }

func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Value < 0:
		return "?"
	}
	return fmt.Sprint(d.Value)
}

// Unknown is a dimension of unknown size.
var Unknown = Dim{Value: -1}

// Shape is a declared shape. A nil Shape with HasShape false in a ValueInfo
// means the rank is unknown.
type Shape []Dim

// Fixed makes a Shape of known dimensions.
func Fixed(dims ...int64) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		s[i] = Dim{Value: d}
	}
	return s
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Ints returns the dimensions as integers, with -1 for symbolic or unknown.
func (s Shape) Ints() []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		if d.Known() {
			out[i] = d.Value
		} else {
			out[i] = -1
		}
	}
	return out
}

// ValueInfo declares a named value: a graph input, output or intermediate.
type ValueInfo struct {
	Name     string
	DType    DType
	Shape    Shape
	HasShape bool // false: rank unknown
	// NonTensor names a value type other than a tensor ("sequence", "map",
	// "optional", "sparse_tensor"), which files may declare and the runtime
	// does not compute with; "" for tensors.
	NonTensor string
	Doc       string
}

// AttrType is the kind of value an attribute holds (ONNX's numbering).
type AttrType int32

// Attribute kinds.
const (
	AttrUndefined AttrType = 0
	AttrFloat     AttrType = 1
	AttrInt       AttrType = 2
	AttrString    AttrType = 3
	AttrTensor    AttrType = 4
	AttrGraph     AttrType = 5
	AttrFloats    AttrType = 6
	AttrInts      AttrType = 7
	AttrStrings   AttrType = 8
	AttrTensors   AttrType = 9
	AttrGraphs    AttrType = 10
)

func (a AttrType) String() string {
	names := [...]string{"undefined", "float", "int", "string", "tensor", "graph", "floats", "ints", "strings", "tensors", "graphs"}
	if a >= 0 && int(a) < len(names) {
		return names[a]
	}
	return fmt.Sprintf("attrtype(%d)", int32(a))
}

// Attribute is a typed node attribute; the field matching Type holds the value.
type Attribute struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       string
	T       *Tensor
	G       *Graph
	Floats  []float32
	Ints    []int64
	Strings []string
	Tensors []*Tensor
	Graphs  []*Graph
	RefAttr string // set in function bodies; unused by the runtime
	Doc     string
}

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Domain  string   // "" is the default ONNX domain
	Inputs  []string // "" marks an omitted optional input
	Outputs []string
	Attrs   []*Attribute
	Doc     string
}

// Attr returns the named attribute, or nil.
func (n *Node) Attr(name string) *Attribute {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AttrInt returns an int attribute or def when absent.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInt {
		return a.I
	}
	return def
}

// AttrFloat returns a float attribute or def when absent.
func (n *Node) AttrFloat(name string, def float32) float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloat {
		return a.F
	}
	return def
}

// AttrString returns a string attribute or def when absent.
func (n *Node) AttrString(name string, def string) string {
	if a := n.Attr(name); a != nil && a.Type == AttrString {
		return a.S
	}
	return def
}

// AttrInts returns an ints attribute, or def when absent.
func (n *Node) AttrInts(name string, def []int64) []int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInts {
		return a.Ints
	}
	return def
}

// AttrFloats returns a floats attribute, or def when absent.
func (n *Node) AttrFloats(name string, def []float32) []float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloats {
		return a.Floats
	}
	return def
}

// Input returns the i-th input name, or "" when absent or omitted.
func (n *Node) Input(i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// Label names the node in messages: its name, else its op and first output.
func (n *Node) Label() string {
	if n.Name != "" {
		return n.Name
	}
	out := ""
	if len(n.Outputs) > 0 {
		out = n.Outputs[0]
	}
	return n.OpType + "→" + out
}

// Initializer is a named constant tensor of the graph.
type Initializer struct {
	Name   string
	Tensor *Tensor
	Doc    string
}

// Graph is a computation: nodes over named values.
type Graph struct {
	Name         string
	Doc          string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	ValueInfo    []ValueInfo // declared intermediate values
	Initializers []Initializer
	Nodes        []*Node
}

// Initializer returns the named initializer's tensor, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for i := range g.Initializers {
		if g.Initializers[i].Name == name {
			return g.Initializers[i].Tensor
		}
	}
	return nil
}

// InitializerMap indexes the initializers by name.
func (g *Graph) InitializerMap() map[string]*Tensor {
	m := make(map[string]*Tensor, len(g.Initializers))
	for _, in := range g.Initializers {
		m[in.Name] = in.Tensor
	}
	return m
}

// Input returns the named graph input, or nil.
func (g *Graph) Input(name string) *ValueInfo {
	for i := range g.Inputs {
		if g.Inputs[i].Name == name {
			return &g.Inputs[i]
		}
	}
	return nil
}

// RuntimeInputs are the graph inputs that are not also initializers; older
// exporters list every weight as an input too.
func (g *Graph) RuntimeInputs() []ValueInfo {
	inits := g.InitializerMap()
	var out []ValueInfo
	for _, in := range g.Inputs {
		if _, ok := inits[in.Name]; !ok {
			out = append(out, in)
		}
	}
	return out
}

// OpsetImport names an operator set and its version.
type OpsetImport struct {
	Domain  string
	Version int64
}

// MetadataProp is one key/value of a model's metadata, kept in file order.
type MetadataProp struct {
	Key, Value string
}

// Model is a graph together with the file-level facts of an ONNX model.
type Model struct {
	IRVersion       int64
	Opsets          []OpsetImport
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	Doc             string
	Metadata        []MetadataProp
	Graph           *Graph
}

// Opset returns the imported version of a domain ("" or "ai.onnx" for the
// default domain), or 0 when it is not imported.
func (m *Model) Opset(domain string) int64 {
	if domain == "ai.onnx" {
		domain = ""
	}
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "ai.onnx" {
			d = ""
		}
		if d == domain {
			return o.Version
		}
	}
	return 0
}

// Meta returns a metadata value and whether it is present.
func (m *Model) Meta(key string) (string, bool) {
	for _, p := range m.Metadata {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// SetMeta sets a metadata value, replacing an existing key in place.
func (m *Model) SetMeta(key, value string) {
	for i := range m.Metadata {
		if m.Metadata[i].Key == key {
			m.Metadata[i].Value = value
			return
		}
	}
	m.Metadata = append(m.Metadata, MetadataProp{key, value})
}

// Walk calls f for every node of g and of its subgraphs (If and Loop
// bodies), depth first.
func (g *Graph) Walk(f func(*Node)) {
	for _, n := range g.Nodes {
		f(n)
		for _, a := range n.Attrs {
			if a.G != nil {
				a.G.Walk(f)
			}
			for _, sg := range a.Graphs {
				sg.Walk(f)
			}
		}
	}
}

// OpHistogram counts nodes per op type (domain-qualified outside the default
// domain), subgraphs included.
func (g *Graph) OpHistogram() map[string]int {
	h := map[string]int{}
	g.Walk(func(n *Node) {
		key := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			key = n.Domain + "." + n.OpType
		}
		h[key]++
	})
	return h
}
