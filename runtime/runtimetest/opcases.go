package runtimetest

import (
	"math"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// OpCase is one of the suite's own op tests, for ops ONNX's node tests
// leave untested at the opsets the importer takes: a one-node model whose
// expected outputs come from a float64 reference written beside it.
type OpCase struct {
	Name  string
	Op    string
	Opset int64
	Attrs []*graph.Attribute
	In    []*graph.Tensor
	Want  []*graph.Tensor
}

// OpTolerances compare OpCases' float32 results with their float64
// references.
var OpTolerances = Tolerances{
	graph.Float32: {RTol: 1e-5, ATol: 1e-6},
	graph.Int64:   {},
	graph.Bool:    {},
}

// opInput is a fixed float32 input covering negative, small, zero and large
// values.
var opInput = []float64{-3.5, -1.25, -0.5, -1e-3, 0, 1e-3, 0.5, 1.25, 2, 3.5, 7, -7}

func f32Of(shape []int64, v []float64, f func(float64) float64) *graph.Tensor {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(f(float64(float32(x))))
	}
	return graph.NewFloat32(shape, out)
}

func ident(x float64) float64 { return x }

// unaryCase applies a float64 reference elementwise to opInput.
func unaryCase(name, op string, opset int64, ref func(float64) float64, attrs ...*graph.Attribute) OpCase {
	s := []int64{3, 4}
	return OpCase{Name: name, Op: op, Opset: opset, Attrs: attrs,
		In: []*graph.Tensor{f32Of(s, opInput, ident)}, Want: []*graph.Tensor{f32Of(s, opInput, ref)}}
}

func boolCase(op string, ref func(a, b bool) bool) OpCase {
	a := []bool{false, false, true, true, true, false}
	x := graph.NewBool([]int64{2, 3}, a)
	y := graph.NewBool([]int64{3}, []bool{true, false, true})
	want := make([]bool, 6)
	for i := range want {
		want[i] = ref(a[i], y.B[i%3])
	}
	return OpCase{Name: op + "_broadcast", Op: op, Opset: 17, In: []*graph.Tensor{x, y}, Want: []*graph.Tensor{graph.NewBool([]int64{2, 3}, want)}}
}

// OpCases are the suite's own op tests.
var OpCases = func() []OpCase {
	softplus := func(x float64) float64 { return math.Log1p(math.Exp(x)) }
	cases := []OpCase{
		unaryCase("Tan", "Tan", 17, math.Tan),
		unaryCase("ThresholdedRelu", "ThresholdedRelu", 17, func(x float64) float64 {
			if x > 0.75 {
				return x
			}
			return 0
		}, graph.FloatAttr("alpha", 0.75)),
		unaryCase("Mish", "Mish", 18, func(x float64) float64 { return x * math.Tanh(softplus(x)) }),
		unaryCase("Gelu", "Gelu", 20, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }),
		unaryCase("Gelu_tanh", "Gelu", 20, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}, graph.StringAttr("approximate", "tanh")),
		unaryCase("Sin", "Sin", 17, math.Sin),
		unaryCase("Cos", "Cos", 17, math.Cos),
		unaryCase("Softplus", "Softplus", 17, softplus),
		unaryCase("Softsign", "Softsign", 17, func(x float64) float64 { return x / (1 + math.Abs(x)) }),
		unaryCase("Selu", "Selu", 17, func(x float64) float64 {
			const alpha, gamma = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
			if x > 0 {
				return gamma * x
			}
			return gamma * alpha * (math.Exp(x) - 1)
		}),
		boolCase("And", func(a, b bool) bool { return a && b }),
		boolCase("Xor", func(a, b bool) bool { return a != b }),
	}
	// GlobalMaxPool over [1, 2, 2, 3]: the maximum of each channel.
	x := f32Of([]int64{1, 2, 2, 3}, opInput, ident)
	cases = append(cases, OpCase{Name: "GlobalMaxPool", Op: "GlobalMaxPool", Opset: 17, In: []*graph.Tensor{x},
		Want: []*graph.Tensor{graph.NewFloat32([]int64{1, 2, 1, 1}, []float32{float32(slicesMax(opInput[:6])), float32(slicesMax(opInput[6:]))})}})
	// GlobalAveragePool: the mean of each channel.
	cases = append(cases, OpCase{Name: "GlobalAveragePool", Op: "GlobalAveragePool", Opset: 17, In: []*graph.Tensor{x},
		Want: []*graph.Tensor{graph.NewFloat32([]int64{1, 2, 1, 1}, []float32{float32(mean(opInput[:6])), float32(mean(opInput[6:]))})}})
	// Not.
	cases = append(cases, OpCase{Name: "Not", Op: "Not", Opset: 17, In: []*graph.Tensor{graph.NewBool([]int64{3}, []bool{true, false, true})},
		Want: []*graph.Tensor{graph.NewBool([]int64{3}, []bool{false, true, false})}})
	// ReduceLogSumExp over axis 1 of [3, 4], kept, with large entries that
	// overflow a naive float32 sum of exponentials.
	big := append([]float64{100, 101, 99, 100.5}, opInput[4:]...)
	lse := make([]float64, 3)
	for r := range lse {
		row := big[4*r : 4*r+4]
		m := slicesMax(row)
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(float32(v)) - m)
		}
		lse[r] = m + math.Log(sum)
	}
	cases = append(cases,
		OpCase{Name: "ReduceLogSumExp_opset17", Op: "ReduceLogSumExp", Opset: 17, Attrs: []*graph.Attribute{graph.IntsAttr("axes", 1)},
			In: []*graph.Tensor{f32Of([]int64{3, 4}, big, ident)}, Want: []*graph.Tensor{f32Of([]int64{3, 1}, lse, ident)}})
	// InstanceNormalization and GroupNormalization of [1, 2, 2, 3] with
	// per-channel (per-group) scale and bias; one group per channel makes
	// them the same function.
	scale, bias := []float64{1.5, -0.5}, []float64{0.25, 2}
	norm := make([]float64, 12)
	for ch := 0; ch < 2; ch++ {
		v := opInput[6*ch : 6*ch+6]
		mu, sq := mean(v), 0.0
		for _, e := range v {
			d := float64(float32(e)) - mu
			sq += d * d
		}
		sd := math.Sqrt(sq/6 + 1e-5)
		for i, e := range v {
			norm[6*ch+i] = scale[ch]*(float64(float32(e))-mu)/sd + bias[ch]
		}
	}
	sb := []*graph.Tensor{f32Of([]int64{2}, scale, ident), f32Of([]int64{2}, bias, ident)}
	cases = append(cases,
		OpCase{Name: "InstanceNormalization", Op: "InstanceNormalization", Opset: 17, In: append([]*graph.Tensor{x}, sb...),
			Want: []*graph.Tensor{f32Of([]int64{1, 2, 2, 3}, norm, ident)}},
		OpCase{Name: "GroupNormalization", Op: "GroupNormalization", Opset: 18, Attrs: []*graph.Attribute{graph.IntAttr("num_groups", 2)},
			In: append([]*graph.Tensor{x}, sb...), Want: []*graph.Tensor{f32Of([]int64{1, 2, 2, 3}, norm, ident)}})
	// Upsample (deprecated since opset 10, still emitted by old exporters):
	// nearest, scales [1, 1, 2, 3] as an input; output[i][j] = x[i/2][j/3].
	up := make([]float64, 4*6)
	for i := 0; i < 4; i++ {
		for j := 0; j < 6; j++ {
			up[i*6+j] = opInput[(i/2)*2+j/3]
		}
	}
	cases = append(cases, OpCase{Name: "Upsample_nearest", Op: "Upsample", Opset: 11, Attrs: []*graph.Attribute{graph.StringAttr("mode", "nearest")},
		In:   []*graph.Tensor{f32Of([]int64{1, 1, 2, 2}, opInput[:4], ident), graph.NewFloat32([]int64{4}, []float32{1, 1, 2, 3})},
		Want: []*graph.Tensor{f32Of([]int64{1, 1, 4, 6}, up, ident)}})
	// CumSum along axis 1 of [3, 4]: plain, exclusive, and reversed.
	for _, v := range []struct {
		name               string
		exclusive, reverse int64
	}{{"CumSum", 0, 0}, {"CumSum_exclusive", 1, 0}, {"CumSum_reverse", 0, 1}} {
		want := make([]float64, 12)
		for r := 0; r < 3; r++ {
			acc := 0.0
			for k := 0; k < 4; k++ {
				j := k
				if v.reverse != 0 {
					j = 3 - k
				}
				e := float64(float32(opInput[4*r+j]))
				if v.exclusive != 0 {
					want[4*r+j] = acc
					acc += e
				} else {
					acc += e
					want[4*r+j] = acc
				}
			}
		}
		cases = append(cases, OpCase{Name: v.name, Op: "CumSum", Opset: 14,
			Attrs: []*graph.Attribute{graph.IntAttr("exclusive", v.exclusive), graph.IntAttr("reverse", v.reverse)},
			In:    []*graph.Tensor{f32Of([]int64{3, 4}, opInput, ident), graph.ScalarInt64(1)},
			Want:  []*graph.Tensor{f32Of([]int64{3, 4}, want, ident)}})
	}
	// Einsum: a batched product with a transposed operand, "bij,bkj->bik",
	// and a trace-like contraction with a repeated index, "ii->i".
	a := f32Of([]int64{2, 2, 3}, opInput, ident)
	bt := f32Of([]int64{2, 2, 3}, opInput, func(x float64) float64 { return 0.5*x + 1 })
	prod := make([]float64, 8)
	for bb := 0; bb < 2; bb++ {
		for i := 0; i < 2; i++ {
			for k := 0; k < 2; k++ {
				sum := 0.0
				for j := 0; j < 3; j++ {
					sum += float64(a.F32[bb*6+i*3+j]) * float64(bt.F32[bb*6+k*3+j])
				}
				prod[bb*4+i*2+k] = sum
			}
		}
	}
	sq := f32Of([]int64{3, 3}, opInput[:9], ident)
	cases = append(cases,
		OpCase{Name: "Einsum_batched_transposed", Op: "Einsum", Opset: 12, Attrs: []*graph.Attribute{graph.StringAttr("equation", "bij,bkj->bik")},
			In: []*graph.Tensor{a, bt}, Want: []*graph.Tensor{f32Of([]int64{2, 2, 2}, prod, ident)}},
		OpCase{Name: "Einsum_diagonal", Op: "Einsum", Opset: 12, Attrs: []*graph.Attribute{graph.StringAttr("equation", "ii->i")},
			In: []*graph.Tensor{sq}, Want: []*graph.Tensor{graph.NewFloat32([]int64{3}, []float32{sq.F32[0], sq.F32[4], sq.F32[8]})}})
	// CastLike: int64 to the float32 of the second input, and back.
	ints := graph.NewInt64([]int64{4}, []int64{-3, 0, 2, 1 << 20})
	cases = append(cases,
		OpCase{Name: "CastLike_to_float", Op: "CastLike", Opset: 17, In: []*graph.Tensor{ints, graph.ScalarFloat32(0)},
			Want: []*graph.Tensor{graph.NewFloat32([]int64{4}, []float32{-3, 0, 2, 1 << 20})}},
		OpCase{Name: "CastLike_to_int", Op: "CastLike", Opset: 17,
			In:   []*graph.Tensor{graph.NewFloat32([]int64{3}, []float32{-2.75, 0.5, 9.25}), graph.ScalarInt64(0)},
			Want: []*graph.Tensor{graph.NewInt64([]int64{3}, []int64{-2, 0, 9})}})
	return cases
}()

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(float32(x))
	}
	return s / float64(len(v))
}

func slicesMax(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, float64(float32(x)))
	}
	return m
}

// runOpCases runs OpCases whose op the backend claims and adds the ops of
// those that pass to covered.
func runOpCases(t *testing.T, b runtime.Backend, covered map[string]bool) Counts {
	var claimed map[string]bool
	if oc, ok := b.(OpClaimer); ok {
		claimed = map[string]bool{}
		for _, op := range oc.SupportedOps() {
			claimed[op] = true
		}
	}
	var c Counts
	for _, oc := range OpCases {
		if claimed != nil && !claimed[oc.Op] {
			c.Excluded++
			continue
		}
		if why, ok := OpCasesExcludedFor[b.Name()][oc.Name]; ok {
			t.Logf("op case %s excluded for %s: %s", oc.Name, b.Name(), why)
			c.Excluded++
			continue
		}
		if t.Run(oc.Name, func(t *testing.T) { checkOpCase(t, b, oc) }) {
			c.Passed++
			covered[oc.Op] = true
		} else {
			c.Failed++
		}
	}
	return c
}

func checkOpCase(t *testing.T, b runtime.Backend, c OpCase) {
	g := graph.NewBuilder(c.Name)
	var names []string
	for i, in := range c.In {
		names = append(names, g.Input(string(rune('a'+i)), in.DType, graph.Fixed(in.Shape...)))
	}
	outs := g.Node(c.Op, names, len(c.Want), c.Attrs...)
	for i, o := range outs {
		g.Output("out"+string(rune('0'+i)), o, c.Want[i].DType, graph.Fixed(c.Want[i].Shape...))
	}
	m := &graph.Model{IRVersion: 9, Opsets: []graph.OpsetImport{{Version: c.Opset}}, Graph: g.Graph()}
	plan, err := b.Prepare(m, nodeOptions)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	got := newOutputs(len(c.Want))
	if err := sess.Run(c.In, got); err != nil {
		t.Fatal(err)
	}
	compareAll(t, "", plan.Outputs(), got, c.Want, OpTolerances)
}
