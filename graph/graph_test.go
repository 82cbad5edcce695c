package graph

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var batch = Shape{{Param: "N"}, {Value: 2}}

func mlp() *Graph {
	b := NewBuilder("mlp")
	x := b.Input("x", Float32, batch)
	w := b.Const("w", NewFloat32([]int64{2, 3}, nil))
	bias := b.Const("b", NewFloat32([]int64{3}, nil))
	h := b.Op("MatMul", x, w)[0]
	h = b.Op("Add", h, bias)[0]
	b.Output("y", b.Op("Tanh", h)[0], Float32, Shape{{Param: "N"}, {Value: 3}})
	return b.Graph()
}

func TestValidateAcceptsBuiltGraph(t *testing.T) {
	t.Parallel()
	g := mlp()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	shapes, err := InferShapes(g)
	if err != nil {
		t.Fatal(err)
	}
	if got := shapes["y"].Shape.String(); got != "[N,3]" {
		t.Errorf("inferred y %s, want [N,3]", got)
	}
}

func TestValidateFindsProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		break_ func(g *Graph)
		is     error
	}{
		{"dangling", func(g *Graph) { g.Nodes[0].Inputs[1] = "nowhere" }, ErrDangling},
		{"duplicate", func(g *Graph) { g.Nodes[1].Outputs[0] = g.Nodes[0].Outputs[0] }, ErrDuplicate},
		{"missing output", func(g *Graph) { g.Outputs[0].Name = "zzz" }, ErrMissingOutput},
		{"cycle", func(g *Graph) { g.Nodes[0].Inputs[0] = g.Nodes[2].Outputs[0] }, ErrCycle},
		{"inner dims", func(g *Graph) { g.Initializers[0].Tensor = NewFloat32([]int64{5, 3}, nil) }, ErrShapeConflict},
		{"broadcast", func(g *Graph) { g.Initializers[1].Tensor = NewFloat32([]int64{4}, nil) }, ErrShapeConflict},
		{"declared output", func(g *Graph) { g.Outputs[0].Shape = Shape{{Param: "N"}, {Value: 7}} }, ErrShapeConflict},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := mlp()
			c.break_(g)
			err := g.Validate()
			if !errors.Is(err, c.is) {
				t.Errorf("got %v, want %v", err, c.is)
			}
		})
	}
}

func TestTopoOrderLongChain(t *testing.T) {
	t.Parallel()
	b := NewBuilder("chain")
	v := b.Input("x", Float32, batch)
	for i := 0; i < 100_000; i++ {
		v = b.Op("Neg", v)[0]
	}
	b.Output("y", v, Float32, batch)
	g := b.Graph()
	// Reverse the node list: the order must come from the edges.
	for i, j := 0, len(g.Nodes)-1; i < j; i, j = i+1, j-1 {
		g.Nodes[i], g.Nodes[j] = g.Nodes[j], g.Nodes[i]
	}
	order, err := g.TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, n := range order {
		for _, o := range n.Outputs {
			pos[o] = i
		}
	}
	for i, n := range order {
		for _, in := range n.Inputs {
			if p, ok := pos[in]; ok && p >= i {
				t.Fatalf("node %s at %d uses %s produced at %d", n.Label(), i, in, p)
			}
		}
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b Shape
		want string
		err  bool
	}{
		{Fixed(2, 3), Fixed(3), "[2,3]", false},
		{Fixed(2, 1), Fixed(1, 4), "[2,4]", false},
		{Shape{{Param: "N"}, {Value: 1}}, Fixed(5), "[N,5]", false},
		{Fixed(2, 3), Fixed(4), "", true},
		{Fixed(), Fixed(7, 1), "[7,1]", false},
	}
	for _, c := range cases {
		got, err := Broadcast(c.a, c.b)
		if (err != nil) != c.err {
			t.Errorf("Broadcast(%s, %s) error %v", c.a, c.b, err)
			continue
		}
		if err == nil && got.String() != c.want {
			t.Errorf("Broadcast(%s, %s) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
}

func TestTensorCheck(t *testing.T) {
	t.Parallel()
	if err := NewFloat32([]int64{2, 2}, []float32{1, 2, 3}).Check(); err == nil {
		t.Error("short data accepted")
	}
	if _, err := CheckedNumElements([]int64{1 << 40, 1 << 40}); err == nil {
		t.Error("overflowing shape accepted")
	}
	if err := (&Tensor{DType: Int32, Shape: []int64{2}, Raw: make([]byte, 8)}).Check(); err != nil {
		t.Errorf("raw int32: %v", err)
	}
}

func ExampleBuilder() {
	b := NewBuilder("affine")
	x := b.Input("x", Float32, Shape{{Param: "N"}, {Value: 2}})
	w := b.Const("w", NewFloat32([]int64{2, 2}, []float32{1, 0, 0, 1}))
	b.Output("y", b.Op("MatMul", x, w)[0], Float32, Shape{{Param: "N"}, {Value: 2}})
	g := b.Graph()
	shapes, err := InferShapes(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	ops := []string{}
	for _, n := range g.Nodes {
		ops = append(ops, n.OpType)
	}
	fmt.Println(strings.Join(ops, " → "), shapes["y"].Shape)
	// Output: MatMul → Identity [N,2]
}
