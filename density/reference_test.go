package density_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// refNats bounds the per-point difference from the PyTorch + scipy
// reference: both integrate the same ODE at rtol = atol = 1e-5 with the same
// RK45 step control, so they differ by float32 rounding of the model.
const refNats = 1e-4

// TestMatchesPyTorchScipyReference compares log p of a trained model with
// testdata/density's reference (ref_logp.py: solve_ivp RK45, torch
// autograd divergence), point by point, on both backends.
func TestMatchesPyTorchScipyReference(t *testing.T) {
	t.Parallel()
	dir := testenv.Path(t, "testdata", "density")
	m, err := importer.Load(testenv.Path(t, "models", "swissroll", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := tensorio.ReadNpyFile(dir + "/swissroll_points.npy")
	if err != nil {
		t.Fatal(err)
	}
	want, err := tensorio.ReadNpyFile(dir + "/swissroll_ref_logp.npy")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Sigma    float64 `json:"sigma"`
		SigmaMax float64 `json:"sigma_max"`
		RTol     float64 `json:"rtol"`
		ATol     float64 `json:"atol"`
		NFE      int     `json:"nfe"`
	}
	raw, err := os.ReadFile(dir + "/swissroll_ref_logp.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	n := int(x.Shape[0])
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		e, err := density.New(be, m, spec, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		res, err := e.LogP(context.Background(), x.F32, n, density.Options{Sigma: ref.Sigma, SigmaMax: ref.SigmaMax, RTol: ref.RTol, ATol: ref.ATol})
		if err != nil {
			t.Fatal(err)
		}
		for i := range res.LogP {
			if d := math.Abs(res.LogP[i] - float64(want.F32[i])); d > refNats {
				t.Fatalf("point %d: %.6f, reference %.6f", i, res.LogP[i], want.F32[i])
			}
		}
		// One batch, one step sequence: the evaluation counts agree closely.
		if math.Abs(float64(res.Evals-int64(ref.NFE))) > 0.1*float64(ref.NFE) {
			t.Errorf("%d ODE evaluations, the reference took %d", res.Evals, ref.NFE)
		}
	})
}
