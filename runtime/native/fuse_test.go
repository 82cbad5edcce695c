package native

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// prepareOps prepares m with fusion on or off and returns the plan's step
// op types. Tests that toggle fusion must not run in parallel.
func prepareOps(t *testing.T, m *graph.Model, fused bool) (*plan, []string) {
	t.Helper()
	fusion = fused
	defer func() { fusion = true }()
	p, err := Backend{}.Prepare(m, runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	pl := p.(*plan)
	var ops []string
	for _, st := range pl.steps {
		ops = append(ops, st.node.OpType)
	}
	return pl, ops
}

func runPlan(t *testing.T, p *plan, in []*graph.Tensor) []*graph.Tensor {
	t.Helper()
	s, err := p.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]*graph.Tensor, len(p.outputs))
	for i := range out {
		out[i] = new(graph.Tensor)
	}
	if err := s.Run(in, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fusedTol is the relative tolerance between fused and unfused runs: the
// fused ones skip a float32 rounding of the bias sum, or reorder it.
const fusedTol = 1e-5

func sameOutputs(t *testing.T, got, want []*graph.Tensor) {
	t.Helper()
	for k := range want {
		if !sameShape(got[k].Shape, want[k].Shape) {
			t.Fatalf("output %d: shape %v, want %v", k, got[k].Shape, want[k].Shape)
		}
		for i, w := range want[k].F32 {
			g := got[k].F32[i]
			if math.Abs(float64(g-w)) > fusedTol*(1+math.Abs(float64(w))) && !(g != g && w != w) {
				t.Fatalf("output %d [%d] = %g, want %g", k, i, g, w)
			}
		}
	}
}

func TestFuseNCSNModel(t *testing.T) {
	m, err := importer.Load("../../testdata/models/ncsn_mlp/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	fused, fops := prepareOps(t, m, true)
	plain, pops := prepareOps(t, m, false)
	if got := strings.Join(fops, " "); strings.Count(got, "Gemm+Sigmoid+Mul") != 3 || strings.Contains(got, " Sigmoid") {
		t.Errorf("fused steps: %s (unfused: %v)", got, pops)
	}
	for _, n := range []int{1, 7, 300} {
		x, sig := mlpInputs(uint64(n), n)
		sig.Shape = sig.Shape[:1]
		in := []*graph.Tensor{x, sig}
		sameOutputs(t, runPlan(t, fused, in), runPlan(t, plain, in))
	}
}

func TestFuseBuiltMLP(t *testing.T) {
	w := newMLPWeights(4, 40)
	m := buildMLP(w)
	fused, fops := prepareOps(t, m, true)
	plain, _ := prepareOps(t, m, false)
	// Gemm layers take the SiLU into the epilogue; after MatMul+Add it is
	// a step of its own.
	got := strings.Join(fops, " ")
	if strings.Count(got, "Gemm+Sigmoid+Mul") != 2 || strings.Count(got, "Sigmoid+Mul") != 3 {
		t.Errorf("fused steps: %s", got)
	}
	x, sig := mlpInputs(5, 333)
	in := []*graph.Tensor{x, sig}
	sameOutputs(t, runPlan(t, fused, in), runPlan(t, plain, in))
}

// TestFuseKeepsSharedValues checks that values read elsewhere or returned
// as outputs are not fused away.
func TestFuseKeepsSharedValues(t *testing.T) {
	N := graph.Dim{Param: "N"}
	build := func(outSigmoid, reuseGemm bool) *graph.Model {
		b := graph.NewBuilder("shared")
		x := b.Input("x", graph.Float32, graph.Shape{N, {Value: 3}})
		w := b.Const("w", graph.NewFloat32([]int64{3, 4}, []float32{1, -2, 3, 0.5, -1, 2, 0.25, 1, 0.5, -0.5, 1, 2}))
		bias := b.Const("b", graph.NewFloat32([]int64{4}, []float32{0.1, -0.2, 0.3, 0}))
		h := b.Op1("Gemm", []string{x, w, bias})
		s := b.Op("Sigmoid", h)[0]
		y := b.Op("Mul", s, h)[0]
		if reuseGemm {
			y = b.Op("Add", y, h)[0]
		}
		b.Output(y, y, graph.Float32, graph.Shape{N, {Value: 4}})
		if outSigmoid {
			b.Output(s, s, graph.Float32, graph.Shape{N, {Value: 4}})
		}
		return &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	}
	for _, c := range []struct {
		outSigmoid, reuseGemm bool
		want                  string
	}{
		{false, false, "Gemm+Sigmoid+Mul"},
		{true, false, "Gemm Sigmoid Mul"},
		{false, true, "Gemm Sigmoid+Mul Add"},
	} {
		m := build(c.outSigmoid, c.reuseGemm)
		fused, ops := prepareOps(t, m, true)
		if got := strings.Join(ops, " "); got != c.want {
			t.Errorf("outSigmoid=%v reuseGemm=%v: steps %q, want %q", c.outSigmoid, c.reuseGemm, got, c.want)
		}
		plain, _ := prepareOps(t, m, false)
		x := graph.NewFloat32([]int64{5, 3}, []float32{1, 2, 3, -4, 5, -6, 0.5, 0, -1, 100, -100, 1, float32(math.Inf(-1)), 0, 1})
		in := []*graph.Tensor{x}
		sameOutputs(t, runPlan(t, fused, in), runPlan(t, plain, in))
	}
}

// TestFuseConvActivation: a Conv followed by an activation nobody else
// reads runs as one step, with the same results as the two steps.
func TestFuseConvActivation(t *testing.T) {
	N := graph.Dim{Param: "N"}
	r := rand.New(rand.NewPCG(3, 3))
	for _, c := range []struct {
		acts []string // activation chain after the conv
		want string
	}{
		{[]string{"Relu"}, "Conv+Relu"},
		{[]string{"Elu"}, "Conv+Elu"},
		{[]string{"Sigmoid"}, "Conv+Sigmoid"},
		{[]string{"SiLU"}, "Conv+Sigmoid+Mul"},
		{[]string{"Tanh"}, "Conv Tanh"},
	} {
		b := graph.NewBuilder("convact")
		x := b.Input("x", graph.Float32, graph.Shape{N, {Value: 3}, {Value: 9}, {Value: 9}})
		w := b.Const("w", graph.NewFloat32([]int64{5, 3, 3, 3}, randVec(r, 5*27)))
		bias := b.Const("b", graph.NewFloat32([]int64{5}, randVec(r, 5)))
		h := b.Op1("Conv", []string{x, w, bias}, graph.IntsAttr("pads", 1, 1, 1, 1))
		var y string
		switch c.acts[0] {
		case "SiLU":
			y = b.Op("Mul", h, b.Op("Sigmoid", h)[0])[0]
		case "Elu":
			y = b.Op1("Elu", []string{h}, graph.FloatAttr("alpha", 0.5))
		default:
			y = b.Op(c.acts[0], h)[0]
		}
		b.Output("y", y, graph.Float32, graph.Shape{N, {Value: 5}, {Value: 9}, {Value: 9}})
		m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
		fused, ops := prepareOps(t, m, true)
		if got := strings.Join(ops[:len(ops)-1], " "); got != c.want { // the last step is the output's Identity
			t.Errorf("%v: steps %q, want %q", c.acts, got, c.want)
		}
		plain, _ := prepareOps(t, m, false)
		in := []*graph.Tensor{graph.NewFloat32([]int64{4, 3, 9, 9}, randVec(r, 4*3*81))}
		sameOutputs(t, runPlan(t, fused, in), runPlan(t, plain, in))
	}
}

// TestFuseGroupNorm: the exported GroupNorm pattern (Reshape,
// InstanceNormalization, Reshape, Mul γ, Add β, then SiLU) of the shipped
// U-Net and of the research DDPM runs as one step each, with the results of
// the unfused nodes.
func TestFuseGroupNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct {
		path string
		want int
	}{
		{"../../models/fashion_mnist/model.onnx", 11},
		{"../../testdata/research/ddpm_op13/model.onnx", 16},
	} {
		m, err := importer.Load(c.path)
		if err != nil {
			t.Fatal(err)
		}
		fused, ops := prepareOps(t, m, true)
		plain, _ := prepareOps(t, m, false)
		if n := strings.Count(" "+strings.Join(ops, " ")+" ", " GroupNorm "); n != c.want {
			t.Errorf("%s: %d GroupNorm steps, want %d: %v", c.path, n, c.want, ops)
		}
		var in []*graph.Tensor
		for _, v := range fused.Inputs() {
			shape := append([]int64{3}, v.Shape[1:].Ints()...)
			if v.DType == graph.Int64 {
				in = append(in, graph.NewInt64(shape, []int64{5, 500, 999}))
				continue
			}
			x := graph.NewFloat32(shape, randVec(r, int(graph.NumElements(shape))))
			if len(shape) == 1 {
				x.F32 = []float32{0.01, 0.3, 1}
			}
			in = append(in, x)
		}
		sameOutputs(t, runPlan(t, fused, in), runPlan(t, plain, in))
	}
}
