package autodiff_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
)

// researchDirs lists the folders under testdata/research/<sub> holding a
// model and a PyTorch autograd reference at rel.
func researchDirs(t *testing.T, sub, rel string) []string {
	t.Helper()
	dir := testenv.Path(t, "testdata", "research", sub)
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/research/make_research.py`")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if fileExists(filepath.Join(dir, e.Name(), rel)) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no references %s under %s", rel, dir)
	}
	return out
}

// prepareStrict prepares m and fails on any refusal: these graphs are made
// of ops every backend must run.
func prepareStrict(t *testing.T, be runtime.Backend, m *graph.Model) *session {
	t.Helper()
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatalf("%s: prepare: %v", be.Name(), err)
	}
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close(); plan.Close() })
	return &session{plan, sess}
}

// TestResearchOpGradients checks the rules of the ops the research families
// use (Pad in every mode, Resize nearest and linear in PyTorch's coordinate
// modes, Einsum forms, CumSum, GatherElements, ReduceL1/L2, Trilu, 1-D/3-D
// Conv and pools) two ways: against torch.autograd on the same graph
// (ops/<case>/grad_x.npy) on every backend, and against central finite
// differences of the forward graph accumulated in float64 on native.
func TestResearchOpGradients(t *testing.T) {
	for _, dir := range researchDirs(t, "ops", "grad_x.npy") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := importer.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			gm, res, err := autodiff.VJP(m, []string{"y"}, []string{"x"}, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			x, v := readNpy(t, filepath.Join(dir, "x.npy")), readNpy(t, filepath.Join(dir, "v.npy"))
			want := readNpy(t, filepath.Join(dir, "grad_x.npy"))
			in := map[string]*graph.Tensor{"x": x}
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				got := prepareStrict(t, be, gm).run(t, with(in, res.Cotangents[0], v))[res.Grads[0]]
				if err := compare(got.F32, want.F32, fixtureTol); err != nil {
					t.Errorf("∇x against PyTorch: %v", err)
				}
				if be.Name() != "native" {
					return
				}
				fd := finiteDiff(t, prepareStrict(t, be, m), in, []string{"y"}, [][]float32{v.F32}, "x", 1e-3)
				if err := compare64(got.F32, fd.grad, tol{Rel: 1e-2, Abs: 2e-3}); err != nil {
					t.Errorf("∇x against finite differences: %v", err)
				}
			})
		})
	}
}

// TestResearchModelVJPs differentiates every research-family model (NCSN
// v1/v2, NCSN++, DDPM, NICE) with respect to its data input and compares
// with torch.autograd at the saved inputs, on every backend.
func TestResearchModelVJPs(t *testing.T) {
	for _, dir := range researchDirs(t, "", "vjp/grad_x.npy") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := importer.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			out := m.Graph.Outputs[0].Name
			gm, res, err := autodiff.VJP(m, []string{out}, []string{"x"}, autodiff.Options{GradsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			in := map[string]*graph.Tensor{}
			for _, vi := range m.Graph.RuntimeInputs() {
				in[vi.Name] = readNpy(t, filepath.Join(dir, "inputs", vi.Name+".npy"))
			}
			v := readNpy(t, filepath.Join(dir, "vjp", "v.npy"))
			want := readNpy(t, filepath.Join(dir, "vjp", "grad_x.npy"))
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				got := prepareStrict(t, be, gm).run(t, with(in, res.Cotangents[0], v))[res.Grads[0]]
				if err := compare(got.F32, want.F32, fixtureTol); err != nil {
					t.Errorf("∇x against PyTorch: %v", err)
				}
			})
		})
	}
}

// TestResearchModelSSM builds the sliced-score-matching graph of every
// research score and ε-model (the DDPM ones included: eval cannot take
// time-conditioned models yet, the graph can) and checks it at PyTorch's
// projection v: the Hutchinson term vᵀ∇x(vᵀs) must be each sample's
// Σ v ⊙ ∇x(vᵀs) from torch.autograd, and the loss the term plus ½(vᵀs)², on
// every backend.
func TestResearchModelSSM(t *testing.T) {
	for _, dir := range researchDirs(t, "", "vjp/grad_x.npy") {
		m, err := importer.Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		out := m.Graph.Outputs[0].Name
		if out == "energy" {
			continue // its reference is a first derivative; eval's SSM on it is checked in cmd/ebmrun
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			sm, names, err := autodiff.SlicedScoreMatching(m, "x", out)
			if err != nil {
				t.Fatal(err)
			}
			in := map[string]*graph.Tensor{}
			for _, vi := range m.Graph.RuntimeInputs() {
				in[vi.Name] = readNpy(t, filepath.Join(dir, "inputs", vi.Name+".npy"))
			}
			v := readNpy(t, filepath.Join(dir, "vjp", "v.npy"))
			g := readNpy(t, filepath.Join(dir, "vjp", "grad_x.npy"))
			s := readNpy(t, filepath.Join(dir, "expected", out+".npy"))
			n := int(v.Shape[0])
			d := len(v.F32) / n
			wantJVP, wantLoss := make([]float32, n), make([]float32, n)
			for i := 0; i < n; i++ {
				var jvp, vs float64
				for j := i * d; j < (i+1)*d; j++ {
					jvp += float64(v.F32[j]) * float64(g.F32[j])
					vs += float64(v.F32[j]) * float64(s.F32[j])
				}
				wantJVP[i], wantLoss[i] = float32(jvp), float32(jvp+vs*vs/2)
			}
			forEachBackend(t, func(t *testing.T, be runtime.Backend) {
				res := prepareStrict(t, be, sm).run(t, with(in, names.V, v))
				if err := compare(res[names.JVP].F32, wantJVP, fixtureTol); err != nil {
					t.Errorf("vᵀ∇x(vᵀs): %v", err)
				}
				if err := compare(res[names.Loss].F32, wantLoss, fixtureTol); err != nil {
					t.Errorf("SSM loss: %v", err)
				}
			})
		})
	}
}
