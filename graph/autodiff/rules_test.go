package autodiff_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/runtime"
)

// Finite-difference settings: float32 graphs, differences accumulated in
// float64 and Richardson-extrapolated from h and h/2 (finiteDiff). At
// h = 1e-2 the O(h⁴) truncation is far below float32 rounding, and every
// rule case's worst error is under 0.4 of its bound; at 5e-2 steps reach
// past the kinks the inputs keep 0.3 away from.
const (
	fdStep = 1e-2
)

// ruleTol compares a rule's gradient with its finite difference element by
// element (compareFD): 1e-5 of each component for the gradient's own float32
// rounding, plus the difference's rounding bound. It catches a rule off by
// 3e-4 relative, which 5e-3·max|want| + 2e-3 let through.
var ruleTol = fdTol{Rel: 1e-5, Floor: 1e-7}

// value kinds for test inputs
const (
	normal   = iota // N(0,1)
	positive        // U(0.5, 2)
	awayZero        // ±U(0.3, 1.5): clear of kinks at 0
)

type tin struct {
	name  string
	shape graph.Shape // declared; "N" is the batch
	dims  []int64     // fed
	kind  int
	ints  []int64 // an int64 input's fixed values (not differentiated)
	bools []bool  // a bool input's fixed values
}

func f(name string, kind int, dims ...int64) tin {
	return tin{name: name, shape: graph.Fixed(dims...), dims: dims, kind: kind}
}

// fN declares the first axis as the symbolic batch N and feeds dims[0].
func fN(name string, kind int, dims ...int64) tin {
	s := graph.Fixed(dims...)
	s[0] = graph.Dim{Param: "N"}
	return tin{name: name, shape: s, dims: dims, kind: kind}
}

// cb builds a test graph; its helpers emit opset-appropriate forms.
type cb struct {
	b     *graph.Builder
	in    []string
	opset int64
}

func (c *cb) op(op string, ins []string, attrs ...*graph.Attribute) string {
	return c.b.Op1(op, ins, attrs...)
}

func (c *cb) ints(v ...int64) string {
	return c.b.Const("k", graph.NewInt64([]int64{int64(len(v))}, v))
}

func (c *cb) fconst(dims []int64, v ...float32) string {
	return c.b.Const("c", graph.NewFloat32(dims, v))
}

// axesOp emits op with axes as an input from opset from, else an attribute.
func (c *cb) axesOp(op string, x string, from int64, axes []int64, attrs ...*graph.Attribute) string {
	if c.opset >= from {
		return c.op(op, []string{x, c.ints(axes...)}, attrs...)
	}
	return c.op(op, []string{x}, append(attrs, graph.IntsAttr("axes", axes...))...)
}

func (c *cb) reduce(op, x string, axes []int64, keep int64) string {
	from := int64(18)
	if op == "ReduceSum" {
		from = 13
	}
	return c.axesOp(op, x, from, axes, graph.IntAttr("keepdims", keep))
}

type ruleCase struct {
	name   string
	opsets []int64 // default 17
	ins    []tin
	build  func(c *cb) string
	// yShape declares the output's shape; onnxruntime_go needs it for
	// rank-0 outputs.
	yShape graph.Shape
}

func unaryCase(op string, kind int, attrs ...*graph.Attribute) ruleCase {
	return ruleCase{name: op, ins: []tin{fN("x", kind, 2, 3)}, build: func(c *cb) string {
		return c.op(op, c.in[:1], attrs...)
	}}
}

func ruleCases() []ruleCase {
	ia, fa, isa := graph.IntAttr, graph.FloatAttr, graph.IntsAttr
	axesOpsets := []int64{11, 13, 18}
	cases := []ruleCase{
		unaryCase("Neg", normal), unaryCase("Abs", awayZero), unaryCase("Exp", normal),
		unaryCase("Log", positive), unaryCase("Sqrt", positive), unaryCase("Reciprocal", positive),
		unaryCase("Sigmoid", normal), unaryCase("Tanh", normal), unaryCase("Relu", awayZero),
		unaryCase("LeakyRelu", awayZero, fa("alpha", 0.1)), unaryCase("Elu", awayZero, fa("alpha", 0.7)),
		unaryCase("Selu", awayZero), unaryCase("Softplus", normal), unaryCase("Softsign", awayZero),
		unaryCase("HardSigmoid", normal, fa("alpha", 0.2), fa("beta", 0.5)), unaryCase("Erf", normal),
		unaryCase("Sin", normal), unaryCase("Cos", normal), unaryCase("Identity", normal),
		unaryCase("Dropout", normal), unaryCase("Cast", normal, ia("to", int64(graph.Float32))),
		{name: "Add/broadcast", opsets: []int64{11, 17}, ins: []tin{fN("a", normal, 2, 3), f("b", normal, 3)}, build: func(c *cb) string {
			return c.op("Add", c.in)
		}},
		{name: "Sub/broadcast-both", opsets: []int64{11, 17}, ins: []tin{f("a", normal, 2, 1, 3), f("b", normal, 4, 1)}, build: func(c *cb) string {
			return c.op("Sub", c.in)
		}},
		{name: "Mul/batch-column", opsets: []int64{11, 17}, ins: []tin{fN("a", normal, 2, 3), fN("b", normal, 2, 1)}, build: func(c *cb) string {
			return c.op("Mul", c.in)
		}},
		{name: "Mul-Add/unknown-dims", ins: []tin{{name: "a", shape: graph.Shape{graph.Unknown, {Value: 3}}, dims: []int64{2, 3}},
			f("b", normal, 3), f("c", normal, 1, 1)}, build: func(c *cb) string {
			sq := c.op("Mul", []string{c.in[0], c.in[0]})
			return c.op("Mul", []string{c.op("Add", []string{sq, c.in[1]}), c.in[2]})
		}},
		{name: "Mul/same", ins: []tin{fN("a", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("Mul", []string{c.in[0], c.in[0]})
		}},
		{name: "Div/broadcast", ins: []tin{f("a", normal, 2, 3), f("b", positive, 3)}, build: func(c *cb) string {
			return c.op("Div", c.in)
		}},
		{name: "Pow", ins: []tin{f("a", positive, 2, 3), f("e", normal, 3)}, build: func(c *cb) string {
			return c.op("Pow", c.in)
		}},
		{name: "Max/3", ins: []tin{f("a", normal, 2, 3), f("b", normal, 3), f("c", normal, 1, 3)}, build: func(c *cb) string {
			return c.op("Max", c.in)
		}},
		{name: "Min/2", ins: []tin{f("a", normal, 2, 3), f("b", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("Min", c.in)
		}},
		{name: "Sum/3", ins: []tin{f("a", normal, 2, 3), f("b", normal, 3), f("c", normal, 2, 1)}, build: func(c *cb) string {
			return c.op("Sum", c.in)
		}},
		{name: "Mean/2", ins: []tin{f("a", normal, 2, 3), f("b", normal, 3)}, build: func(c *cb) string {
			return c.op("Mean", c.in)
		}},
		{name: "Where", ins: []tin{{name: "cond", shape: graph.Fixed(2, 3), dims: []int64{2, 3}, bools: []bool{true, false, true, false, false, true}},
			f("a", normal, 2, 3), f("b", normal, 3)}, build: func(c *cb) string {
			return c.op("Where", c.in)
		}},
		{name: "Clip", ins: []tin{f("x", normal, 3, 4), f("lo", normal), f("hi", normal)}, build: func(c *cb) string {
			lo := c.op("Sub", []string{c.in[1], c.fconst(nil, 0.6)})
			hi := c.op("Add", []string{c.in[2], c.fconst(nil, 0.6)})
			return c.op("Clip", []string{c.in[0], lo, hi})
		}},
		{name: "Gemm/transB", ins: []tin{fN("a", normal, 4, 2), f("b", normal, 3, 2), f("c", normal, 3)}, build: func(c *cb) string {
			return c.op("Gemm", c.in, ia("transB", 1), fa("alpha", 1.5), fa("beta", 0.5))
		}},
		{name: "Gemm/transA", opsets: []int64{11, 17}, ins: []tin{f("a", normal, 2, 4), f("b", normal, 2, 3), f("c", normal, 4, 1)}, build: func(c *cb) string {
			return c.op("Gemm", c.in, ia("transA", 1))
		}},
		{name: "Gemm/both", ins: []tin{f("a", normal, 2, 4), f("b", normal, 3, 2)}, build: func(c *cb) string {
			return c.op("Gemm", c.in, ia("transA", 1), ia("transB", 1), fa("alpha", 0.5))
		}},
		{name: "MatMul/3x2", ins: []tin{f("a", normal, 2, 3, 4), f("b", normal, 4, 5)}, build: func(c *cb) string {
			return c.op("MatMul", c.in)
		}},
		{name: "MatMul/vec-left", ins: []tin{f("a", normal, 4), f("b", normal, 2, 4, 3)}, build: func(c *cb) string {
			return c.op("MatMul", c.in)
		}},
		{name: "MatMul/vec-right", ins: []tin{f("a", normal, 2, 3, 4), f("b", normal, 4)}, build: func(c *cb) string {
			return c.op("MatMul", c.in)
		}},
		{name: "MatMul/dot", ins: []tin{f("a", normal, 4), f("b", normal, 4)}, yShape: graph.Shape{}, build: func(c *cb) string {
			return c.op("MatMul", c.in)
		}},
		{name: "MatMul/batch-broadcast", ins: []tin{fN("a", normal, 2, 2, 3), f("b", normal, 1, 3, 2)}, build: func(c *cb) string {
			return c.op("MatMul", c.in)
		}},
		{name: "Conv/stride-pad", ins: []tin{fN("x", normal, 2, 2, 6, 6), f("w", normal, 3, 2, 3, 3), f("b", normal, 3)}, build: func(c *cb) string {
			return c.op("Conv", c.in, isa("pads", 1, 1, 1, 1), isa("strides", 2, 2))
		}},
		{name: "Conv/group-dilation", ins: []tin{f("x", normal, 1, 4, 6, 5), f("w", normal, 4, 2, 3, 2)}, build: func(c *cb) string {
			return c.op("Conv", c.in, isa("pads", 2, 1, 1, 0), isa("dilations", 2, 1), ia("group", 2))
		}},
		{name: "Conv/1d-same", ins: []tin{f("x", normal, 2, 3, 7), f("w", normal, 2, 3, 3), f("b", normal, 2)}, build: func(c *cb) string {
			return c.op("Conv", c.in, graph.StringAttr("auto_pad", "SAME_UPPER"), isa("strides", 2))
		}},
		{name: "Conv/same-3x3", ins: []tin{fN("x", normal, 2, 3, 5, 5), f("w", normal, 4, 3, 3, 3), f("b", normal, 4)}, build: func(c *cb) string {
			return c.op("Conv", c.in, isa("pads", 1, 1, 1, 1))
		}},
		{name: "Conv/1x1", ins: []tin{fN("x", normal, 2, 3, 4, 3), f("w", normal, 2, 3, 1, 1)}, build: func(c *cb) string {
			return c.op("Conv", c.in)
		}},
		{name: "Conv/dilation-uneven-pad", ins: []tin{f("x", normal, 1, 2, 6, 5), f("w", normal, 3, 2, 3, 2)}, build: func(c *cb) string {
			return c.op("Conv", c.in, isa("pads", 2, 0, 1, 1), isa("dilations", 2, 1))
		}},
		{name: "Conv/stride-remainder", ins: []tin{f("x", normal, 1, 2, 7, 6), f("w", normal, 2, 2, 3, 3)}, build: func(c *cb) string {
			return c.op("Conv", c.in, isa("pads", 0, 1, 0, 0), isa("strides", 2, 3))
		}},
		{name: "ConvTranspose/stride", ins: []tin{fN("x", normal, 1, 3, 4, 4), f("w", normal, 3, 2, 4, 4), f("b", normal, 2)}, build: func(c *cb) string {
			return c.op("ConvTranspose", c.in, isa("pads", 1, 1, 1, 1), isa("strides", 2, 2))
		}},
		{name: "ConvTranspose/group-outpad", ins: []tin{f("x", normal, 1, 4, 3, 3), f("w", normal, 4, 1, 3, 3)}, build: func(c *cb) string {
			return c.op("ConvTranspose", c.in, ia("group", 2), isa("strides", 2, 2), isa("output_padding", 1, 0), isa("pads", 1, 0, 0, 1))
		}},
		{name: "InstanceNormalization/unit", ins: []tin{fN("x", normal, 2, 3, 5), f("s", normal, 3, 5)}, build: func(c *cb) string {
			// As group norm is written: unit scale and zero shift, then an
			// affine map, so the output is x̂ itself.
			y := c.op("InstanceNormalization", []string{c.in[0], c.fconst([]int64{3}, 1, 1, 1), c.fconst([]int64{3}, 0, 0, 0)})
			return c.op("Mul", []string{y, c.in[1]})
		}},
		{name: "InstanceNormalization/unit-scale", ins: []tin{fN("x", normal, 2, 2, 3, 2), f("b", normal, 2)}, build: func(c *cb) string {
			return c.op("InstanceNormalization", []string{c.in[0], c.fconst([]int64{2}, 1, 1), c.in[1]})
		}},
		{name: "InstanceNormalization", opsets: []int64{11, 18}, ins: []tin{fN("x", normal, 2, 3, 3, 4), f("s", normal, 3), f("b", normal, 3)}, build: func(c *cb) string {
			return c.op("InstanceNormalization", c.in, fa("epsilon", 1e-3))
		}},
		{name: "GroupNormalization", opsets: []int64{21}, ins: []tin{fN("x", normal, 2, 4, 3, 3), f("s", normal, 4), f("b", normal, 4)}, build: func(c *cb) string {
			return c.op("GroupNormalization", c.in, ia("num_groups", 2), fa("epsilon", 1e-3))
		}},
		{name: "LayerNormalization/last", ins: []tin{fN("x", normal, 2, 3, 4), f("s", normal, 4), f("b", normal, 4)}, build: func(c *cb) string {
			return c.op("LayerNormalization", c.in, fa("epsilon", 1e-3))
		}},
		{name: "LayerNormalization/axis1", ins: []tin{fN("x", normal, 2, 3, 4), f("s", normal, 3, 4)}, build: func(c *cb) string {
			return c.op("LayerNormalization", c.in, ia("axis", 1), fa("epsilon", 1e-3))
		}},
		{name: "BatchNormalization", ins: []tin{fN("x", normal, 2, 3, 2, 2), f("s", normal, 3), f("b", normal, 3), f("m", normal, 3), f("v", positive, 3)}, build: func(c *cb) string {
			return c.op("BatchNormalization", c.in)
		}},
		{name: "AveragePool/exclude-pad", ins: []tin{fN("x", normal, 1, 2, 5, 5)}, build: func(c *cb) string {
			return c.op("AveragePool", c.in, isa("kernel_shape", 3, 3), isa("strides", 2, 2), isa("pads", 1, 1, 1, 1))
		}},
		{name: "AveragePool/ceil-include-pad", ins: []tin{f("x", normal, 1, 2, 6, 5)}, build: func(c *cb) string {
			return c.op("AveragePool", c.in, isa("kernel_shape", 3, 2), isa("strides", 2, 2), isa("pads", 1, 0, 0, 0),
				ia("count_include_pad", 1), ia("ceil_mode", 1))
		}},
		{name: "MaxPool/overlap-pad", ins: []tin{fN("x", normal, 1, 2, 5, 5)}, build: func(c *cb) string {
			return c.op("MaxPool", c.in, isa("kernel_shape", 3, 3), isa("strides", 2, 2), isa("pads", 1, 1, 1, 1))
		}},
		{name: "MaxPool/2x2", ins: []tin{f("x", normal, 2, 2, 4, 4)}, build: func(c *cb) string {
			return c.op("MaxPool", c.in, isa("kernel_shape", 2, 2), isa("strides", 2, 2))
		}},
		{name: "GlobalAveragePool", opsets: []int64{11, 17}, ins: []tin{fN("x", normal, 2, 3, 3, 4)}, build: func(c *cb) string {
			return c.op("GlobalAveragePool", c.in)
		}},
		{name: "Concat", ins: []tin{fN("a", normal, 2, 2), fN("b", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("Concat", c.in, ia("axis", 1))
		}},
		{name: "Split/one-output-used", opsets: axesOpsets, ins: []tin{f("x", normal, 2, 6)}, build: func(c *cb) string {
			var outs []string
			if c.opset >= 13 {
				outs = c.b.Node("Split", []string{c.in[0], c.ints(2, 4)}, 2, ia("axis", 1))
			} else {
				outs = c.b.Node("Split", c.in, 2, ia("axis", 1), isa("split", 2, 4))
			}
			return c.op("Mul", []string{outs[1], outs[1]})
		}},
		{name: "Slice/steps", ins: []tin{f("x", normal, 5, 6)}, build: func(c *cb) string {
			return c.op("Slice", []string{c.in[0], c.ints(1, 5), c.ints(5, 0), c.ints(0, 1), c.ints(2, -2)})
		}},
		{name: "Slice/batch", ins: []tin{fN("x", normal, 2, 6)}, build: func(c *cb) string {
			return c.op("Slice", []string{c.in[0], c.ints(1), c.ints(-1), c.ints(1)})
		}},
		{name: "Reshape", ins: []tin{fN("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.op("Reshape", []string{c.in[0], c.ints(0, -1)})
		}},
		{name: "Flatten", ins: []tin{f("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.op("Flatten", c.in, ia("axis", 2))
		}},
		{name: "Squeeze", opsets: axesOpsets, ins: []tin{fN("x", normal, 2, 1, 3)}, build: func(c *cb) string {
			return c.axesOp("Squeeze", c.in[0], 13, []int64{1})
		}},
		{name: "Unsqueeze", opsets: axesOpsets, ins: []tin{fN("x", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("Mul", []string{c.axesOp("Unsqueeze", c.in[0], 13, []int64{0, 3}), c.fconst([]int64{2}, 1, -2)})
		}},
		{name: "Transpose", ins: []tin{f("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.op("Transpose", c.in, isa("perm", 2, 0, 1))
		}},
		{name: "Expand", ins: []tin{f("x", normal, 3, 1)}, build: func(c *cb) string {
			return c.op("Expand", []string{c.in[0], c.ints(2, 3, 4)})
		}},
		{name: "Tile", ins: []tin{fN("x", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("Tile", []string{c.in[0], c.ints(1, 3)})
		}},
		{name: "Gather/axis0", ins: []tin{f("table", normal, 5, 3), {name: "idx", shape: graph.Fixed(4), dims: []int64{4}, ints: []int64{1, 4, -4, 0}}}, build: func(c *cb) string {
			return c.op("Gather", c.in)
		}},
		{name: "Gather/axis1", ins: []tin{f("table", normal, 2, 5, 3), {name: "idx", shape: graph.Fixed(2, 2), dims: []int64{2, 2}, ints: []int64{3, 3, 0, 2}}}, build: func(c *cb) string {
			return c.op("Gather", c.in, ia("axis", 1))
		}},
		{name: "Gather/vector", opsets: []int64{11, 13}, ins: []tin{f("table", positive, 10), {name: "idx", shape: graph.Shape{{Param: "N"}}, dims: []int64{4}, ints: []int64{9, 2, 2, 5}}}, build: func(c *cb) string {
			return c.op("Gather", c.in)
		}},
		{name: "ReduceSum", opsets: axesOpsets, ins: []tin{fN("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.reduce("ReduceSum", c.in[0], []int64{1}, 0)
		}},
		{name: "ReduceMean", opsets: axesOpsets, ins: []tin{fN("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.reduce("ReduceMean", c.in[0], []int64{0, -1}, 1)
		}},
		{name: "ReduceMax", opsets: axesOpsets, ins: []tin{f("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.reduce("ReduceMax", c.in[0], []int64{1}, 0)
		}},
		{name: "ReduceMin", ins: []tin{f("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.reduce("ReduceMin", c.in[0], []int64{2}, 1)
		}},
		{name: "ReduceLogSumExp", opsets: axesOpsets, ins: []tin{f("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.reduce("ReduceLogSumExp", c.in[0], []int64{1, 2}, 0)
		}},
		{name: "ReduceSumSquare", ins: []tin{f("x", normal, 2, 3)}, build: func(c *cb) string {
			return c.reduce("ReduceSumSquare", c.in[0], []int64{1}, 0)
		}},
		{name: "ReduceL2", ins: []tin{f("x", normal, 2, 3)}, build: func(c *cb) string {
			return c.reduce("ReduceL2", c.in[0], []int64{1}, 0)
		}},
		{name: "ReduceL1", ins: []tin{f("x", awayZero, 2, 3)}, build: func(c *cb) string {
			return c.reduce("ReduceL1", c.in[0], []int64{1}, 1)
		}},
		{name: "Softmax", opsets: []int64{11, 13}, ins: []tin{fN("x", normal, 2, 3, 4)}, build: func(c *cb) string {
			return c.op("Softmax", c.in, ia("axis", 1))
		}},
		{name: "LogSoftmax", ins: []tin{fN("x", normal, 2, 3)}, build: func(c *cb) string {
			return c.op("LogSoftmax", c.in)
		}},
	}
	return cases
}

func (rc ruleCase) model(opset int64) (*graph.Model, []string) {
	b := graph.NewBuilder(rc.name)
	c := &cb{b: b, opset: opset}
	var wrt []string
	for _, in := range rc.ins {
		dt := graph.Float32
		switch {
		case in.ints != nil:
			dt = graph.Int64
		case in.bools != nil:
			dt = graph.Bool
		default:
			wrt = append(wrt, in.name)
		}
		c.in = append(c.in, b.Input(in.name, dt, in.shape))
	}
	b.Output("y", rc.build(c), graph.Float32, rc.yShape)
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: opset}}, Graph: b.Graph()}, wrt
}

func (rc ruleCase) inputs(rng *rand.Rand) map[string]*graph.Tensor {
	out := map[string]*graph.Tensor{}
	for _, in := range rc.ins {
		switch {
		case in.ints != nil:
			out[in.name] = graph.NewInt64(in.dims, append([]int64(nil), in.ints...))
			continue
		case in.bools != nil:
			out[in.name] = graph.NewBool(in.dims, append([]bool(nil), in.bools...))
			continue
		}
		t := graph.NewFloat32(in.dims, nil)
		for i := range t.F32 {
			switch in.kind {
			case positive:
				t.F32[i] = float32(0.5 + 1.5*rng.Float64())
			case awayZero:
				v := 0.3 + 1.2*rng.Float64()
				if rng.Intn(2) == 0 {
					v = -v
				}
				t.F32[i] = float32(v)
			default:
				t.F32[i] = float32(rng.NormFloat64())
			}
		}
		out[in.name] = t
	}
	return out
}

func TestRulesAgainstFiniteDifferences(t *testing.T) {
	for _, rc := range ruleCases() {
		opsets := rc.opsets
		if opsets == nil {
			opsets = []int64{17}
		}
		for _, opset := range opsets {
			t.Run(fmt.Sprintf("%s/opset%d", rc.name, opset), func(t *testing.T) {
				m, wrt := rc.model(opset)
				gm, res, err := autodiff.VJP(m, []string{"y"}, wrt, autodiff.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := gm.Graph.Validate(); err != nil {
					t.Fatalf("gradient graph invalid: %v", err)
				}
				forEachBackend(t, func(t *testing.T, be runtime.Backend) {
					checkRule(t, be, rc, m, gm, res, wrt)
				})
			})
		}
	}
}

func checkRule(t *testing.T, be runtime.Backend, rc ruleCase, m, gm *graph.Model, res *autodiff.Result, wrt []string) {
	rng := rand.New(rand.NewSource(7))
	in := rc.inputs(rng)
	fwd := prepare(t, be, m)
	bwd := prepare(t, be, gm)
	y := fwd.run(t, in)["y"]
	cot := graph.NewFloat32(y.Shape, nil)
	for i := range cot.F32 {
		cot.F32[i] = float32(rng.NormFloat64())
	}
	gin := map[string]*graph.Tensor{res.Cotangents[0]: cot}
	for k, v := range in {
		gin[k] = v
	}
	outs := bwd.run(t, gin)
	if err := compare(outs["y"].F32, y.F32, tol{Abs: 1e-6}); err != nil {
		t.Errorf("forward output of the gradient model: %v", err)
	}
	for i, w := range wrt {
		g := outs[res.Grads[i]]
		if fmt.Sprint(g.Shape) != fmt.Sprint(in[w].Shape) {
			t.Errorf("∂/∂%s has shape %v, want %v", w, g.Shape, in[w].Shape)
			continue
		}
		want := finiteDiff(t, fwd, in, []string{"y"}, [][]float32{cot.F32}, w, fdStep)
		if err := compareFD(g.F32, want, ruleTol); err != nil {
			t.Errorf("∂/∂%s: %v\ngot  %v\nwant %v", w, err, g.F32, want)
		}
	}
	if !t.Failed() {
		checkSecondOrder(t, be, gm, res, gin, wrt, rng)
	}
}

// checkSecondOrder differentiates the gradient graph again — every op a
// rule emits must itself have a rule — and compares with finite
// differences of the gradients.
func checkSecondOrder(t *testing.T, be runtime.Backend, gm *graph.Model, res *autodiff.Result, in map[string]*graph.Tensor, wrt []string, rng *rand.Rand) {
	t.Helper()
	g2m, res2, err := autodiff.VJP(gm, res.Grads, wrt, autodiff.Options{GradsOnly: true})
	if err != nil {
		t.Fatalf("second order: %v", err)
	}
	bwd := prepare(t, be, gm)
	first := bwd.run(t, in)
	in2 := map[string]*graph.Tensor{}
	for k, v := range in {
		in2[k] = v
	}
	cots := make([][]float32, len(res.Grads))
	for k, g := range res.Grads {
		c := graph.NewFloat32(first[g].Shape, nil)
		for i := range c.F32 {
			c.F32[i] = float32(rng.NormFloat64())
		}
		cots[k] = c.F32
		in2[res2.Cotangents[k]] = c
	}
	outs := prepare(t, be, g2m).run(t, in2)
	for i, w := range wrt {
		g := outs[res2.Grads[i]]
		want := finiteDiff(t, bwd, in, res.Grads, cots, w, fdStep)
		if err := compareFD(g.F32, want, ruleTol); err != nil {
			t.Errorf("second order ∂/∂%s: %v\ngot  %v\nwant %v", w, err, g.F32, want)
		}
	}
}
