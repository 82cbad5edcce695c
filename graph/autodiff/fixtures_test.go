package autodiff_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// fixtureTol compares with PyTorch's autograd: float32 on both sides,
// different summation orders, scores up to a few hundred at σ = 0.01.
var fixtureTol = tol{Rel: 1e-4, Abs: 1e-5}

// ssmTol compares the SSM loss's parameter gradient (a second derivative of
// the network) with float32 finite differences of the loss.
var ssmTol = tol{Rel: 1e-3, Abs: 1e-4}

type fixture struct {
	dir    string
	name   string
	model  *graph.Model
	spec   *importer.ModelSpec
	inputs map[string]*graph.Tensor
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	var out []fixture
	for _, dir := range testenv.Fixtures(t) {
		m, err := importer.Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := importer.Spec(m, importer.Overrides{})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		in := map[string]*graph.Tensor{}
		for _, vi := range m.Graph.RuntimeInputs() {
			in[vi.Name] = readNpy(t, filepath.Join(dir, "inputs", vi.Name+".npy"))
		}
		out = append(out, fixture{dir: dir, name: filepath.Base(dir), model: m, spec: spec, inputs: in})
	}
	return out
}

func readNpy(t testing.TB, path string) *graph.Tensor {
	t.Helper()
	v, err := tensorio.ReadNpyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func with(in map[string]*graph.Tensor, k string, v *graph.Tensor) map[string]*graph.Tensor {
	out := map[string]*graph.Tensor{k: v}
	for kk, vv := range in {
		out[kk] = vv
	}
	return out
}

// TestFixtureVJPsMatchPyTorch: ∇x Σ v ⊙ output at the saved inputs, against
// torch.autograd (vjp/grad_x.npy); energy models use v = 1.
func TestFixtureVJPsMatchPyTorch(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			out, x := fx.spec.Output, fx.spec.XInput
			gm, res, err := autodiff.VJP(fx.model, []string{out}, []string{x}, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var v *graph.Tensor
			if p := filepath.Join(fx.dir, "vjp", "v.npy"); fileExists(p) {
				v = readNpy(t, p)
			} else {
				n := fx.inputs[x].Shape[0]
				v = graph.NewFloat32([]int64{n}, nil)
				for i := range v.F32 {
					v.F32[i] = 1
				}
			}
			want := readNpy(t, filepath.Join(fx.dir, "vjp", "grad_x.npy"))
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				s := prepare(t, be, gm)
				got := s.run(t, with(fx.inputs, res.Cotangents[0], v))[res.Grads[0]]
				if err := compare(got.F32, want.F32, fixtureTol); err != nil {
					t.Errorf("∇x: %v", err)
				}
			})
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestScoreFromEnergyMatchesPyTorch(t *testing.T) {
	dir := testenv.Path(t, "testdata", "models", "energy_mlp")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m.SetMeta("ebmrun.kind", "energy")
	sm, err := autodiff.ScoreFromEnergy(m, "x", "energy")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(sm, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Kind != importer.OutScore || spec.Output != "score" {
		t.Errorf("the score model reads as kind %q output %q", spec.Kind, spec.Output)
	}
	if ins := sm.Graph.RuntimeInputs(); len(ins) != 1 || ins[0].Name != "x" {
		t.Errorf("inputs %v, want just x", ins)
	}
	x := readNpy(t, filepath.Join(dir, "inputs", "x.npy"))
	want := readNpy(t, filepath.Join(dir, "vjp", "neg_grad.npy"))
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		got := prepare(t, be, sm).run(t, map[string]*graph.Tensor{"x": x})["score"]
		if err := compare(got.F32, want.F32, fixtureTol); err != nil {
			t.Errorf("score: %v", err)
		}
		// A different batch size: the seed of ones follows the batch.
		sub := graph.NewFloat32([]int64{3, 2}, append([]float32(nil), x.F32[:6]...))
		got = prepare(t, be, sm).run(t, map[string]*graph.Tensor{"x": sub})["score"]
		if err := compare(got.F32, want.F32[:6], fixtureTol); err != nil {
			t.Errorf("score at batch 3: %v", err)
		}
	})
}

// TestSSMParameterGradient is the second-order check: the parameter
// gradient of the SSM loss of ncsn_mlp (a VJP of a graph that holds a VJP)
// against central differences of the loss on a few parameters.
func TestSSMParameterGradient(t *testing.T) {
	dir := testenv.Path(t, "testdata", "models", "ncsn_mlp")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ssm, names, err := autodiff.SlicedScoreMatching(m, "x", "score")
	if err != nil {
		t.Fatal(err)
	}
	params := []string{"l1.weight", "l2.bias", "l4.weight"}
	gm, res, err := autodiff.VJP(ssm, []string{names.Loss}, params, autodiff.Options{Promote: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Promoted) != len(params) {
		t.Fatalf("promoted %v, want %v", res.Promoted, params)
	}
	x := readNpy(t, filepath.Join(dir, "inputs", "x.npy"))
	n := x.Shape[0]
	rng := rand.New(rand.NewSource(11))
	sigma := graph.NewFloat32([]int64{n}, nil)
	v := graph.NewFloat32(x.Shape, nil)
	for i := range sigma.F32 {
		sigma.F32[i] = float32(0.3 + 0.7*rng.Float64()) // moderate σ keeps float32 differences meaningful
	}
	for i := range v.F32 {
		v.F32[i] = float32(2*rng.Intn(2) - 1) // Rademacher
	}
	cot := graph.NewFloat32([]int64{n}, nil)
	for i := range cot.F32 {
		cot.F32[i] = 1 / float32(n) // the batch mean
	}
	in := map[string]*graph.Tensor{"x": x, "sigma": sigma, names.V: v, res.Cotangents[0]: cot}
	inits := m.Graph.InitializerMap()
	for _, p := range params {
		in[p] = inits[p].Clone()
	}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		s := prepare(t, be, gm)
		outs := s.run(t, in)
		for i, p := range params {
			grad := outs[res.Grads[i]].F32
			// A few entries: the first, the largest-gradient one, the last.
			idx := []int{0, argmaxAbs(grad), len(grad) - 1}
			var got []float32
			var want []float64
			for _, j := range idx {
				got = append(got, grad[j])
				want = append(want, lossFD(t, s, in, names.Loss, cot.F32, p, j, 1e-2))
			}
			if err := compare64(got, want, ssmTol); err != nil {
				t.Errorf("∂loss/∂%s at %v: %v (got %v, want %v)", p, idx, err, got, want)
			}
		}
	})
}

func argmaxAbs(xs []float32) int {
	best := 0
	for i, x := range xs {
		if math.Abs(float64(x)) > math.Abs(float64(xs[best])) {
			best = i
		}
	}
	return best
}

// lossFD is the central difference of Σ cot ⊙ loss in one parameter entry.
func lossFD(t *testing.T, s *session, in map[string]*graph.Tensor, loss string, cot []float32, p string, j int, h float64) float64 {
	w := in[p]
	orig := w.F32[j]
	w.F32[j] = orig + float32(h)
	hi := float64(w.F32[j])
	plus := append([]float32(nil), s.run(t, in)[loss].F32...)
	w.F32[j] = orig - float32(h)
	lo := float64(w.F32[j])
	minus := s.run(t, in)[loss].F32
	w.F32[j] = orig
	sum := 0.0
	for i := range plus {
		sum += float64(cot[i]) * (float64(plus[i]) - float64(minus[i]))
	}
	return sum / (hi - lo)
}

// TestSSMJVPIsHutchinson checks the Hutchinson term against its definition
// on the fixture: vᵀ∇x(vᵀs) by central differences of vᵀs along v.
func TestSSMJVPIsHutchinson(t *testing.T) {
	dir := testenv.Path(t, "testdata", "models", "ncsn_mlp_op13")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ssm, names, err := autodiff.SlicedScoreMatching(m, "x", "score")
	if err != nil {
		t.Fatal(err)
	}
	x := readNpy(t, filepath.Join(dir, "inputs", "x.npy"))
	sigma := readNpy(t, filepath.Join(dir, "inputs", "sigma.npy"))
	for i := range sigma.F32 {
		sigma.F32[i] = max(sigma.F32[i], 0.3)
	}
	n := x.Shape[0]
	v := graph.NewFloat32(x.Shape, nil)
	rng := rand.New(rand.NewSource(5))
	for i := range v.F32 {
		v.F32[i] = float32(2*rng.Intn(2) - 1)
	}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		s := prepare(t, be, ssm)
		score := prepare(t, be, m)
		got := s.run(t, map[string]*graph.Tensor{"x": x, "sigma": sigma, names.V: v})[names.JVP]
		const h = 1e-2
		shifted := func(sign float64) []float64 {
			xs := x.Clone()
			for i := range xs.F32 {
				xs.F32[i] += float32(sign * h * float64(v.F32[i]))
			}
			sc := score.run(t, map[string]*graph.Tensor{"x": xs, "sigma": sigma})["score"]
			out := make([]float64, n)
			d := len(sc.F32) / int(n)
			for i := range sc.F32 {
				out[i/d] += float64(v.F32[i]) * float64(sc.F32[i])
			}
			return out
		}
		plus, minus := shifted(1), shifted(-1)
		want := make([]float64, n)
		for i := range want {
			want[i] = (plus[i] - minus[i]) / (2 * h)
		}
		if err := compare64(got.F32, want, ssmTol); err != nil {
			t.Errorf("vᵀ∇x(vᵀs): %v", err)
		}
	})
}

func TestMissingRulesListedTogether(t *testing.T) {
	b := graph.NewBuilder("custom")
	x := b.Input("x", graph.Float32, graph.Fixed(2))
	y := b.Op1("FooOp", []string{x})
	z := b.Op1("BarOp", []string{b.Op1("Tanh", []string{y})})
	b.Output("z", z, graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	_, _, err := autodiff.VJP(m, []string{"z"}, []string{"x"}, autodiff.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, autodiff.ErrNoRule) || !errors.Is(err, graph.ErrUnsupportedOp) {
		t.Errorf("error %v is not ErrNoRule/ErrUnsupportedOp", err)
	}
	for _, want := range []string{"FooOp", "BarOp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "Tanh") {
		t.Errorf("error %q names Tanh, which has a rule", err)
	}
}

func TestStructure(t *testing.T) {
	dir := testenv.Path(t, "testdata", "models", "conv_score")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	before := len(m.Graph.Nodes)
	snapshot, err := importer.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	gm, res, err := autodiff.VJP(m, []string{"score"}, []string{"x", "conv1.weight"}, autodiff.Options{Promote: true})
	if err != nil {
		t.Fatal(err)
	}
	if after, err := importer.Encode(m); err != nil || len(m.Graph.Nodes) != before || string(after) != string(snapshot) {
		t.Error("VJP changed its input model")
	}
	if gm.Graph.Input("conv1.weight") == nil || gm.Graph.Initializer("conv1.weight") != nil {
		t.Error("conv1.weight was not promoted to an input")
	}
	if err := gm.Graph.Validate(); err != nil {
		t.Fatal(err)
	}
	if gm.Opset("") != m.Opset("") {
		t.Errorf("opset %d, want %d", gm.Opset(""), m.Opset(""))
	}
	// Shared subexpressions: no two nodes compute the same thing.
	seen := map[string]string{}
	for _, n := range gm.Graph.Nodes {
		key := n.OpType + "|" + strings.Join(n.Inputs, ",") + "|" + attrKey(n)
		if prev, ok := seen[key]; ok {
			t.Errorf("nodes %s and %s compute the same %s", prev, n.Name, n.OpType)
		}
		seen[key] = n.Name
	}
	// Encodes and decodes: it is an ordinary ONNX model.
	data, err := importer.Encode(gm)
	if err != nil {
		t.Fatal(err)
	}
	back, err := importer.Decode(data, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Graph.Outputs) != 3 || back.Graph.Outputs[1].Name != res.Grads[0] {
		t.Errorf("outputs %v", back.Graph.Outputs)
	}
	// Only what reaches a gradient is differentiated: x's gradient of a
	// model that ignores sigma for x needs no Sin/Cos gradient (Sin→Cos).
	gx, _, err := autodiff.VJP(m, []string{"score"}, []string{"x"}, autodiff.Options{GradsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if h := gx.Graph.OpHistogram(); h["Sin"] > 1 || h["Cos"] > 1 {
		t.Errorf("the x gradient differentiates the σ embedding: %v", h)
	}
}

func attrKey(n *graph.Node) string {
	var sb strings.Builder
	for _, a := range n.Attrs {
		fmt.Fprintf(&sb, "%s:%d:%v:%d:%q:%v:%v:%v;", a.Name, a.Type, a.F, a.I, a.S, a.Floats, a.Ints, a.T)
	}
	return sb.String()
}

// TestAmbiguousBroadcastRefused: with both sizes unknown, [?,3]·[?,1] may
// or may not have stretched the second operand; the autodiff says so
// instead of guessing.
func TestAmbiguousBroadcastRefused(t *testing.T) {
	b := graph.NewBuilder("ambiguous")
	x := b.Input("x", graph.Float32, graph.Shape{graph.Unknown, {Value: 3}})
	c := b.Input("c", graph.Float32, graph.Shape{graph.Unknown, {Value: 1}})
	b.Output("y", b.Op1("Mul", []string{x, c}), graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	_, _, err := autodiff.VJP(m, []string{"y"}, []string{"c"}, autodiff.Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot tell whether \"c\" was broadcast along axis 0") {
		t.Errorf("got %v", err)
	}
	// With c declared [1,1] nothing is ambiguous.
	m.Graph.Inputs[1].Shape = graph.Fixed(1, 1)
	if _, _, err := autodiff.VJP(m, []string{"y"}, []string{"x", "c"}, autodiff.Options{}); err != nil {
		t.Errorf("c [1,1]: %v", err)
	}
}

// TestSSMTrainingGraphsForEveryFixture builds what a trainer runs — the
// parameter gradients of the SSM loss — for every fixture (energy models
// through ScoreFromEnergy first, so third order), and runs them once on
// every backend: all finite, and the loss equal to the SSM graph's.
func TestSSMTrainingGraphsForEveryFixture(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			m, out := fx.model, fx.spec.Output
			if fx.spec.Kind == importer.OutEnergy {
				var err error
				if m, err = autodiff.ScoreFromEnergy(m, fx.spec.XInput, out); err != nil {
					t.Fatal(err)
				}
				out = autodiff.ScoreOutput
			}
			ssm, names, err := autodiff.SlicedScoreMatching(m, fx.spec.XInput, out)
			if err != nil {
				t.Fatal(err)
			}
			var params []string
			for _, in := range m.Graph.Initializers {
				if in.Tensor.DType == graph.Float32 && len(in.Tensor.Shape) > 0 {
					params = append(params, in.Name)
				}
			}
			gm, res, err := autodiff.VJP(ssm, []string{names.Loss}, params, autodiff.Options{Promote: true})
			if err != nil {
				t.Fatal(err)
			}
			x := fx.inputs[fx.spec.XInput]
			in := with(fx.inputs, names.V, graph.NewFloat32(x.Shape, nil))
			for i := range in[names.V].F32 {
				in[names.V].F32[i] = float32(1 - 2*(i%2))
			}
			n := x.Shape[0]
			ones := graph.NewFloat32([]int64{n}, nil)
			for i := range ones.F32 {
				ones.F32[i] = 1
			}
			in[res.Cotangents[0]] = ones
			inits := m.Graph.InitializerMap()
			for _, p := range params {
				in[p] = inits[p]
			}
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				outs := prepare(t, be, gm).run(t, in)
				ref := prepare(t, be, ssm).run(t, in)[names.Loss]
				if err := compare(outs[names.Loss].F32, ref.F32, tol{Rel: 1e-6}); err != nil {
					t.Errorf("loss: %v", err)
				}
				for i, p := range params {
					for _, v := range outs[res.Grads[i]].F32 {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("∂loss/∂%s holds %v", p, v)
						}
					}
				}
			})
		})
	}
}
