package autodiff_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/runtime"
)

// oneOp is a one-node model y = op(x, args…) with x a [shape] input and the
// other inputs constants ("" for an omitted optional one).
type oneOp struct {
	name  string
	op    string
	opset int64
	shape []int64
	args  []*graph.Tensor
	attrs []*graph.Attribute
	extra int // further runtime inputs of x's shape after x (Einsum operands)
	// prep maps the N(0,1) draws of x, to keep them in the op's domain or
	// away from its kinks (nil: as drawn).
	prep func(float32) float32
}

func (c oneOp) model() *graph.Model {
	b := graph.NewBuilder(c.name)
	ins := []string{b.Input("x", graph.Float32, graph.Fixed(c.shape...))}
	for i := 0; i < c.extra; i++ {
		ins = append(ins, b.Input("x"+string(rune('1'+i)), graph.Float32, graph.Fixed(c.shape...)))
	}
	for _, a := range c.args {
		if a == nil {
			ins = append(ins, "")
			continue
		}
		ins = append(ins, b.Const("arg", a))
	}
	y := b.Node(c.op, ins, 1, c.attrs...)[0]
	b.Output("y", y, graph.Float32, nil)
	opset := c.opset
	if opset == 0 {
		opset = 17
	}
	return &graph.Model{Opsets: []graph.OpsetImport{{Version: opset}}, Graph: b.Graph()}
}

func randTensor(r *rand.Rand, shape []int64) *graph.Tensor {
	t := graph.NewFloat32(shape, nil)
	for i := range t.F32 {
		t.F32[i] = float32(r.NormFloat64())
	}
	return t
}

// checkOpGradients: the VJP of every case against float64-accumulated
// central differences on native, and the same gradient graph on onnxruntime
// (an independent implementation of every op the rule emits).
func checkOpGradients(t *testing.T, cases []oneOp) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.model()
			wrt := []string{"x"}
			for i := 0; i < c.extra; i++ {
				wrt = append(wrt, "x"+string(rune('1'+i)))
			}
			gm, res, err := autodiff.VJP(m, []string{"y"}, wrt, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewSource(int64(len(c.name))))
			in := map[string]*graph.Tensor{}
			for _, w := range wrt {
				in[w] = randTensor(r, c.shape)
				if c.prep != nil {
					for i, v := range in[w].F32 {
						in[w].F32[i] = c.prep(v)
					}
				}
			}
			native, err := runtime.Get("native")
			if err != nil {
				t.Fatal(err)
			}
			fwd := prepareStrict(t, native, m)
			y := fwd.run(t, in)["y"]
			v := randTensor(r, y.Shape)
			var grads [][]float32
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				out := prepareStrict(t, be, gm).run(t, with(in, res.Cotangents[0], v))
				if be.Name() == "native" {
					for i, w := range wrt {
						fd := finiteDiff(t, fwd, in, []string{"y"}, [][]float32{v.F32}, w, 1e-2)
						if err := compare64(out[res.Grads[i]].F32, fd.grad, tol{Rel: 2e-3, Abs: 1e-3}); err != nil {
							t.Errorf("∇%s against finite differences: %v", w, err)
						}
						grads = append(grads, out[res.Grads[i]].F32)
					}
					return
				}
				if err := compare(prepareStrict(t, be, m).run(t, in)["y"].F32, y.F32, tol{Rel: 1e-5, Abs: 1e-5}); err != nil {
					t.Errorf("forward on native against %s: %v", be.Name(), err)
				}
				for i := range wrt {
					if grads == nil {
						t.Skip("no native gradient to compare with")
					}
					if err := compare(out[res.Grads[i]].F32, grads[i], tol{Rel: 1e-5, Abs: 1e-5}); err != nil {
						t.Errorf("∇%s on %s against native: %v", wrt[i], be.Name(), err)
					}
				}
			})
		})
	}
}

// TestResizeGradients: nearest (every rounding), linear and cubic in every
// coordinate mode the rule supports, up and down, through sizes and scales;
// the forward pass is checked against onnxruntime too.
func TestResizeGradients(t *testing.T) {
	var cases []oneOp
	shape := []int64{1, 2, 3, 4}
	for _, coord := range []string{"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric", "tf_half_pixel_for_nn"} {
		for _, mode := range []string{"linear", "nearest", "cubic"} {
			for _, nm := range []string{"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"} {
				if mode != "nearest" && nm != "floor" {
					continue
				}
				opset := int64(17)
				if coord == "half_pixel_symmetric" {
					opset = 19
				}
				attrs := []*graph.Attribute{graph.StringAttr("mode", mode), graph.StringAttr("coordinate_transformation_mode", coord),
					graph.StringAttr("nearest_mode", nm)}
				cases = append(cases,
					oneOp{name: coord + "/" + mode + "/" + nm + "/sizes", op: "Resize", opset: opset, shape: shape, attrs: attrs,
						args: []*graph.Tensor{nil, nil, graph.NewInt64([]int64{4}, []int64{1, 2, 5, 7})}},
					oneOp{name: coord + "/" + mode + "/" + nm + "/scales", op: "Resize", opset: opset, shape: shape, attrs: attrs,
						args: []*graph.Tensor{nil, graph.NewFloat32([]int64{4}, []float32{1, 1, 0.6, 1.5})}})
			}
		}
	}
	checkOpGradients(t, cases)
}

// TestPadGradients: every mode, negative pads, the axes input, a pad value
// that is differentiated too (through its own input).
func TestPadGradients(t *testing.T) {
	shape := []int64{2, 3, 4}
	mode := func(m string) []*graph.Attribute { return []*graph.Attribute{graph.StringAttr("mode", m)} }
	// Within one reflection: onnxruntime, the cross-check, differs beyond it
	// (native follows numpy there; TestPad in runtime/native).
	pads := graph.NewInt64([]int64{6}, []int64{0, 2, -1, 0, 1, 2})
	checkOpGradients(t, []oneOp{
		{name: "constant", op: "Pad", shape: shape, args: []*graph.Tensor{pads, graph.ScalarFloat32(0.5)}},
		{name: "reflect", op: "Pad", shape: shape, attrs: mode("reflect"), args: []*graph.Tensor{pads}},
		{name: "edge", op: "Pad", shape: shape, attrs: mode("edge"), args: []*graph.Tensor{pads}},
		{name: "wrap", op: "Pad", opset: 19, shape: shape, attrs: mode("wrap"), args: []*graph.Tensor{pads}},
		{name: "axes", op: "Pad", opset: 18, shape: shape, attrs: mode("reflect"),
			args: []*graph.Tensor{graph.NewInt64([]int64{2}, []int64{2, -1}), nil, graph.NewInt64([]int64{1}, []int64{-1})}},
	})
}

// TestEinsumGradients: the forms whose rule needs more than one Einsum —
// private summed labels, traces and diagonals, broadcast ellipses, implicit
// outputs, three operands.
func TestEinsumGradients(t *testing.T) {
	eq := func(s string) []*graph.Attribute { return []*graph.Attribute{graph.StringAttr("equation", s)} }
	checkOpGradients(t, []oneOp{
		{name: "nin", op: "Einsum", shape: []int64{2, 3, 2, 2}, attrs: eq("nchw,ncij->nhwij"), extra: 1},
		{name: "sum-private", op: "Einsum", shape: []int64{3, 4}, attrs: eq("ij,ik->j"), extra: 1},
		{name: "trace", op: "Einsum", shape: []int64{2, 3, 3}, attrs: eq("bii->b")},
		{name: "diagonal-kept", op: "Einsum", shape: []int64{3, 3}, attrs: eq("ii,jj->ij"), extra: 1},
		{name: "implicit", op: "Einsum", shape: []int64{3, 3}, attrs: eq("ij,jk"), extra: 1},
		{name: "ellipsis", op: "Einsum", shape: []int64{2, 3, 3}, attrs: eq("...ij,...jk->...ik"), extra: 1},
		{name: "three", op: "Einsum", shape: []int64{3, 3}, attrs: eq("ij,jk,kl->li"), extra: 2},
		{name: "broadcast-one", op: "Einsum", shape: []int64{1, 3}, attrs: eq("...j,...j->...j"),
			args: []*graph.Tensor{graph.NewFloat32([]int64{4, 3}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})}},
	})
}

// TestSecondOrderThroughNewRules differentiates the gradient graphs of the
// new rules again, as SSM on energy models and training do. The models are
// y = op(x, …)² (Einsum's operands all x), so ∇x⟨v, y⟩ depends on x through
// the rule's own graph; its gradient ∇x⟨u, ∇x⟨v, y⟩⟩ is checked against
// finite differences of the first gradient graph.
func TestSecondOrderThroughNewRules(t *testing.T) {
	eq := func(s string) []*graph.Attribute { return []*graph.Attribute{graph.StringAttr("equation", s)} }
	cases := []oneOp{
		{name: "einsum-attention", op: "Einsum", shape: []int64{2, 2, 2, 3}, attrs: eq("nchw,ncij->nhwij"), extra: 1},
		{name: "einsum-diagonal", op: "Einsum", shape: []int64{2, 3, 3}, attrs: eq("bii,bij->bj"), extra: 1},
		{name: "pad-reflect", op: "Pad", shape: []int64{2, 4}, attrs: []*graph.Attribute{graph.StringAttr("mode", "reflect")},
			args: []*graph.Tensor{graph.NewInt64([]int64{4}, []int64{0, 2, 0, 1})}},
		{name: "resize-cubic", op: "Resize", shape: []int64{1, 1, 3, 4}, attrs: []*graph.Attribute{graph.StringAttr("mode", "cubic")},
			args: []*graph.Tensor{nil, graph.NewFloat32([]int64{4}, []float32{1, 1, 2, 1.5})}},
		{name: "cumsum", op: "CumSum", shape: []int64{2, 4}, attrs: []*graph.Attribute{graph.IntAttr("reverse", 1)},
			args: []*graph.Tensor{graph.ScalarInt64(1)}},
	}
	native, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := graph.NewBuilder(c.name)
			x := b.Input("x", graph.Float32, graph.Fixed(c.shape...))
			ins := []string{x}
			for i := 0; i < c.extra; i++ {
				ins = append(ins, x)
			}
			for _, a := range c.args {
				if a == nil {
					ins = append(ins, "")
				} else {
					ins = append(ins, b.Const("arg", a))
				}
			}
			y0 := b.Node(c.op, ins, 1, c.attrs...)[0]
			b.Output("y", b.Op1("Mul", []string{y0, y0}), graph.Float32, nil)
			m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
			g1, r1, err := autodiff.VJP(m, []string{"y"}, []string{"x"}, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			g2, r2, err := autodiff.VJP(g1, r1.Grads, []string{"x"}, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatalf("second VJP: %v", err)
			}
			r := rand.New(rand.NewSource(7))
			in := map[string]*graph.Tensor{"x": randTensor(r, c.shape)}
			y := prepareStrict(t, native, m).run(t, in)["y"]
			in[r1.Cotangents[0]] = randTensor(r, y.Shape)
			u := randTensor(r, c.shape)
			first := prepareStrict(t, native, g1)
			got := prepareStrict(t, native, g2).run(t, with(in, r2.Cotangents[0], u))[r2.Grads[0]]
			fd := finiteDiff(t, first, in, r1.Grads, [][]float32{u.F32}, "x", 1e-2)
			if maxAbs(got.F32) == 0 {
				t.Fatal("the second derivative is zero: the case checks nothing")
			}
			if err := compare64(got.F32, fd.grad, tol{Rel: 5e-3, Abs: 2e-3}); err != nil {
				t.Errorf("second-order ∇x against finite differences: %v", err)
			}
		})
	}
}

// TestActivationGradients: the rules of the remaining differentiable ops
// native runs, against finite differences and onnxruntime.
func TestActivationGradients(t *testing.T) {
	s := []int64{2, 5}
	alpha := func(v float32) []*graph.Attribute { return []*graph.Attribute{graph.FloatAttr("alpha", v)} }
	axes := graph.NewInt64([]int64{1}, []int64{1})
	small := func(v float32) float32 { return v / 3 } // Tan away from its poles
	positive := func(v float32) float32 { return float32(math.Abs(float64(v))) + 0.5 }
	offKink := func(v float32) float32 { return v + float32(math.Copysign(0.1, float64(v))) }
	checkOpGradients(t, []oneOp{
		{name: "tan", op: "Tan", shape: s, prep: small},
		{name: "celu", op: "Celu", shape: s, prep: offKink, attrs: alpha(0.7)},
		{name: "thresholded-relu", op: "ThresholdedRelu", shape: s, prep: func(v float32) float32 { return offKink(v) + 0.3 }, attrs: alpha(0.3)},
		{name: "hardswish", op: "HardSwish", shape: []int64{4, 5}, prep: func(v float32) float32 { return 3 * v }},
		{name: "mish", op: "Mish", opset: 18, shape: s},
		{name: "gelu", op: "Gelu", opset: 20, shape: s},
		{name: "gelu-tanh", op: "Gelu", opset: 20, shape: s, attrs: []*graph.Attribute{graph.StringAttr("approximate", "tanh")}},
		{name: "prelu", op: "PRelu", shape: s, prep: offKink, args: []*graph.Tensor{graph.NewFloat32([]int64{5}, []float32{0.1, 0.2, -0.3, 0.4, 2})}},
		{name: "reduce-prod", op: "ReduceProd", opset: 18, shape: s, args: []*graph.Tensor{axes}},
		{name: "reduce-log-sum", op: "ReduceLogSum", opset: 18, shape: s, prep: positive, args: []*graph.Tensor{axes},
			attrs: []*graph.Attribute{graph.IntAttr("keepdims", 0)}},
	})
}

// TestDepthSpaceGradients: PixelShuffle's DepthToSpace (CRD), DCR and
// SpaceToDepth, forward against onnxruntime and gradients against finite
// differences.
func TestDepthSpaceGradients(t *testing.T) {
	bs := graph.IntAttr("blocksize", 2)
	checkOpGradients(t, []oneOp{
		{name: "depth-to-space-dcr", op: "DepthToSpace", shape: []int64{2, 8, 2, 3}, attrs: []*graph.Attribute{bs}},
		{name: "depth-to-space-crd", op: "DepthToSpace", shape: []int64{2, 8, 2, 3}, attrs: []*graph.Attribute{bs, graph.StringAttr("mode", "CRD")}},
		{name: "space-to-depth", op: "SpaceToDepth", shape: []int64{2, 3, 4, 6}, attrs: []*graph.Attribute{bs}},
	})
}
