package native

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// opTol is the absolute-plus-relative tolerance of float32 op results
// against hand-computed or float64 references.
const opTol = 1e-5

func f32(shape []int64, v ...float32) *graph.Tensor { return graph.NewFloat32(shape, v) }
func i64(shape []int64, v ...int64) *graph.Tensor   { return graph.NewInt64(shape, v) }
func bools(shape []int64, v ...bool) *graph.Tensor  { return graph.NewBool(shape, v) }
func sh(d ...int64) []int64                         { return d }

type opCase struct {
	name  string
	op    string
	opset int64
	attrs []*graph.Attribute
	in    []*graph.Tensor // nil entries are omitted optional inputs
	want  []*graph.Tensor
}

// runOp builds a one-node model and runs it, with the inputs as runtime
// inputs (constant=false) or as initializers, which Prepare folds.
func runOp(t *testing.T, c opCase, constant bool) ([]*graph.Tensor, error) {
	t.Helper()
	b := graph.NewBuilder(c.name)
	var names []string
	var feeds []*graph.Tensor
	for i, in := range c.in {
		switch {
		case in == nil:
			names = append(names, "")
		case constant:
			names = append(names, b.Const("c", in))
		default:
			names = append(names, b.Input("in"+itoa(i), in.DType, graph.Fixed(in.Shape...)))
			feeds = append(feeds, in)
		}
	}
	outs := b.Node(c.op, names, len(c.want), c.attrs...)
	for i, o := range outs {
		b.Output("out"+itoa(i), o, graph.Undefined, nil)
	}
	opset := c.opset
	if opset == 0 {
		opset = 21
	}
	p, err := Backend{}.Prepare(&graph.Model{Opsets: []graph.OpsetImport{{Version: opset}}, Graph: b.Graph()}, runtime.Options{Threads: 2})
	if err != nil {
		return nil, err
	}
	s, err := p.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	got := make([]*graph.Tensor, len(c.want))
	for i := range got {
		got[i] = new(graph.Tensor)
	}
	return got, s.Run(feeds, got)
}

func checkTensor(t *testing.T, what string, got, want *graph.Tensor) {
	t.Helper()
	if got.DType != want.DType || !sameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: got %s %v, want %s %v", what, got.DType, got.Shape, want.DType, want.Shape)
	}
	for i := range want.F32 {
		g, w := float64(got.F32[i]), float64(want.F32[i])
		if math.Abs(g-w) > opTol*(1+math.Abs(w)) && !(math.IsNaN(g) && math.IsNaN(w)) {
			t.Fatalf("%s: [%d] = %g, want %g (all: %v)", what, i, g, w, got.F32)
		}
	}
	for i := range want.I64 {
		if got.I64[i] != want.I64[i] {
			t.Fatalf("%s: got %v, want %v", what, got.I64, want.I64)
		}
	}
	for i := range want.B {
		if got.B[i] != want.B[i] {
			t.Fatalf("%s: got %v, want %v", what, got.B, want.B)
		}
	}
}

func runCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, constant := range []bool{false, true} {
				got, err := runOp(t, c, constant)
				if err != nil {
					t.Fatalf("constant=%v: %v", constant, err)
				}
				for i, w := range c.want {
					checkTensor(t, c.op, got[i], w)
				}
			}
		})
	}
}

func TestBroadcastingOps(t *testing.T) {
	t.Parallel()
	runCases(t, []opCase{
		{name: "add_row", op: "Add", in: []*graph.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6), f32(sh(3), 10, 20, 30)},
			want: []*graph.Tensor{f32(sh(2, 3), 11, 22, 33, 14, 25, 36)}},
		{name: "add_outer", op: "Add", in: []*graph.Tensor{f32(sh(2, 1), 1, 2), f32(sh(1, 3), 10, 20, 30)},
			want: []*graph.Tensor{f32(sh(2, 3), 11, 21, 31, 12, 22, 32)}},
		{name: "sub_scalar_left", op: "Sub", in: []*graph.Tensor{f32(nil, 1), f32(sh(3), 1, 2, 3)},
			want: []*graph.Tensor{f32(sh(3), 0, -1, -2)}},
		{name: "mul_middle", op: "Mul", in: []*graph.Tensor{f32(sh(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8), f32(sh(2, 1), 10, 100)},
			want: []*graph.Tensor{f32(sh(2, 2, 2), 10, 20, 300, 400, 50, 60, 700, 800)}},
		{name: "div_per_row", op: "Div", in: []*graph.Tensor{f32(sh(2, 2), 1, 2, 3, 4), f32(sh(2, 1), 2, 4)},
			want: []*graph.Tensor{f32(sh(2, 2), 0.5, 1, 0.75, 1)}},
		{name: "div_int_truncates", op: "Div", in: []*graph.Tensor{i64(sh(3), 7, -7, 6), i64(nil, 2)},
			want: []*graph.Tensor{i64(sh(3), 3, -3, 3)}},
		{name: "add_int", op: "Add", in: []*graph.Tensor{i64(sh(2), 1, 2), i64(sh(2, 1), 10, 20)},
			want: []*graph.Tensor{i64(sh(2, 2), 11, 12, 21, 22)}},
		{name: "pow_int_exp", op: "Pow", in: []*graph.Tensor{f32(sh(3), 2, 3, 4), i64(nil, 2)},
			want: []*graph.Tensor{f32(sh(3), 4, 9, 16)}},
		{name: "max3", op: "Max", in: []*graph.Tensor{f32(sh(2, 2), 1, 5, 3, 0), f32(sh(2), 2, 2), f32(nil, 4)},
			want: []*graph.Tensor{f32(sh(2, 2), 4, 5, 4, 4)}},
		{name: "min_nan", op: "Min", in: []*graph.Tensor{f32(sh(2), float32(math.NaN()), 1), f32(sh(2), 0, 0)},
			want: []*graph.Tensor{f32(sh(2), float32(math.NaN()), 0)}},
		{name: "sum3", op: "Sum", in: []*graph.Tensor{f32(sh(2), 1, 2), f32(sh(2, 1), 10, 20), f32(nil, 100)},
			want: []*graph.Tensor{f32(sh(2, 2), 111, 112, 121, 122)}},
		{name: "mean2", op: "Mean", in: []*graph.Tensor{f32(sh(2), 1, 2), f32(sh(2), 3, 6)},
			want: []*graph.Tensor{f32(sh(2), 2, 4)}},
		{name: "equal", op: "Equal", in: []*graph.Tensor{i64(sh(3), 1, 2, 3), i64(nil, 2)},
			want: []*graph.Tensor{bools(sh(3), false, true, false)}},
		{name: "less", op: "Less", in: []*graph.Tensor{f32(sh(2, 1), 1, 3), f32(sh(2), 2, 2)},
			want: []*graph.Tensor{bools(sh(2, 2), true, true, false, false)}},
		{name: "greater", op: "Greater", in: []*graph.Tensor{f32(sh(2), 1, 3), f32(nil, 2)},
			want: []*graph.Tensor{bools(sh(2), false, true)}},
		{name: "where", op: "Where", in: []*graph.Tensor{bools(sh(2, 1), true, false), f32(sh(2), 1, 2), f32(nil, -1)},
			want: []*graph.Tensor{f32(sh(2, 2), 1, 2, -1, -1)}},
		{name: "not", op: "Not", in: []*graph.Tensor{bools(sh(2), true, false)}, want: []*graph.Tensor{bools(sh(2), false, true)}},
		{name: "clip_inputs", op: "Clip", in: []*graph.Tensor{f32(sh(3), -2, 0.5, 3), f32(nil, 0), f32(nil, 1)},
			want: []*graph.Tensor{f32(sh(3), 0, 0.5, 1)}},
		{name: "clip_max_only", op: "Clip", in: []*graph.Tensor{f32(sh(3), -2, 0.5, 3), nil, f32(nil, 1)},
			want: []*graph.Tensor{f32(sh(3), -2, 0.5, 1)}},
		{name: "clip_attrs_opset6", op: "Clip", opset: 6, attrs: []*graph.Attribute{graph.FloatAttr("min", -1), graph.FloatAttr("max", 1)},
			in: []*graph.Tensor{f32(sh(3), -2, 0.5, 3)}, want: []*graph.Tensor{f32(sh(3), -1, 0.5, 1)}},
		{name: "cast_f2i", op: "Cast", attrs: []*graph.Attribute{graph.IntAttr("to", int64(graph.Int64))},
			in: []*graph.Tensor{f32(sh(3), -1.7, 0, 2.9)}, want: []*graph.Tensor{i64(sh(3), -1, 0, 2)}},
		{name: "cast_i2b", op: "Cast", attrs: []*graph.Attribute{graph.IntAttr("to", int64(graph.Bool))},
			in: []*graph.Tensor{i64(sh(3), -1, 0, 2)}, want: []*graph.Tensor{bools(sh(3), true, false, true)}},
	})
}

// TestUnaryOps compares each elementwise op with its float64 definition.
func TestUnaryOps(t *testing.T) {
	t.Parallel()
	xs := []float32{-3, -1.5, -0.25, 0, 0.3, 1, 2.5, 7}
	erf := math.Erf
	defs := []struct {
		op    string
		attrs []*graph.Attribute
		f     func(float64) float64
	}{
		{"Neg", nil, func(x float64) float64 { return -x }},
		{"Abs", nil, math.Abs},
		{"Exp", nil, math.Exp},
		{"Sigmoid", nil, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
		{"Tanh", nil, math.Tanh},
		{"Relu", nil, func(x float64) float64 { return math.Max(x, 0) }},
		{"LeakyRelu", []*graph.Attribute{graph.FloatAttr("alpha", 0.1)}, func(x float64) float64 { return math.Max(x, 0.1*x) }},
		{"Elu", nil, func(x float64) float64 { return map[bool]float64{true: x, false: math.Exp(x) - 1}[x > 0] }},
		{"Selu", nil, func(x float64) float64 {
			if x > 0 {
				return 1.0507009873554805 * x
			}
			return 1.0507009873554805 * 1.6732632423543772 * (math.Exp(x) - 1)
		}},
		{"Softplus", nil, func(x float64) float64 { return math.Log(1 + math.Exp(x)) }},
		{"Softsign", nil, func(x float64) float64 { return x / (1 + math.Abs(x)) }},
		{"HardSigmoid", nil, func(x float64) float64 { return math.Max(0, math.Min(1, 0.2*x+0.5)) }},
		{"Erf", nil, erf},
		{"Sin", nil, math.Sin},
		{"Cos", nil, math.Cos},
		{"Identity", nil, func(x float64) float64 { return x }},
	}
	var cases []opCase
	for _, d := range defs {
		want := make([]float32, len(xs))
		for i, x := range xs {
			want[i] = float32(d.f(float64(x)))
		}
		cases = append(cases, opCase{name: d.op, op: d.op, attrs: d.attrs, in: []*graph.Tensor{f32(sh(2, 4), xs...)}, want: []*graph.Tensor{f32(sh(2, 4), want...)}})
	}
	pos := []float32{0.25, 1, 4, 9}
	for _, d := range []struct {
		op string
		f  func(float64) float64
	}{{"Log", math.Log}, {"Sqrt", math.Sqrt}, {"Reciprocal", func(x float64) float64 { return 1 / x }}} {
		want := make([]float32, len(pos))
		for i, x := range pos {
			want[i] = float32(d.f(float64(x)))
		}
		cases = append(cases, opCase{name: d.op, op: d.op, in: []*graph.Tensor{f32(sh(4), pos...)}, want: []*graph.Tensor{f32(sh(4), want...)}})
	}
	runCases(t, cases)
}

func TestShapeOps(t *testing.T) {
	t.Parallel()
	x := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	runCases(t, []opCase{
		{name: "reshape_0_-1", op: "Reshape", in: []*graph.Tensor{x, i64(sh(2), 0, -1)}, want: []*graph.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "reshape_flat", op: "Reshape", in: []*graph.Tensor{x, i64(sh(1), -1)}, want: []*graph.Tensor{f32(sh(6), 1, 2, 3, 4, 5, 6)}},
		{name: "flatten_0", op: "Flatten", attrs: []*graph.Attribute{graph.IntAttr("axis", 0)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(1, 6), 1, 2, 3, 4, 5, 6)}},
		{name: "transpose", op: "Transpose", in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(3, 2), 1, 4, 2, 5, 3, 6)}},
		{name: "concat_neg_axis", op: "Concat", attrs: []*graph.Attribute{graph.IntAttr("axis", -1)}, in: []*graph.Tensor{x, f32(sh(2, 1), 7, 8)},
			want: []*graph.Tensor{f32(sh(2, 4), 1, 2, 3, 7, 4, 5, 6, 8)}},
		{name: "slice_neg_step", op: "Slice", in: []*graph.Tensor{x, i64(sh(1), -1), i64(sh(1), math.MinInt64), i64(sh(1), 1), i64(sh(1), -2)},
			want: []*graph.Tensor{f32(sh(2, 2), 3, 1, 6, 4)}},
		{name: "slice_clamped", op: "Slice", in: []*graph.Tensor{x, i64(sh(2), 1, 1), i64(sh(2), 100, 100)},
			want: []*graph.Tensor{f32(sh(1, 2), 5, 6)}},
		{name: "gather_neg", op: "Gather", attrs: []*graph.Attribute{graph.IntAttr("axis", 1)}, in: []*graph.Tensor{x, i64(sh(2), -1, 0)},
			want: []*graph.Tensor{f32(sh(2, 2), 3, 1, 6, 4)}},
		{name: "expand", op: "Expand", in: []*graph.Tensor{f32(sh(2, 1), 1, 2), i64(sh(3), 2, 1, 2)},
			want: []*graph.Tensor{f32(sh(2, 2, 2), 1, 1, 2, 2, 1, 1, 2, 2)}},
		{name: "tile", op: "Tile", in: []*graph.Tensor{f32(sh(1, 2), 1, 2), i64(sh(2), 2, 2)},
			want: []*graph.Tensor{f32(sh(2, 4), 1, 2, 1, 2, 1, 2, 1, 2)}},
		{name: "shape_slice", op: "Shape", attrs: []*graph.Attribute{graph.IntAttr("start", -1)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{i64(sh(1), 3)}},
		{name: "size", op: "Size", in: []*graph.Tensor{x}, want: []*graph.Tensor{i64(nil, 6)}},
		{name: "constant_of_shape", op: "ConstantOfShape", attrs: []*graph.Attribute{graph.TensorAttr("value", i64(sh(1), 7))},
			in: []*graph.Tensor{i64(sh(2), 1, 2)}, want: []*graph.Tensor{i64(sh(1, 2), 7, 7)}},
		{name: "range_f32", op: "Range", in: []*graph.Tensor{f32(nil, 1), f32(nil, 2), f32(nil, 0.25)}, want: []*graph.Tensor{f32(sh(4), 1, 1.25, 1.5, 1.75)}},
		{name: "range_i64_down", op: "Range", in: []*graph.Tensor{i64(nil, 5), i64(nil, 0), i64(nil, -2)}, want: []*graph.Tensor{i64(sh(3), 5, 3, 1)}},
		{name: "dropout_mask", op: "Dropout", in: []*graph.Tensor{f32(sh(2), 1, 2)}, want: []*graph.Tensor{f32(sh(2), 1, 2), bools(sh(2), true, true)}},
	})
}

// TestOpsetForms checks arguments that moved from attributes to inputs.
func TestOpsetForms(t *testing.T) {
	t.Parallel()
	x := f32(sh(2, 1, 3), 1, 2, 3, 4, 5, 6)
	axes := func(v ...int64) *graph.Attribute { return graph.IntsAttr("axes", v...) }
	runCases(t, []opCase{
		{name: "squeeze_attr_11", op: "Squeeze", opset: 11, attrs: []*graph.Attribute{axes(1)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "squeeze_input_13", op: "Squeeze", opset: 13, in: []*graph.Tensor{x, i64(sh(1), -2)}, want: []*graph.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "squeeze_all_13", op: "Squeeze", opset: 13, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "unsqueeze_attr_11", op: "Unsqueeze", opset: 11, attrs: []*graph.Attribute{axes(0, -1)}, in: []*graph.Tensor{f32(sh(2), 1, 2)}, want: []*graph.Tensor{f32(sh(1, 2, 1), 1, 2)}},
		{name: "unsqueeze_input_13", op: "Unsqueeze", opset: 13, in: []*graph.Tensor{f32(sh(2), 1, 2), i64(sh(2), 0, -1)}, want: []*graph.Tensor{f32(sh(1, 2, 1), 1, 2)}},
		{name: "reducesum_attr_11", op: "ReduceSum", opset: 11, attrs: []*graph.Attribute{axes(2), graph.IntAttr("keepdims", 0)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(2, 1), 6, 15)}},
		{name: "reducesum_input_13", op: "ReduceSum", opset: 13, attrs: []*graph.Attribute{graph.IntAttr("keepdims", 0)}, in: []*graph.Tensor{x, i64(sh(1), 2)}, want: []*graph.Tensor{f32(sh(2, 1), 6, 15)}},
		{name: "reducesum_noop_13", op: "ReduceSum", opset: 13, attrs: []*graph.Attribute{graph.IntAttr("noop_with_empty_axes", 1)}, in: []*graph.Tensor{f32(sh(2), 1, 2)}, want: []*graph.Tensor{f32(sh(2), 1, 2)}},
		{name: "reducemean_attr_17", op: "ReduceMean", opset: 17, attrs: []*graph.Attribute{axes(0)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(1, 1, 3), 2.5, 3.5, 4.5)}},
		{name: "reducemean_input_18", op: "ReduceMean", opset: 18, in: []*graph.Tensor{x, i64(sh(1), 0)}, want: []*graph.Tensor{f32(sh(1, 1, 3), 2.5, 3.5, 4.5)}},
		{name: "reducemax_all", op: "ReduceMax", opset: 18, attrs: []*graph.Attribute{graph.IntAttr("keepdims", 0)}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(nil, 6)}},
		{name: "reducemin_18", op: "ReduceMin", opset: 18, in: []*graph.Tensor{x, i64(sh(2), 0, 2)}, want: []*graph.Tensor{f32(sh(1, 1, 1), 1)}},
		{name: "reducelogsumexp", op: "ReduceLogSumExp", opset: 18, in: []*graph.Tensor{f32(sh(2), 0, float32(math.Log(3))), i64(sh(1), 0)}, want: []*graph.Tensor{f32(sh(1), float32(math.Log(4)))}},
		{name: "split_attr_11", op: "Split", opset: 11, attrs: []*graph.Attribute{graph.IntAttr("axis", 2), graph.IntsAttr("split", 1, 2)}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(2, 1, 1), 1, 4), f32(sh(2, 1, 2), 2, 3, 5, 6)}},
		{name: "split_input_13", op: "Split", opset: 13, attrs: []*graph.Attribute{graph.IntAttr("axis", 2)}, in: []*graph.Tensor{x, i64(sh(2), 2, 1)},
			want: []*graph.Tensor{f32(sh(2, 1, 2), 1, 2, 4, 5), f32(sh(2, 1, 1), 3, 6)}},
		{name: "split_num_outputs_18", op: "Split", opset: 18, attrs: []*graph.Attribute{graph.IntAttr("axis", 2), graph.IntAttr("num_outputs", 2)}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(2, 1, 2), 1, 2, 4, 5), f32(sh(2, 1, 1), 3, 6)}},
		// Softmax before 13 flattens at axis; from 13 it runs along the axis.
		{name: "softmax_11_flattens", op: "Softmax", opset: 11, attrs: []*graph.Attribute{graph.IntAttr("axis", 0)}, in: []*graph.Tensor{f32(sh(2, 1), 0, 0)},
			want: []*graph.Tensor{f32(sh(2, 1), 0.5, 0.5)}},
		{name: "softmax_13_axis", op: "Softmax", opset: 13, attrs: []*graph.Attribute{graph.IntAttr("axis", 1)}, in: []*graph.Tensor{f32(sh(2, 1), 0, 0)},
			want: []*graph.Tensor{f32(sh(2, 1), 1, 1)}},
		{name: "logsoftmax", op: "LogSoftmax", in: []*graph.Tensor{f32(sh(2), 0, 0)}, want: []*graph.Tensor{f32(sh(2), -math.Ln2, -math.Ln2)}},
		// GroupNormalization: scale/bias per group before 21, per channel from 21.
		{name: "groupnorm_18", op: "GroupNormalization", opset: 18, attrs: []*graph.Attribute{graph.IntAttr("num_groups", 1), graph.FloatAttr("epsilon", 0)},
			in: []*graph.Tensor{f32(sh(1, 2, 1), 1, 3), f32(sh(1), 2), f32(sh(1), 1)}, want: []*graph.Tensor{f32(sh(1, 2, 1), -1, 3)}},
		{name: "groupnorm_21", op: "GroupNormalization", opset: 21, attrs: []*graph.Attribute{graph.IntAttr("num_groups", 1), graph.FloatAttr("epsilon", 0)},
			in: []*graph.Tensor{f32(sh(1, 2, 1), 1, 3), f32(sh(2), 2, 1), f32(sh(2), 1, 0)}, want: []*graph.Tensor{f32(sh(1, 2, 1), -1, 1)}},
		{name: "upsample_9", op: "Upsample", opset: 9, in: []*graph.Tensor{f32(sh(1, 1, 1, 2), 1, 2), f32(sh(4), 1, 1, 2, 2)},
			want: []*graph.Tensor{f32(sh(1, 1, 2, 4), 1, 1, 2, 2, 1, 1, 2, 2)}},
		{name: "resize_linear_sizes", op: "Resize", opset: 13, attrs: []*graph.Attribute{graph.StringAttr("mode", "linear"), graph.StringAttr("coordinate_transformation_mode", "align_corners")},
			in: []*graph.Tensor{f32(sh(1, 1, 1, 2), 0, 3), nil, nil, i64(sh(4), 1, 1, 1, 4)}, want: []*graph.Tensor{f32(sh(1, 1, 1, 4), 0, 1, 2, 3)}},
	})
}

func TestNormalizationOps(t *testing.T) {
	t.Parallel()
	x := f32(sh(1, 2, 2), 1, 3, 10, 10)
	runCases(t, []opCase{
		{name: "instancenorm", op: "InstanceNormalization", attrs: []*graph.Attribute{graph.FloatAttr("epsilon", 0)},
			in: []*graph.Tensor{f32(sh(1, 2, 2), 1, 3, 5, 9), f32(sh(2), 1, 2), f32(sh(2), 0, 1)}, want: []*graph.Tensor{f32(sh(1, 2, 2), -1, 1, -1, 3)}},
		{name: "layernorm", op: "LayerNormalization", attrs: []*graph.Attribute{graph.FloatAttr("epsilon", 0)},
			in: []*graph.Tensor{f32(sh(2, 2), 1, 3, 2, 2), f32(sh(2), 1, 2), f32(sh(2), 0, 1)}, want: []*graph.Tensor{f32(sh(2, 2), -1, 3, 0, 1)}},
		{name: "batchnorm", op: "BatchNormalization", attrs: []*graph.Attribute{graph.FloatAttr("epsilon", 0)},
			in: []*graph.Tensor{x, f32(sh(2), 1, 2), f32(sh(2), 0, 1), f32(sh(2), 2, 10), f32(sh(2), 4, 1)}, want: []*graph.Tensor{f32(sh(1, 2, 2), -0.5, 0.5, 1, 1)}},
		{name: "globalavgpool", op: "GlobalAveragePool", in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(1, 2, 1), 2, 10)}},
	})
}

func TestGemmAgainstReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 5))
	p := newPool(2)
	defer p.close()
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {64, 1, 33}, {1, 300, 20}, {130, 200, 70}, {257, 129, 3}, {5, 7, 0}} {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				m, n, k := sz[0], sz[1], sz[2]
				a, b := randVec(r, m*k), randVec(r, k*n)
				c1, c2 := randVec(r, m*n), make([]float32, m*n)
				copy(c2, c1)
				lda, ldb := k, n
				if tA {
					lda = m
				}
				if tB {
					ldb = k
				}
				g := gemm{tA: tA, tB: tB, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb, beta: 0.5, c: c1, ldc: n}
				g.run(p)
				gemmRef(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, c2, n)
				for i := range c1 {
					if math.Abs(float64(c1[i]-c2[i])) > 1e-4*(1+math.Abs(float64(c2[i]))) {
						t.Fatalf("%v tA=%v tB=%v: c[%d] = %g, want %g", sz, tA, tB, i, c1[i], c2[i])
					}
				}
			}
		}
	}
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// convRef is direct 2-D convolution in float64.
func convRef(x []float32, n, c, h, w int, wt []float32, m, kh, kw int, bias []float32, s, p, d, group int) ([]float32, int, int) {
	oh := (h+2*p-d*(kh-1)-1)/s + 1
	ow := (w+2*p-d*(kw-1)-1)/s + 1
	cg, mg := c/group, m/group
	y := make([]float32, n*m*oh*ow)
	for b := 0; b < n; b++ {
		for o := 0; o < m; o++ {
			g := o / mg
			for yy := 0; yy < oh; yy++ {
				for xx := 0; xx < ow; xx++ {
					sum := float64(bias[o])
					for ci := 0; ci < cg; ci++ {
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								iy, ix := yy*s-p+i*d, xx*s-p+j*d
								if iy < 0 || iy >= h || ix < 0 || ix >= w {
									continue
								}
								sum += float64(x[((b*c+g*cg+ci)*h+iy)*w+ix]) * float64(wt[((o*cg+ci)*kh+i)*kw+j])
							}
						}
					}
					y[((b*m+o)*oh+yy)*ow+xx] = float32(sum)
				}
			}
		}
	}
	return y, oh, ow
}

// convTransposeRef scatters each input pixel through the kernel, in float64.
func convTransposeRef(x []float32, n, c, h, w int, wt []float32, mg, kh, kw int, s, p, group int) ([]float32, int, int) {
	oh, ow := s*(h-1)+kh-2*p, s*(w-1)+kw-2*p
	m := mg * group
	acc := make([]float64, n*m*oh*ow)
	cg := c / group
	for b := 0; b < n; b++ {
		for ci := 0; ci < c; ci++ {
			g := ci / cg
			for iy := 0; iy < h; iy++ {
				for ix := 0; ix < w; ix++ {
					v := float64(x[((b*c+ci)*h+iy)*w+ix])
					for o := 0; o < mg; o++ {
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								yy, xx := iy*s-p+i, ix*s-p+j
								if yy < 0 || yy >= oh || xx < 0 || xx >= ow {
									continue
								}
								acc[((b*m+g*mg+o)*oh+yy)*ow+xx] += v * float64(wt[((ci*mg+o)*kh+i)*kw+j])
							}
						}
					}
				}
			}
		}
	}
	y := make([]float32, len(acc))
	for i, v := range acc {
		y[i] = float32(v)
	}
	return y, oh, ow
}

func TestConvAgainstReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	for _, c := range []struct{ n, c, h, w, m, k, s, p, d, g int }{
		{1, 1, 5, 5, 1, 3, 1, 1, 1, 1},
		{2, 4, 7, 6, 6, 3, 2, 1, 1, 2},
		{1, 3, 8, 8, 4, 1, 1, 0, 1, 1},
		{1, 2, 9, 9, 2, 3, 1, 2, 2, 1},
		{2, 4, 4, 4, 4, 3, 1, 1, 1, 4},
	} {
		x := randVec(r, c.n*c.c*c.h*c.w)
		wt := randVec(r, c.m*(c.c/c.g)*c.k*c.k)
		bias := randVec(r, c.m)
		want, oh, ow := convRef(x, c.n, c.c, c.h, c.w, wt, c.m, c.k, c.k, bias, c.s, c.p, c.d, c.g)
		k := int64(c.k)
		runCases(t, []opCase{{name: "conv", op: "Conv",
			attrs: []*graph.Attribute{graph.IntsAttr("strides", int64(c.s), int64(c.s)), graph.IntsAttr("pads", int64(c.p), int64(c.p), int64(c.p), int64(c.p)),
				graph.IntsAttr("dilations", int64(c.d), int64(c.d)), graph.IntAttr("group", int64(c.g)), graph.IntsAttr("kernel_shape", k, k)},
			in:   []*graph.Tensor{f32(sh(int64(c.n), int64(c.c), int64(c.h), int64(c.w)), x...), f32(sh(int64(c.m), int64(c.c/c.g), k, k), wt...), f32(sh(int64(c.m)), bias...)},
			want: []*graph.Tensor{f32(sh(int64(c.n), int64(c.m), int64(oh), int64(ow)), want...)}}})

		mg := c.m / c.g
		wt2 := randVec(r, c.c*mg*c.k*c.k)
		pt := min(c.p, c.k-1)
		want2, oh2, ow2 := convTransposeRef(x, c.n, c.c, c.h, c.w, wt2, mg, c.k, c.k, c.s, pt, c.g)
		runCases(t, []opCase{{name: "convtranspose", op: "ConvTranspose",
			attrs: []*graph.Attribute{graph.IntsAttr("strides", int64(c.s), int64(c.s)), graph.IntsAttr("pads", int64(pt), int64(pt), int64(pt), int64(pt)), graph.IntAttr("group", int64(c.g))},
			in:    []*graph.Tensor{f32(sh(int64(c.n), int64(c.c), int64(c.h), int64(c.w)), x...), f32(sh(int64(c.c), int64(mg), k, k), wt2...)},
			want:  []*graph.Tensor{f32(sh(int64(c.n), int64(c.m), int64(oh2), int64(ow2)), want2...)}}})
	}
}

func TestPools(t *testing.T) {
	t.Parallel()
	x := f32(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	k2 := graph.IntsAttr("kernel_shape", 2, 2)
	runCases(t, []opCase{
		{name: "maxpool", op: "MaxPool", attrs: []*graph.Attribute{k2}, in: []*graph.Tensor{x}, want: []*graph.Tensor{f32(sh(1, 1, 2, 2), 5, 6, 8, 9)}},
		{name: "maxpool_indices", op: "MaxPool", attrs: []*graph.Attribute{k2, graph.IntsAttr("strides", 2, 2), graph.IntAttr("ceil_mode", 1)}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(1, 1, 2, 2), 5, 6, 8, 9), i64(sh(1, 1, 2, 2), 4, 5, 7, 8)}},
		{name: "avgpool_pad_excl", op: "AveragePool", attrs: []*graph.Attribute{k2, graph.IntsAttr("pads", 1, 1, 0, 0)}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(1, 1, 3, 3), 1, 1.5, 2.5, 2.5, 3, 4, 5.5, 6, 7)}},
		{name: "avgpool_pad_incl", op: "AveragePool", attrs: []*graph.Attribute{k2, graph.IntsAttr("pads", 1, 1, 0, 0), graph.IntAttr("count_include_pad", 1)}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(1, 1, 3, 3), 0.25, 0.75, 1.25, 1.25, 3, 4, 2.75, 6, 7)}},
		{name: "avgpool_same_upper", op: "AveragePool", attrs: []*graph.Attribute{k2, graph.StringAttr("auto_pad", "SAME_UPPER")}, in: []*graph.Tensor{x},
			want: []*graph.Tensor{f32(sh(1, 1, 3, 3), 3, 4, 4.5, 6, 7, 7.5, 7.5, 8.5, 9)}},
	})
}

func TestPrepareReportsAllUnsupported(t *testing.T) {
	t.Parallel()
	b := graph.NewBuilder("bad")
	x := b.Input("x", graph.Float32, graph.Fixed(2))
	y := b.Op("FancyOp", x)[0]
	y = b.Op("OtherOp", y)[0]
	y = b.Op("FancyOp", y)[0]
	b.Output("y", y, graph.Float32, nil)
	_, err := Backend{}.Prepare(&graph.Model{Graph: b.Graph()}, runtime.Options{})
	if !errors.Is(err, graph.ErrUnsupportedOp) {
		t.Fatalf("got %v, want ErrUnsupportedOp", err)
	}
	for _, s := range []string{"FancyOp (nodes FancyOp, FancyOp_", "OtherOp (nodes OtherOp)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}

	b = graph.NewBuilder("domain")
	x = b.Input("x", graph.Float32, graph.Fixed(2))
	y = b.Op("Relu", x)[0]
	b.Graph().Nodes[0].Domain = "com.microsoft"
	b.Output("y", y, graph.Float32, nil)
	if _, err := (Backend{}).Prepare(&graph.Model{Graph: b.Graph()}, runtime.Options{}); !errors.Is(err, graph.ErrUnsupportedOp) || !strings.Contains(err.Error(), "com.microsoft.Relu") {
		t.Errorf("custom domain: got %v", err)
	}

	b = graph.NewBuilder("dtype")
	x = b.Input("x", graph.Float64, graph.Fixed(2))
	b.Output("y", b.Op("Relu", x)[0], graph.Float64, nil)
	if _, err := (Backend{}).Prepare(&graph.Model{Graph: b.Graph()}, runtime.Options{}); !errors.Is(err, graph.ErrUnsupportedOp) || !strings.Contains(err.Error(), "float64") {
		t.Errorf("float64 input: got %v", err)
	}
}

func TestRunChecksInputs(t *testing.T) {
	t.Parallel()
	s := newSession(t, buildMLP(newMLPWeights(1, 8)), runtime.Options{})
	out := []*graph.Tensor{new(graph.Tensor)}
	x, sig := mlpInputs(1, 4)
	for _, c := range []struct {
		name string
		in   []*graph.Tensor
		out  []*graph.Tensor
		want string
	}{
		{"count", []*graph.Tensor{x}, out, "got 1 input tensors, the model has 2 inputs"},
		{"nil", []*graph.Tensor{x, nil}, out, `input "sigma": tensor is nil`},
		{"dtype", []*graph.Tensor{i64(sh(4, 2), 1, 2, 3, 4, 5, 6, 7, 8), sig}, out, `input "x": expected float32, got int64`},
		{"rank", []*graph.Tensor{f32(sh(8), x.F32...), sig}, out, `input "x": expected shape [N,2], got [8]`},
		{"dim", []*graph.Tensor{f32(sh(2, 4), x.F32...), sig}, out, `dimension 1 is 4, not 2`},
		{"batch", []*graph.Tensor{x, f32(sh(2, 1), 1, 1)}, out, `dimension "N" is 2, but input "x" has it 4`},
		{"data", []*graph.Tensor{{DType: graph.Float32, Shape: sh(4, 2), F32: x.F32[:3]}, sig}, out, `needs 8 elements, data has 3`},
		{"outputs", []*graph.Tensor{x, sig}, nil, "got 0 output tensors"},
		{"alias", []*graph.Tensor{x, sig}, []*graph.Tensor{x}, "also an input"},
	} {
		err := s.Run(c.in, c.out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A runtime failure inside a kernel is an error, not a panic.
	b := graph.NewBuilder("gather")
	d := b.Input("d", graph.Float32, graph.Fixed(3))
	i := b.Input("i", graph.Int64, graph.Fixed(1))
	b.Output("y", b.Op("Gather", d, i)[0], graph.Float32, nil)
	s2 := newSession(t, &graph.Model{Graph: b.Graph()}, runtime.Options{})
	if err := s2.Run([]*graph.Tensor{f32(sh(3), 1, 2, 3), i64(sh(1), 5)}, out); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("gather out of range: got %v", err)
	}
}

// TestConvRunAllocatesNothing covers the conv path's scratch reuse.
func TestConvRunAllocatesNothing(t *testing.T) {
	b := graph.NewBuilder("conv")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}, {Value: 8}, {Value: 8}})
	w := b.Const("w", graph.NewFloat32(sh(4, 2, 3, 3), randVec(rand.New(rand.NewPCG(1, 1)), 72)))
	h := b.Op1("Conv", []string{x, w}, graph.IntsAttr("pads", 1, 1, 1, 1))
	h = b.Op1("InstanceNormalization", []string{h, b.Const("s", f32(sh(4), 1, 1, 1, 1)), b.Const("b", f32(sh(4), 0, 0, 0, 0))})
	h = b.Op1("ConvTranspose", []string{h, b.Const("wt", graph.NewFloat32(sh(4, 2, 2, 2), randVec(rand.New(rand.NewPCG(2, 1)), 32)))}, graph.IntsAttr("strides", 2, 2))
	h = b.Op1("AveragePool", []string{h}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	b.Output("y", h, graph.Float32, nil)
	s := newSession(t, &graph.Model{Graph: b.Graph()}, runtime.Options{Threads: 2})
	in := []*graph.Tensor{graph.NewFloat32(sh(3, 2, 8, 8), randVec(rand.New(rand.NewPCG(3, 1)), 384))}
	out := []*graph.Tensor{new(graph.Tensor)}
	if err := s.Run(in, out); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(20, func() { _ = s.Run(in, out) }); a != 0 {
		t.Errorf("conv model allocates %v times per run", a)
	}
}
