package eval_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// vpModel is the exact ε-model of data N(0, c²I) under DDPM's default
// schedule, with an int64 time input: x_t ~ N(0, v_t·I), v_t = ᾱ_t·c² +
// 1 − ᾱ_t, so ε = √(1−ᾱ_t)·x/v_t (ᾱ_t looked up in a table).
func vpModel(t *testing.T, c float64, d int64) (*graph.Model, *importer.ModelSpec, []float64) {
	t.Helper()
	betas := sampler.LinearBetas(sampler.DefaultBetaStart, sampler.DefaultBetaEnd, sampler.DefaultBetaSteps)
	ab := make([]float64, len(betas))
	tab := make([]float32, len(betas))
	p := 1.0
	for i, b := range betas {
		p *= 1 - b
		ab[i], tab[i] = p, float32(p)
	}
	b := graph.NewBuilder("vp")
	nDim := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{nDim, {Value: d}})
	ti := b.Input("t", graph.Int64, graph.Shape{nDim})
	a := b.Op("Gather", b.Const("abar", graph.NewFloat32([]int64{int64(len(tab))}, tab)), ti)[0]
	om := b.Op("Sub", b.Const("one", graph.ScalarFloat32(1)), a)[0]
	v := b.Op("Add", b.Op("Mul", a, b.Const("c2", graph.ScalarFloat32(float32(c*c))))[0], om)[0]
	f := b.Op("Unsqueeze", b.Op("Div", b.Op("Sqrt", om)[0], v)[0], b.Const("ax", graph.NewInt64([]int64{1}, []int64{1})))[0]
	b.Output("eps", b.Op("Mul", x, f)[0], graph.Float32, graph.Shape{nDim, {Value: d}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	m.SetMeta(importer.MetaKind, "eps")
	m.SetMeta(importer.MetaCondition, "time")
	m.SetMeta(importer.MetaConditionInput, "t")
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return m, spec, ab
}

// At DDPM step t the exact score of N(0, v_t·I) has score-matching value
// tr ∇s + ½E‖s‖² = −d/v_t + d/(2v_t) = −d/(2v_t); exact, SSM and FD-SSM
// agree with it, and DSM is finite, on both backends.
func TestTimeConditionedObjectives(t *testing.T) {
	t.Parallel()
	const c, d, n, step = 0.5, 3, 4000, 200
	m, spec, ab := vpModel(t, c, d)
	r := rand.New(rand.NewPCG(2, 2))
	x := graph.NewFloat32([]int64{n, d}, nil)
	for i := range x.F32 {
		x.F32[i] = float32(c * r.NormFloat64())
	}
	v := ab[step]*c*c + 1 - ab[step]
	want := -float64(d) / (2 * v)
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		for _, obj := range []eval.Objective{eval.Exact, eval.SSM, eval.FDSSM, eval.DSM} {
			res := one(t, be, m, spec, x, eval.ObjectiveOptions{Objective: obj, Times: []int{step}, Seed: 3})
			if res.Time != step || math.Abs(res.Sigma-math.Sqrt(1-ab[step])) > 1e-9 {
				t.Errorf("%s: result at t=%d, σ=%v", obj, res.Time, res.Sigma)
			}
			if obj == eval.DSM {
				if math.IsNaN(res.Value) || res.Value <= 0 {
					t.Errorf("dsm = %v", res.Value)
				}
				continue
			}
			if math.Abs(res.Value-want) > agreeSE*res.StdErr+1e-3*math.Abs(want) {
				t.Errorf("%s at t=%d: %.5f ± %.2g, want %.5f", obj, step, res.Value, res.StdErr, want)
			}
		}
	})
	// Time steps need a time-conditioned model and vice versa.
	be, _ := runtime.Get("native")
	e, err := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Evaluate(t.Context(), x, eval.ObjectiveOptions{Sigmas: []float64{0.1}}); err == nil {
		t.Error("a time-conditioned model evaluated at a σ")
	}
	if _, err := e.Evaluate(t.Context(), x, eval.ObjectiveOptions{Times: []int{1000}}); err == nil {
		t.Error("time step 1000 of 1000 accepted")
	}
}
