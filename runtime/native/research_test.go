package native

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// researchDirs lists testdata/research/<sub>/* folders holding a model.
func researchDirs(t *testing.T, sub ...string) []string {
	t.Helper()
	dir := testenv.Path(t, append([]string{"testdata", "research"}, sub...)...)
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/research/make_research.py`")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "model.onnx")); err == nil {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no models under %s", dir)
	}
	return out
}

func readNpy(t *testing.T, path string) *graph.Tensor {
	t.Helper()
	x, err := tensorio.ReadNpyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// runModel prepares m on the native backend and runs it on feeds.
func runModel(t *testing.T, m *graph.Model, feeds []*graph.Tensor) []*graph.Tensor {
	t.Helper()
	p, err := Backend{}.Prepare(m, runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make([]*graph.Tensor, len(m.Graph.Outputs))
	for i := range got {
		got[i] = new(graph.Tensor)
	}
	if err := s.Run(feeds, got); err != nil {
		t.Fatal(err)
	}
	return got
}

// closeTo compares with a tolerance relative to the reference's scale.
func closeTo(t *testing.T, what string, got, want *graph.Tensor, tol float64) {
	t.Helper()
	if !sameShape(got.Shape, want.Shape) || got.DType != want.DType {
		t.Fatalf("%s: got %s %v, want %s %v", what, got.DType, got.Shape, want.DType, want.Shape)
	}
	if want.DType == graph.Int64 {
		for i := range want.I64 {
			if got.I64[i] != want.I64[i] {
				t.Fatalf("%s: element %d is %d, want %d", what, i, got.I64[i], want.I64[i])
			}
		}
		return
	}
	scale := 0.0
	for _, v := range want.F32 {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range want.F32 {
		if d := math.Abs(float64(got.F32[i] - want.F32[i])); d > tol*(1+scale) || math.IsNaN(float64(got.F32[i])) {
			t.Fatalf("%s: element %d is %g, want %g (|Δ| %.3g, scale %.3g)", what, i, got.F32[i], want.F32[i], d, scale)
		}
	}
}

// TestResearchOpsMatchPyTorch runs every single-op case of
// testdata/research/ops (Pad, Resize, Einsum, CumSum, GatherElements,
// ReduceL1/L2, Trilu, ArgMax/ArgMin, 1-D/3-D Conv and pools, as PyTorch 1.13
// exports them) and compares with PyTorch's output.
func TestResearchOpsMatchPyTorch(t *testing.T) {
	for _, dir := range researchDirs(t, "ops") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := importer.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			got := runModel(t, m, []*graph.Tensor{readNpy(t, filepath.Join(dir, "x.npy"))})
			closeTo(t, "y", got[0], readNpy(t, filepath.Join(dir, "y.npy")), 1e-5)
		})
	}
}

// TestResearchModelsMatchPyTorch runs the research-family models at their
// saved inputs.
func TestResearchModelsMatchPyTorch(t *testing.T) {
	for _, dir := range researchDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := importer.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			var feeds []*graph.Tensor
			for _, in := range m.Graph.RuntimeInputs() {
				feeds = append(feeds, readNpy(t, filepath.Join(dir, "inputs", in.Name+".npy")))
			}
			got := runModel(t, m, feeds)
			for i, o := range m.Graph.Outputs {
				closeTo(t, o.Name, got[i], readNpy(t, filepath.Join(dir, "expected", o.Name+".npy")), 1e-4)
			}
		})
	}
}
