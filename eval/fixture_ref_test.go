package eval_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

// pyRelTol bounds Evaluate's float32 objectives against the PyTorch
// references (float64 autograd) on the same x, z and v: the mean over the
// fixture's samples and its standard error, relative. Measured gaps are
// below 1e-6 on both backends.
const pyRelTol = 1e-5

// pyValues is testdata/objectives/<name>/values.json, written by
// make_objectives.py.
type pyValues struct {
	Sigma       float64 `json:"sigma"`
	Time        *int    `json:"time"` // a DDPM step, for the ε-model
	Epsilon     float64 `json:"epsilon"`
	Projections int     `json:"projections"`
	N           int     `json:"n"`
	Objectives  map[string]struct {
		Mean   float64 `json:"mean"`
		StdErr float64 `json:"stderr"`
	} `json:"objectives"`
}

// TestFixturesAgainstPyTorch: every objective of the label-conditioned,
// energy, conv and DDPM ε fixtures on every backend is PyTorch's (float64 autograd,
// testdata/objectives/make_objectives.py) on the same data, noise and
// projections, given to Evaluate through ObjectiveOptions.Noise and
// Vectors.
func TestFixturesAgainstPyTorch(t *testing.T) {
	t.Parallel()
	hint := "run `/usr/bin/python3 testdata/objectives/make_objectives.py`"
	cases := []struct {
		name string
		ov   importer.Overrides
	}{
		{"ncsnv1_labels", importer.Overrides{Sigmas: sampler.Geometric(1, 0.01, 10)}},
		{"energy_mlp", importer.Overrides{}},
		{"conv_score", importer.Overrides{}},
		{"ddpm_eps", importer.Overrides{}},
	}
	objs := []eval.Objective{eval.SSM, eval.SSMVR, eval.Exact, eval.FDSSM, eval.DSM}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		for _, c := range cases {
			dir := testenv.Path(t, "testdata", "objectives", c.name)
			testenv.Require(t, filepath.Join(dir, "values.json"), hint)
			raw, err := os.ReadFile(filepath.Join(dir, "values.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want pyValues
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s: values.json: %v", c.name, err)
			}
			read := func(f string) *graph.Tensor {
				x, err := tensorio.ReadNpyFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			x, z, v := read("x.npy"), read("z.npy"), read("v.npy")
			m, err := importer.Load(testenv.Path(t, "testdata", "models", c.name, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			spec, err := importer.Spec(m, c.ov)
			if err != nil {
				t.Fatal(err)
			}
			e, err := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range objs {
				w, ok := want.Objectives[string(obj)]
				if !ok {
					t.Fatalf("%s: values.json has no %s", c.name, obj)
				}
				o := eval.ObjectiveOptions{
					Objective: obj, Sigmas: []float64{want.Sigma}, Projections: want.Projections,
					Epsilon: want.Epsilon, Noise: z.F32, Vectors: v.F32, Batch: 13,
				}
				if want.Time != nil {
					o.Sigmas, o.Times = nil, []int{*want.Time}
				}
				res, err := e.Evaluate(t.Context(), x, o)
				if err != nil {
					t.Fatalf("%s: %s: %v", c.name, obj, err)
				}
				r := res[0]
				t.Logf("%s %s: %.9g ± %.6g, PyTorch %.9g ± %.6g (rel gaps %.2g, %.2g)", c.name, obj, r.Value, r.StdErr, w.Mean, w.StdErr,
					math.Abs(r.Value-w.Mean)/math.Abs(w.Mean), math.Abs(r.StdErr-w.StdErr)/w.StdErr)
				if r.N != want.N || !relClose(r.Value, w.Mean, pyRelTol) || !relClose(r.StdErr, w.StdErr, pyRelTol) {
					t.Errorf("%s: %s = %.9g ± %.6g (N %d), PyTorch %.9g ± %.6g (N %d)", c.name, obj, r.Value, r.StdErr, r.N, w.Mean, w.StdErr, want.N)
				}
			}
			e.Close()
		}
	})
}
