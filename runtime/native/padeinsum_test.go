package native

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// TestPad covers Pad's modes and opset forms with the ONNX operator
// document's examples and hand-computed cases.
func TestPad(t *testing.T) {
	data := f32(sh(3, 2), 1.0, 1.2, 2.3, 3.4, 4.5, 5.7)
	mode := func(m string) *graph.Attribute { return graph.StringAttr("mode", m) }
	runCases(t, []opCase{
		{name: "reflect", op: "Pad", attrs: []*graph.Attribute{mode("reflect")}, in: []*graph.Tensor{data, i64(sh(4), 0, 2, 0, 0)},
			want: []*graph.Tensor{f32(sh(3, 4), 1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7)}},
		{name: "edge", op: "Pad", attrs: []*graph.Attribute{mode("edge")}, in: []*graph.Tensor{data, i64(sh(4), 0, 2, 0, 0)},
			want: []*graph.Tensor{f32(sh(3, 4), 1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7)}},
		{name: "constant", op: "Pad", in: []*graph.Tensor{data, i64(sh(4), 0, 2, 0, 0), f32(sh(), 0)},
			want: []*graph.Tensor{f32(sh(3, 4), 0, 0, 1.0, 1.2, 0, 0, 2.3, 3.4, 0, 0, 4.5, 5.7)}},
		{name: "wrap", op: "Pad", opset: 19, attrs: []*graph.Attribute{mode("wrap")}, in: []*graph.Tensor{data, i64(sh(4), 2, 1, 1, 1)},
			want: []*graph.Tensor{f32(sh(6, 4), 3.4, 2.3, 3.4, 2.3, 5.7, 4.5, 5.7, 4.5, 1.2, 1.0, 1.2, 1.0,
				3.4, 2.3, 3.4, 2.3, 5.7, 4.5, 5.7, 4.5, 1.2, 1.0, 1.2, 1.0)}},
		{name: "negative", op: "Pad", in: []*graph.Tensor{f32(sh(3), 1, 2, 3), i64(sh(2), -1, 1)},
			want: []*graph.Tensor{f32(sh(3), 2, 3, 0)}},
		{name: "reflect-twice", op: "Pad", attrs: []*graph.Attribute{mode("reflect")}, in: []*graph.Tensor{f32(sh(2), 1, 2), i64(sh(2), 3, 0)},
			want: []*graph.Tensor{f32(sh(5), 2, 1, 2, 1, 2)}},
		{name: "reflect-crop", op: "Pad", attrs: []*graph.Attribute{mode("reflect")}, in: []*graph.Tensor{f32(sh(3), 1, 2, 3), i64(sh(2), -1, 2)},
			want: []*graph.Tensor{f32(sh(4), 2, 3, 2, 3)}}, // crop first, then reflect what is left
		{name: "axes", op: "Pad", opset: 18, in: []*graph.Tensor{f32(sh(2, 2), 1, 2, 3, 4), i64(sh(2), 1, 1), f32(sh(), 9), i64(sh(1), -1)},
			want: []*graph.Tensor{f32(sh(2, 4), 9, 1, 2, 9, 9, 3, 4, 9)}},
		{name: "opset2", op: "Pad", opset: 2, attrs: []*graph.Attribute{graph.IntsAttr("pads", 1, 0), graph.FloatAttr("value", 5)},
			in: []*graph.Tensor{f32(sh(2), 1, 2)}, want: []*graph.Tensor{f32(sh(3), 5, 1, 2)}},
		{name: "int64", op: "Pad", in: []*graph.Tensor{i64(sh(2), 7, 8), i64(sh(2), 0, 2), i64(sh(), -1)},
			want: []*graph.Tensor{i64(sh(4), 7, 8, -1, -1)}},
	})
	for _, bad := range []opCase{
		{name: "crop-below-zero", op: "Pad", in: []*graph.Tensor{f32(sh(2), 1, 2), i64(sh(2), -2, -1)}, want: []*graph.Tensor{nil}},
		{name: "pads-length", op: "Pad", in: []*graph.Tensor{f32(sh(2), 1, 2), i64(sh(3), 0, 0, 0)}, want: []*graph.Tensor{nil}},
		{name: "edge-of-empty", op: "Pad", attrs: []*graph.Attribute{mode("edge")}, in: []*graph.Tensor{f32(sh(0)), i64(sh(2), 1, 0)}, want: []*graph.Tensor{nil}},
	} {
		if _, err := runOp(t, bad, false); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}

// TestEinsum covers the equation language beyond the research forms:
// implicit outputs (alphabetical, upper case first), traces and diagonals,
// ellipses that broadcast, three operands, full sums.
func TestEinsum(t *testing.T) {
	eq := func(s string) []*graph.Attribute { return []*graph.Attribute{graph.StringAttr("equation", s)} }
	a23 := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	m33 := f32(sh(3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	runCases(t, []opCase{
		{name: "implicit-matmul", op: "Einsum", attrs: eq("ij,jk"), in: []*graph.Tensor{a23, f32(sh(3, 1), 1, 0, -1)},
			want: []*graph.Tensor{f32(sh(2, 1), -2, -2)}},
		{name: "implicit-transpose", op: "Einsum", attrs: eq("ba"), in: []*graph.Tensor{a23},
			want: []*graph.Tensor{f32(sh(3, 2), 1, 4, 2, 5, 3, 6)}},
		{name: "implicit-upper-first", op: "Einsum", attrs: eq("aB"), in: []*graph.Tensor{a23},
			want: []*graph.Tensor{f32(sh(3, 2), 1, 4, 2, 5, 3, 6)}},
		{name: "trace", op: "Einsum", attrs: eq("ii"), in: []*graph.Tensor{m33}, want: []*graph.Tensor{f32(sh(), 15)}},
		{name: "diagonal", op: "Einsum", attrs: eq("ii->i"), in: []*graph.Tensor{m33}, want: []*graph.Tensor{f32(sh(3), 1, 5, 9)}},
		{name: "sum", op: "Einsum", attrs: eq("ij->"), in: []*graph.Tensor{a23}, want: []*graph.Tensor{f32(sh(), 21)}},
		{name: "column-sum", op: "Einsum", attrs: eq("ij -> j"), in: []*graph.Tensor{a23}, want: []*graph.Tensor{f32(sh(3), 5, 7, 9)}},
		{name: "ellipsis-broadcast", op: "Einsum", attrs: eq("...j,...j->..."), in: []*graph.Tensor{a23, f32(sh(1, 3), 1, 1, 0)},
			want: []*graph.Tensor{f32(sh(2), 3, 9)}},
		{name: "ellipsis-implicit", op: "Einsum", attrs: eq("...ij,...jk"), in: []*graph.Tensor{f32(sh(2, 1, 2), 1, 2, 3, 4), f32(sh(2, 1), 10, 1)},
			want: []*graph.Tensor{f32(sh(2, 1, 1), 12, 34)}},
		{name: "outer-three", op: "Einsum", attrs: eq("i,j,k->kji"), in: []*graph.Tensor{f32(sh(2), 1, 2), f32(sh(1), 3), f32(sh(2), 1, -1)},
			want: []*graph.Tensor{f32(sh(2, 1, 2), 3, 6, -3, -6)}},
		{name: "chain-three", op: "Einsum", attrs: eq("ij,jk,kl->il"), in: []*graph.Tensor{a23, m33, f32(sh(3, 1), 1, 1, 1)},
			want: []*graph.Tensor{f32(sh(2, 1), 1*6+2*15+3*24, 4*6+5*15+6*24)}},
		{name: "batch-diagonal", op: "Einsum", attrs: eq("bii->bi"), in: []*graph.Tensor{f32(sh(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)},
			want: []*graph.Tensor{f32(sh(2, 2), 1, 4, 5, 8)}},
	})
	for _, e := range []string{"ij,jk->ii", "ij->k", "i.j->i", "......i->i", "ij->jj"} {
		_, err := runOp(t, opCase{name: e, op: "Einsum", attrs: eq(e), in: []*graph.Tensor{m33}, want: []*graph.Tensor{nil}}, false)
		if err == nil {
			t.Errorf("%q: want an error", e)
		}
	}
}

// TestResearchOpsRunAllocateNothing: once a session has seen a shape, Pad,
// Einsum (NIN, attention and reduction forms), cubic Resize and the 3-D
// window ops run without allocating, as every kernel must.
func TestResearchOpsRunAllocateNothing(t *testing.T) {
	b := graph.NewBuilder("research2d")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}, {Value: 4}, {Value: 4}})
	h := b.Op1("Pad", []string{x, b.Const("p", i64(sh(8), 0, 0, 1, 1, 0, 0, 1, 1))}, graph.StringAttr("mode", "reflect"))
	h = b.Op1("Einsum", []string{h, b.Const("w", f32(sh(2, 3), 1, 2, 3, 4, 5, 6))}, graph.StringAttr("equation", "nchw,cd->ndhw"))
	h = b.Op1("Einsum", []string{h, h}, graph.StringAttr("equation", "nchw,ncij->nhwij"))
	h = b.Op1("Einsum", []string{h}, graph.StringAttr("equation", "nhwij->nhw"))
	h = b.Op1("Resize", []string{h, "", b.Const("s", f32(sh(3), 1, 2, 0.5))}, graph.StringAttr("mode", "cubic"))
	b.Output("y", h, graph.Float32, nil)

	b3 := graph.NewBuilder("research3d")
	x3 := b3.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 1}, {Value: 2}, {Value: 4}, {Value: 4}})
	k := graph.NewFloat32(sh(2, 1, 1, 2, 2), []float32{1, 2, 3, 4, 5, 6, 7, 8})
	h3 := b3.Op1("Conv", []string{x3, b3.Const("k", k)}, graph.IntsAttr("pads", 0, 1, 1, 0, 0, 0))
	h3 = b3.Op1("MaxPool", []string{h3}, graph.IntsAttr("kernel_shape", 1, 2, 1))
	h3 = b3.Op1("AveragePool", []string{h3}, graph.IntsAttr("kernel_shape", 2, 1, 2), graph.IntsAttr("pads", 0, 0, 1, 0, 0, 1))
	h3 = b3.Op1("ConvTranspose", []string{h3, b3.Const("kt", graph.NewFloat32(sh(2, 1, 1, 2, 2), []float32{1, 2, 3, 4, 5, 6, 7, 8}))},
		graph.IntsAttr("strides", 1, 2, 2))
	b3.Output("y", h3, graph.Float32, nil)

	r := rand.New(rand.NewPCG(3, 1))
	for _, c := range []struct {
		g  *graph.Graph
		in *graph.Tensor
	}{
		{b.Graph(), graph.NewFloat32(sh(2, 2, 4, 4), randVec(r, 64))},
		{b3.Graph(), graph.NewFloat32(sh(2, 1, 2, 4, 4), randVec(r, 64))},
	} {
		s := newSession(t, &graph.Model{Graph: c.g}, runtime.Options{Threads: 2})
		in, out := []*graph.Tensor{c.in}, []*graph.Tensor{new(graph.Tensor)}
		if err := s.Run(in, out); err != nil {
			t.Fatalf("%s: %v", c.g.Name, err)
		}
		if a := testing.AllocsPerRun(20, func() { _ = s.Run(in, out) }); a != 0 {
			t.Errorf("%s allocates %v times per run", c.g.Name, a)
		}
	}
}

// einsumRef is the plain reference: one loop over every label's values,
// multiplying the operands' elements into the output's.
func einsumRef(t *testing.T, eq string, in []*graph.Tensor) *graph.Tensor {
	t.Helper()
	e, err := graph.ParseEinsum(eq, len(in))
	if err != nil {
		t.Fatal(err)
	}
	ranks := make([]int, len(in))
	for i, x := range in {
		ranks[i] = len(x.Shape)
	}
	ops, out, err := e.Expand(ranks)
	if err != nil {
		t.Fatal(err)
	}
	size := map[int]int64{}
	var labels []int
	for i, ls := range ops {
		for j, l := range ls {
			if _, ok := size[l]; !ok {
				labels = append(labels, l)
				size[l] = 1
			}
			size[l] = max(size[l], in[i].Shape[j])
		}
	}
	oshape := make([]int64, len(out))
	for i, l := range out {
		oshape[i] = size[l]
	}
	y := graph.NewFloat32(oshape, nil)
	val := map[int]int64{}
	offset := func(shape []int64, ls []int) int64 {
		off := int64(0)
		for j, l := range ls {
			v := val[l]
			if shape[j] == 1 {
				v = 0 // broadcast
			}
			off = off*shape[j] + v
		}
		return off
	}
	var rec func(k int)
	rec = func(k int) {
		if k == len(labels) {
			p := float32(1)
			for i, x := range in {
				p *= x.F32[offset(x.Shape, ops[i])]
			}
			y.F32[offset(oshape, out)] += p
			return
		}
		for v := int64(0); v < size[labels[k]]; v++ {
			val[labels[k]] = v
			rec(k + 1)
		}
	}
	rec(0)
	return y
}

// TestEinsumAgainstReference runs the GEMM-lowered kernel and the plain
// reference on random operands, over equations that exercise every path:
// in-place and copied layouts, batch/left/right/contracted labels, private
// sums, diagonals, broadcast ellipses, implicit outputs, three operands.
func TestEinsumAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	rt := func(shape ...int64) *graph.Tensor {
		return graph.NewFloat32(shape, randVec(r, int(graph.NumElements(shape))))
	}
	cases := []struct {
		eq string
		in []*graph.Tensor
	}{
		{"nchw,cd->ndhw", []*graph.Tensor{rt(2, 3, 4, 5), rt(3, 6)}},
		{"nchw,ncij->nhwij", []*graph.Tensor{rt(2, 3, 2, 3), rt(2, 3, 2, 3)}},
		{"nhwij,ncij->nchw", []*graph.Tensor{rt(2, 2, 3, 2, 3), rt(2, 4, 2, 3)}},
		{"bij,bjk->bik", []*graph.Tensor{rt(3, 2, 4), rt(3, 4, 5)}},
		{"bij,bkj->bki", []*graph.Tensor{rt(3, 2, 4), rt(3, 5, 4)}},
		{"ij,jk,kl", []*graph.Tensor{rt(2, 3), rt(3, 4), rt(4, 2)}},
		{"abc,cd,bd->ad", []*graph.Tensor{rt(2, 3, 4), rt(4, 5), rt(3, 5)}},
		{"bii,bij->bj", []*graph.Tensor{rt(2, 3, 3), rt(2, 3, 4)}},
		{"iij->j", []*graph.Tensor{rt(3, 3, 2)}},
		{"...ij,...jk->...ik", []*graph.Tensor{rt(2, 1, 2, 3), rt(4, 3, 2)}},
		{"i...,i...->...", []*graph.Tensor{rt(3, 2, 2), rt(3, 1, 2)}},
		{"Ab,bC", []*graph.Tensor{rt(2, 3), rt(3, 4)}},
		{"ijk->kji", []*graph.Tensor{rt(2, 3, 4)}},
		{"ij,kl->ijkl", []*graph.Tensor{rt(2, 3), rt(2, 2)}},
		{"i,i->", []*graph.Tensor{rt(5), rt(5)}},
	}
	for _, c := range cases {
		want := einsumRef(t, c.eq, c.in)
		got, err := runOp(t, opCase{name: c.eq, op: "Einsum", attrs: []*graph.Attribute{graph.StringAttr("equation", c.eq)},
			in: c.in, want: []*graph.Tensor{want}}, false)
		if err != nil {
			t.Errorf("%s: %v", c.eq, err)
			continue
		}
		checkTensor(t, c.eq, got[0], want)
	}
}

// einsumPlanCase is an equation, its inputs and whether a shortcut (the
// channel or the batched contraction) should take it.
type einsumPlanCase struct {
	eq   string
	in   []*graph.Tensor
	fast bool
}

// checkEinsumPlans checks that shortcut takes exactly the cases marked
// fast, and that the kernel's result has the reference's values and the
// general plan's bits whichever plan runs.
func checkEinsumPlans(t *testing.T, cases []einsumPlanCase, shortcut func(*einPlan, []*graph.Tensor) (einStep, bool)) {
	t.Helper()
	for _, c := range cases {
		var p einPlan
		kc, err := compileEinsum(&compileCtx{node: &graph.Node{OpType: "Einsum", Inputs: []string{"x", "y"}, Attrs: []*graph.Attribute{graph.StringAttr("equation", c.eq)}}})
		if err != nil {
			t.Fatalf("%s: %v", c.eq, err)
		}
		if err := kc.(*einsumKernel).expand(c.in, &p); err != nil {
			t.Fatalf("%s: %v", c.eq, err)
		}
		if _, ok := shortcut(&p, c.in); ok != c.fast {
			t.Errorf("%s %v: taken by the shortcut: %v, want %v", c.eq, c.in[0].Shape, ok, c.fast)
		}
		want := einsumRef(t, c.eq, c.in)
		run := func(general bool) *graph.Tensor {
			einsumGeneralOnly = general
			defer func() { einsumGeneralOnly = false }()
			got, err := runOp(t, opCase{name: c.eq, op: "Einsum", attrs: []*graph.Attribute{graph.StringAttr("equation", c.eq)},
				in: c.in, want: []*graph.Tensor{want}}, false)
			if err != nil {
				t.Fatalf("%s: %v", c.eq, err)
			}
			return got[0]
		}
		fast, general := run(false), run(true)
		checkTensor(t, c.eq, fast, want)
		for i := range general.F32 {
			if math.Float32bits(fast.F32[i]) != math.Float32bits(general.F32[i]) {
				t.Fatalf("%s: element %d is %g, the general plan's %g", c.eq, i, fast.F32[i], general.F32[i])
			}
		}
	}
}

func randTensor(r *rand.Rand) func(shape ...int64) *graph.Tensor {
	return func(shape ...int64) *graph.Tensor {
		return graph.NewFloat32(shape, randVec(r, int(graph.NumElements(shape))))
	}
}

// TestEinsumChannelContraction: the in-place channel contraction (NIN's
// form, with the weights either way round, outer axes or none) gives the
// general plan's bits; forms it must not take still match the reference.
func TestEinsumChannelContraction(t *testing.T) {
	rt := randTensor(rand.New(rand.NewPCG(6, 6)))
	checkEinsumPlans(t, []einsumPlanCase{
		{"nchw,cd->ndhw", []*graph.Tensor{rt(3, 5, 4, 6), rt(5, 7)}, true},
		{"nchw,dc->ndhw", []*graph.Tensor{rt(2, 8, 4, 4), rt(3, 8)}, true},
		{"chw,cd->dhw", []*graph.Tensor{rt(4, 4, 5), rt(4, 2)}, true},
		{"nabhw,abd->ndhw", []*graph.Tensor{rt(2, 2, 3, 4, 4), rt(2, 3, 5)}, true},
		{"nchw,cd->ndhw", []*graph.Tensor{rt(3, 5, 2, 2), rt(5, 7)}, false}, // 4 pixels: too thin
		{"nc,cd->nd", []*graph.Tensor{rt(4, 3), rt(3, 2)}, false},
		{"nchw,cd->nhwd", []*graph.Tensor{rt(2, 3, 4, 4), rt(3, 2)}, false},
	}, channelContraction)
}

// TestEinsumBatchedContraction: attention's einsums and the other in-place
// batched forms give the general plan's bits and the reference's values;
// forms that need a layout (a private sum, the batch not leading) are left
// to the general plan.
func TestEinsumBatchedContraction(t *testing.T) {
	rt := randTensor(rand.New(rand.NewPCG(7, 7)))
	checkEinsumPlans(t, []einsumPlanCase{
		{"nchw,ncij->nhwij", []*graph.Tensor{rt(2, 3, 4, 5), rt(2, 3, 4, 5)}, true},
		{"nhwij,ncij->nchw", []*graph.Tensor{rt(2, 4, 5, 4, 5), rt(2, 3, 4, 5)}, true},
		{"bij,bjk->bik", []*graph.Tensor{rt(3, 4, 6), rt(3, 6, 5)}, true},
		{"bij,bkj->bik", []*graph.Tensor{rt(3, 4, 6), rt(3, 5, 6)}, true},
		{"bji,bjk->bki", []*graph.Tensor{rt(3, 6, 4), rt(3, 6, 5)}, true},
		{"bij,bkj->bki", []*graph.Tensor{rt(3, 4, 6), rt(3, 5, 6)}, true},
		{"ij,jk->ik", []*graph.Tensor{rt(4, 6), rt(6, 5)}, true},
		{"bij,bjk->ibk", []*graph.Tensor{rt(3, 4, 6), rt(3, 6, 5)}, false},
		{"bij,bjk->bk", []*graph.Tensor{rt(3, 4, 6), rt(3, 6, 5)}, false},
		{"bij,jbk->bik", []*graph.Tensor{rt(3, 4, 6), rt(6, 3, 5)}, false},
	}, batchedContraction)
}
