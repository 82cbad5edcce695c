package graph

import (
	"errors"
	"strings"
	"testing"
)

// TestInferValuesThroughShapeVectors: torch's Reshape(x, Shape(y)[:1] ++
// [-1]) keeps y's symbolic batch, which needs the value of the shape vector,
// not just its shape.
func TestInferValuesThroughShapeVectors(t *testing.T) {
	b := NewBuilder("reshape_like")
	x := b.Input("x", Float32, Shape{{Param: "N"}, {Value: 2}, {Value: 3}})
	sh := b.Op1("Shape", []string{x})
	n := b.Op1("Gather", []string{sh, b.Const("zero", NewInt64([]int64{1}, []int64{0}))}, IntAttr("axis", 0))
	target := b.Op1("Concat", []string{n, b.Const("rest", NewInt64([]int64{1}, []int64{-1}))}, IntAttr("axis", 0))
	y := b.Op1("Reshape", []string{x, target})
	b.Output("y", y, Float32, nil)
	known, err := InferShapes(b.Graph())
	if err != nil {
		t.Fatal(err)
	}
	if got := known[y].Shape.String(); got != "[N,6]" {
		t.Errorf("Reshape(x, [N, -1]) of x [N,2,3]: shape %s, want [N,6]", got)
	}
}

func TestInferPadEinsumGatherElements(t *testing.T) {
	b := NewBuilder("ops")
	x := b.Input("x", Float32, Shape{{Param: "N"}, {Value: 3}, {Value: 4}})
	i := b.Input("i", Int64, Fixed(2, 3, 1))
	pad := b.Op1("Pad", []string{x, b.Const("pads", NewInt64([]int64{6}, []int64{0, 1, -1, 0, 2, 3}))})
	ein := b.Op1("Einsum", []string{x, b.Const("w", NewFloat32([]int64{4, 5}, make([]float32, 20)))}, StringAttr("equation", "nij,jk->nik"))
	ge := b.Op1("GatherElements", []string{x, i}, IntAttr("axis", 2))
	for _, o := range []string{pad, ein, ge} {
		b.Output(o, o, Undefined, nil)
	}
	known, err := InferShapes(b.Graph())
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]string{pad: "[N,6,6]", ein: "[N,3,5]", ge: "[2,3,1]"} {
		if got := known[v].Shape.String(); got != want {
			t.Errorf("%s: shape %s, want %s", v, got, want)
		}
	}
}

// TestCheckNode: arity and attribute ranges from the table, with errors
// that name the node and the op.
func TestCheckNode(t *testing.T) {
	cases := []struct {
		n     *Node
		opset int64
		is    error // nil: valid
	}{
		{&Node{Name: "a", OpType: "Add", Inputs: []string{"x", "y"}, Outputs: []string{"z"}}, 17, nil},
		{&Node{Name: "a", OpType: "Add", Inputs: []string{"x"}, Outputs: []string{"z"}}, 17, ErrArity},
		{&Node{Name: "a", OpType: "Add", Inputs: []string{"", "y"}, Outputs: []string{"z"}}, 17, ErrArity},
		{&Node{Name: "a", OpType: "Add", Inputs: []string{"x", "y", "w"}, Outputs: []string{"z"}}, 17, ErrArity},
		{&Node{Name: "c", OpType: "Clip", Inputs: []string{"x", "", "hi"}, Outputs: []string{"z"}}, 17, nil},
		{&Node{Name: "s", OpType: "Sum", Inputs: []string{"a", "b", "c", "d"}, Outputs: []string{"z"}}, 17, nil},
		{&Node{Name: "s", OpType: "Sum", Inputs: []string{"a", "", "c"}, Outputs: []string{"z"}}, 17, ErrArity},
		// Past the table's schemas only minimums are checked: ReduceMean
		// took its axes as an input from opset 18.
		{&Node{Name: "r", OpType: "ReduceMean", Inputs: []string{"x", "axes"}, Outputs: []string{"z"}}, 18, nil},
		{&Node{Name: "r", OpType: "ReduceMean", Inputs: []string{"x", "axes"}, Outputs: []string{"z"}}, 17, ErrArity},
		{&Node{Name: "g", OpType: "Gelu", Inputs: []string{"x"}, Outputs: []string{"z"}}, 17, ErrUnsupportedOp},
		{&Node{Name: "p", OpType: "MaxPool", Inputs: []string{"x"}, Outputs: []string{"z"}, Attrs: []*Attribute{IntsAttr("kernel_shape", 0, 2)}}, 17, ErrAttribute},
		{&Node{Name: "p", OpType: "MaxPool", Inputs: []string{"x"}, Outputs: []string{"z"}}, 17, ErrAttribute},
		{&Node{Name: "p", OpType: "AveragePool", Inputs: []string{"x"}, Outputs: []string{"z"}, Attrs: []*Attribute{IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 1, 0)}}, 17, ErrAttribute},
		{&Node{Name: "p", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"z"}, Attrs: []*Attribute{StringAttr("auto_pad", "SAME")}}, 17, ErrAttribute},
		{&Node{Name: "f", OpType: "FooOp", Inputs: []string{"x"}, Outputs: []string{"z"}}, 17, ErrUnsupportedOp},
	}
	for _, c := range cases {
		err := CheckNode(c.n, c.opset)
		switch {
		case c.is == nil && err != nil:
			t.Errorf("%s %v at opset %d: %v", c.n.OpType, c.n.Inputs, c.opset, err)
		case c.is != nil && !errors.Is(err, c.is):
			t.Errorf("%s %v at opset %d: got %v, want %v", c.n.OpType, c.n.Inputs, c.opset, err, c.is)
		case err != nil && !strings.Contains(err.Error(), `"`+c.n.Name+`"`):
			t.Errorf("error does not name the node: %v", err)
		}
	}
}

// TestHooks: parts hang on table entries once, and only on ONNX ops.
func TestHooks(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	Hang("test-hook", "Relu", 1)
	if Hook("test-hook", "Relu") != 1 || Hook("test-hook", "Abs") != nil {
		t.Error("Hook does not return what was hung")
	}
	if got := OpsWith("test-hook"); len(got) != 1 || got[0] != "Relu" {
		t.Errorf("OpsWith: %v", got)
	}
	mustPanic("hanging twice", func() { Hang("test-hook", "Relu", 2) })
	mustPanic("hanging on a non-op", func() { Hang("test-hook", "FooOp", 1) })
	mustPanic("a gradient on a constant op", func() { Hang(HookVJP, "Shape", 1) })
}

// TestWindow: SAME padding, ceil mode and ConvTranspose's output_shape.
func TestWindow(t *testing.T) {
	cases := []struct {
		a      Axis
		auto   string
		tr, cl bool
		pb, pe int64
		out    int64
	}{
		{Axis{In: 5, Kernel: 3, Stride: 2, Dilation: 1, Want: -1}, "SAME_UPPER", false, false, 1, 1, 3},
		{Axis{In: 6, Kernel: 3, Stride: 2, Dilation: 1, Want: -1}, "SAME_UPPER", false, false, 0, 1, 3},
		{Axis{In: 6, Kernel: 3, Stride: 2, Dilation: 1, Want: -1}, "SAME_LOWER", false, false, 1, 0, 3},
		{Axis{In: 6, Kernel: 3, Stride: 2, Dilation: 2, Want: -1}, "VALID", false, false, 0, 0, 1},
		{Axis{In: 6, Kernel: 3, Stride: 2, Dilation: 1, Want: -1}, "NOTSET", false, true, 0, 0, 3},
		{Axis{In: 3, Kernel: 3, Stride: 2, Dilation: 1, Want: 8}, "NOTSET", true, false, 0, 0, 8},
		{Axis{In: 3, Kernel: 3, Stride: 2, Dilation: 1, Want: 6}, "NOTSET", true, false, 1, 0, 6},
		{Axis{In: 3, Kernel: 3, Stride: 2, Dilation: 1, PadBegin: 1, PadEnd: 1, Want: -1}, "NOTSET", true, false, 1, 1, 5},
	}
	for i, c := range cases {
		a := c.a
		if err := a.Resolve(c.auto, c.tr, c.cl); err != nil {
			t.Errorf("case %d: %v", i, err)
			continue
		}
		if a.PadBegin != c.pb || a.PadEnd != c.pe || a.Out != c.out {
			t.Errorf("case %d: pads %d,%d out %d; want %d,%d out %d", i, a.PadBegin, a.PadEnd, a.Out, c.pb, c.pe, c.out)
		}
	}
	bad := Axis{In: 4, Kernel: 0, Stride: 1, Dilation: 1, Want: -1}
	if err := bad.Resolve("NOTSET", false, false); err == nil {
		t.Error("kernel 0 resolved")
	}
}

func TestDiffInput(t *testing.T) {
	for _, c := range []struct {
		op   string
		i    int
		want bool
	}{{"Add", 1, true}, {"Gather", 0, true}, {"Gather", 1, false}, {"Resize", 0, true}, {"Resize", 2, false},
		{"Shape", 0, false}, {"Where", 0, false}, {"Where", 1, true}, {"FooOp", 0, true}} {
		if got := DiffInput(c.op, c.i); got != c.want {
			t.Errorf("DiffInput(%s, %d) = %v, want %v", c.op, c.i, got, c.want)
		}
	}
}
