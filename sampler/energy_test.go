package sampler

import (
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/tensorio"
)

// energyScoreTol: the score of energy_mlp against PyTorch's −∇x E, relative
// to the largest score.
const energyScoreTol = 1e-4

func TestEnergyModelScoresThroughTheAutodiff(t *testing.T) {
	t.Parallel()
	dir := testenv.Path(t, "testdata", "models", "energy_mlp")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Kind != importer.OutEnergy {
		t.Fatalf("energy_mlp reads as %q", spec.Kind)
	}
	sm, sspec, err := EnergyScoreModel(m, spec)
	if err != nil {
		t.Fatal(err)
	}
	if sspec.Kind != importer.OutScore || spec.Kind != importer.OutEnergy {
		t.Fatalf("spec kinds: new %q, original %q", sspec.Kind, spec.Kind)
	}
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := be.Prepare(sm, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sc, err := ModelSource(plan, sspec)()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.(*ModelScorer).Close()
	x, err := tensorio.ReadNpyFile(filepath.Join(dir, "inputs", "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := tensorio.ReadNpyFile(filepath.Join(dir, "vjp", "neg_grad.npy"))
	if err != nil {
		t.Fatal(err)
	}
	n := int(x.Shape[0])
	dst := make([]float32, len(x.F32))
	if err := sc.Score(dst, x.F32, n, Noise{Sigma: 1, Level: -1, Time: -1}); err != nil {
		t.Fatal(err)
	}
	scale := 0.0
	for _, v := range want.F32 {
		scale = max(scale, float64(abs32(v)))
	}
	for i := range dst {
		if d := float64(abs32(dst[i] - want.F32[i])); d > energyScoreTol*scale {
			t.Fatalf("score[%d] = %v, want %v", i, dst[i], want.F32[i])
		}
	}
}

func TestEnergyScoreModelLeavesScoreModels(t *testing.T) {
	t.Parallel()
	m := &graph.Model{Graph: &graph.Graph{}}
	spec := &importer.ModelSpec{Kind: importer.OutScore}
	gm, gs, err := EnergyScoreModel(m, spec)
	if err != nil || gm != m || gs != spec {
		t.Errorf("a score model changed: %v", err)
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
