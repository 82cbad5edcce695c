package eval_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/sampler"
)

// Tolerances, by name.
const (
	// exactRelTol: exact score matching of a Gaussian (float32 graph)
	// against the same sum in float64.
	exactRelTol = 1e-4
	// agreeSE: stochastic estimates agree with their expectation within
	// this many standard errors.
	agreeSE = 3
	// sameRelTol: one quantity computed two ways in float32 (energy vs
	// score model, batch sizes, backends, FD vs VJP on a linear score).
	sameRelTol = 1e-4
	// fisherZero: the Fisher divergence of the exact score, which only
	// float32 rounding of the two scores makes nonzero.
	fisherZero = 1e-8
)

// The test Gaussian N(μ, diag(var)) in d = 3 dimensions.
var (
	gaussMu  = []float64{1, -1, 0.5}
	gaussVar = []float64{0.5, 1, 2}
)

const testN = 4000

var backendNames = []string{"native", "ort"}

// forEachBackend runs f per backend: a backend that cannot run here fails
// under CI=true and skips elsewhere (testenv.Missing); a build without cgo
// does not list onnxruntime at all.
func forEachBackend(t *testing.T, f func(t *testing.T, be runtime.Backend)) {
	t.Helper()
	for _, name := range backendNames {
		if name != "native" && !testenv.Cgo {
			continue // a build without cgo has no onnxruntime by design
		}
		t.Run(name, func(t *testing.T) {
			be, err := runtime.Get(name)
			if err != nil {
				testenv.Missing(t, err.Error())
			}
			f(t, be)
		})
	}
}

// gaussModel kinds.
const (
	kindScore  = "score"  // s = (μ+shift − x)/(var + σ²)
	kindEps    = "eps"    // ε = −σ·s
	kindEnergy = "energy" // E = ½Σ(x − μ − shift)²/(var + σ²), s = −∇E
)

// gaussModel is the exact score of N(μ+shift, diag(var)) convolved with
// N(0, σ²I), as an ONNX graph: with a σ input [N] when conditioned, at
// σ = 0 otherwise.
func gaussModel(t testing.TB, kind string, conditioned bool, mu, vars, shift []float64) (*graph.Model, *importer.ModelSpec) {
	t.Helper()
	d := int64(len(mu))
	m32 := make([]float32, d)
	v32 := make([]float32, d)
	for i := range mu {
		m32[i] = float32(mu[i])
		if shift != nil {
			m32[i] += float32(shift[i])
		}
		v32[i] = float32(vars[i])
	}
	b := graph.NewBuilder("gauss")
	nDim := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{nDim, {Value: d}})
	den := b.Const("var", graph.NewFloat32([]int64{d}, v32))
	var sigma string
	if conditioned || kind == kindEps {
		sigma = b.Input("sigma", graph.Float32, graph.Shape{nDim})
	}
	if conditioned {
		s2 := b.Op("Unsqueeze", b.Op("Mul", sigma, sigma)[0], b.Const("axes", graph.NewInt64([]int64{1}, []int64{1})))[0]
		den = b.Op("Add", den, s2)[0]
	}
	diff := b.Op("Sub", b.Const("mu", graph.NewFloat32([]int64{d}, m32)), x)[0]
	score := b.Op("Div", diff, den)[0]
	out, shape := kind, graph.Shape{nDim, {Value: d}}
	switch kind {
	case kindScore:
		b.Output(out, score, graph.Float32, shape)
	case kindEps:
		s := b.Op("Unsqueeze", sigma, b.Const("axes1", graph.NewInt64([]int64{1}, []int64{1})))[0]
		b.Output(out, b.Op("Neg", b.Op("Mul", score, s)[0])[0], graph.Float32, shape)
	case kindEnergy:
		q := b.Op("Mul", b.Op("Mul", diff, score)[0], b.Const("half", graph.ScalarFloat32(0.5)))[0]
		e := b.Op("ReduceSum", q, b.Const("raxes", graph.NewInt64([]int64{1}, []int64{1})))[0]
		e = b.Node("Squeeze", []string{e, b.Const("saxes", graph.NewInt64([]int64{1}, []int64{1}))}, 1)[0]
		b.Output(out, e, graph.Float32, graph.Shape{nDim})
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	cond := importer.CondNone
	if sigma != "" {
		cond = importer.CondSigma
	}
	m.SetMeta(importer.MetaKind, kind)
	m.SetMeta(importer.MetaCondition, string(cond))
	if sigma != "" {
		m.SetMeta(importer.MetaConditionInput, sigma)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return m, spec
}

// gaussData draws n points of N(μ, diag(var)).
func gaussData(n int, seed uint64) *graph.Tensor {
	r := rand.New(rand.NewPCG(seed, 0))
	d := len(gaussMu)
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(gaussMu[j] + math.Sqrt(gaussVar[j])*r.NormFloat64())
		}
	}
	return graph.NewFloat32([]int64{int64(n), int64(d)}, x)
}

func evaluate(t testing.TB, be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, x *graph.Tensor, o eval.ObjectiveOptions) []eval.ObjectiveResult {
	t.Helper()
	e, err := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.Evaluate(context.Background(), x, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func one(t testing.TB, be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, x *graph.Tensor, o eval.ObjectiveOptions) eval.ObjectiveResult {
	t.Helper()
	res := evaluate(t, be, m, spec, x, o)
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	return res[0]
}

func relClose(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-12)
}

// Exact score matching of a Gaussian is −Σ 1/var_i + ½‖s‖² per sample.
func TestExactGaussianAgainstFloat64(t *testing.T) {
	t.Parallel()
	x := gaussData(testN, 1)
	var want float64
	for i := 0; i < testN; i++ {
		for j := range gaussMu {
			s := (gaussMu[j] - float64(x.F32[i*3+j])) / gaussVar[j]
			want += 0.5 * s * s / testN
		}
	}
	for _, v := range gaussVar {
		want -= 1 / v
	}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		for _, kind := range []string{kindScore, kindEnergy} {
			m, spec := gaussModel(t, kind, false, gaussMu, gaussVar, nil)
			r := one(t, be, m, spec, x, eval.ObjectiveOptions{Objective: eval.Exact})
			if !relClose(r.Value, want, exactRelTol) || r.N != testN || r.Sigma != 0 {
				t.Errorf("%s model: exact = %+v, want value %.8g (float64)", kind, r, want)
			}
		}
	})
}

// SSM (every projection), SSM-VR and FD-SSM estimate exact score matching;
// at σ the data are perturbed, so for the exact score of p_σ the
// expectation is −½Σ 1/(var_i + σ²).
func TestEstimatorsAgreeWithExact(t *testing.T) {
	t.Parallel()
	const sigma = 0.3
	x := gaussData(testN, 2)
	var analytic float64
	for _, v := range gaussVar {
		analytic -= 0.5 / (v + sigma*sigma)
	}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		m, spec := gaussModel(t, kindScore, true, gaussMu, gaussVar, nil)
		e, err := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		get := func(o eval.ObjectiveOptions) eval.ObjectiveResult {
			t.Helper()
			o.Sigmas, o.Seed = []float64{sigma}, 7
			res, err := e.Evaluate(context.Background(), x, o)
			if err != nil {
				t.Fatal(err)
			}
			return res[0]
		}
		exact := get(eval.ObjectiveOptions{Objective: eval.Exact})
		if math.Abs(exact.Value-analytic) > agreeSE*exact.StdErr {
			t.Errorf("exact = %.5g ± %.2g, expectation %.5g", exact.Value, exact.StdErr, analytic)
		}
		for _, o := range []eval.ObjectiveOptions{
			{Objective: eval.SSM, Projection: eval.Rademacher},
			{Objective: eval.SSM, Projection: eval.Gaussian, Projections: 2},
			{Objective: eval.SSM, Projection: eval.Sphere},
			{Objective: eval.SSMVR, Projection: eval.Gaussian},
			{Objective: eval.FDSSM, Projection: eval.Gaussian},
		} {
			r := get(o)
			t.Logf("%s (%s ×%d) = %.5g ± %.2g; exact %.5g ± %.2g; expectation %.5g", o.Objective, o.Projection, o.Projections, r.Value, r.StdErr, exact.Value, exact.StdErr, analytic)
			if math.Abs(r.Value-exact.Value) > agreeSE*r.StdErr || !(r.StdErr > 0) {
				t.Errorf("%s (%s ×%d) = %.5g ± %.2g, exact %.5g", o.Objective, o.Projection, o.Projections, r.Value, r.StdErr, exact.Value)
			}
		}
		// A linear score: the central difference is exact, so FD-SSM is SSM
		// with the same projections, to rounding.
		ssm := get(eval.ObjectiveOptions{Objective: eval.SSM})
		fd := get(eval.ObjectiveOptions{Objective: eval.FDSSM})
		if !relClose(fd.Value, ssm.Value, sameRelTol) {
			t.Errorf("fd-ssm %.8g, ssm with the same projections %.8g", fd.Value, ssm.Value)
		}
	})
}

// Energy and ε-models go through ScoreFromEnergy and s = −ε/σ; they must
// give what the score model gives.
func TestKindsAgree(t *testing.T) {
	t.Parallel()
	x := gaussData(500, 3)
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []eval.Objective{eval.SSM, eval.Exact, eval.DSM} {
		o := eval.ObjectiveOptions{Objective: obj, Sigmas: []float64{0.2}, Seed: 3}
		ms, ss := gaussModel(t, kindScore, true, gaussMu, gaussVar, nil)
		want := one(t, be, ms, ss, x, o)
		for _, kind := range []string{kindEps, kindEnergy} {
			m, spec := gaussModel(t, kind, true, gaussMu, gaussVar, nil)
			got := one(t, be, m, spec, x, o)
			if !relClose(got.Value, want.Value, sameRelTol) {
				t.Errorf("%s of the %s model = %.8g, score model %.8g", obj, kind, got.Value, want.Value)
			}
		}
	}
}

// The draws depend on the seed only, not on the batch size.
func TestBatchIndependent(t *testing.T) {
	t.Parallel()
	x := gaussData(1000, 4)
	be, _ := runtime.Get("native")
	m, spec := gaussModel(t, kindScore, true, gaussMu, gaussVar, nil)
	for _, obj := range []eval.Objective{eval.SSM, eval.FDSSM, eval.DSM} {
		o := eval.ObjectiveOptions{Objective: obj, Sigmas: []float64{0.5}, Projection: eval.Sphere, Projections: 3, Seed: 9}
		a := one(t, be, m, spec, x, o)
		o.Batch = 77
		b := one(t, be, m, spec, x, o)
		if !relClose(a.Value, b.Value, 1e-9) || !relClose(a.StdErr, b.StdErr, 1e-6) {
			t.Errorf("%s: batch %d gives %+v, batch 77 %+v", obj, eval.DefaultBatch, a, b)
		}
	}
}

// DSM at σ falls as the model's mean shift shrinks and reaches its minimum
// ½(d/σ² − Σ 1/(var_i+σ²)) at the exact score; over several σ the NCSN
// total is the σ²-weighted mean.
func TestDSMMinimum(t *testing.T) {
	t.Parallel()
	sigmas := []float64{1, 0.3, 0.1}
	x := gaussData(testN, 5)
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		var prev []eval.ObjectiveResult
		for _, delta := range []float64{0.5, 0.2, 0} {
			m, spec := gaussModel(t, kindScore, true, gaussMu, gaussVar, []float64{delta, -delta, delta})
			res := evaluate(t, be, m, spec, x, eval.ObjectiveOptions{Objective: eval.DSM, Sigmas: sigmas, Seed: 11})
			if len(res) != len(sigmas)+1 || res[len(sigmas)].Objective != eval.NCSNDSM || !math.IsNaN(res[len(sigmas)].Sigma) {
				t.Fatalf("results %+v: want one per σ and the NCSN total", res)
			}
			var total float64
			for i, s := range sigmas {
				total += s * s * res[i].Value / float64(len(sigmas))
				if prev != nil && !(res[i].Value < prev[i].Value) {
					t.Errorf("σ=%g: DSM %.6g at shift %g is not below %.6g at the larger shift", s, res[i].Value, delta, prev[i].Value)
				}
			}
			if !relClose(res[len(sigmas)].Value, total, 1e-12) {
				t.Errorf("NCSN total %.8g, want %.8g", res[len(sigmas)].Value, total)
			}
			if delta == 0 {
				for i, s := range sigmas {
					min := 0.5 * float64(len(gaussMu)) / (s * s)
					for _, v := range gaussVar {
						min -= 0.5 / (v + s*s)
					}
					if math.Abs(res[i].Value-min) > agreeSE*res[i].StdErr {
						t.Errorf("σ=%g: DSM of the exact score %.6g ± %.2g, minimum %.6g", s, res[i].Value, res[i].StdErr, min)
					}
				}
			}
			prev = res
		}
	})
}

// The Fisher divergence of the exact score is 0; a mean shifted by δ has
// ½‖δ‖²/(s² + σ²)² at every point.
func TestFisher(t *testing.T) {
	t.Parallel()
	const std, sigma = 0.7, 0.4
	g, err := dataset.NewGMM([]float64{1}, [][]float64{gaussMu}, []float64{std})
	if err != nil {
		t.Fatal(err)
	}
	xs := g.Sample(nil, 2000, rand.New(rand.NewPCG(6, 0)))
	x32 := make([]float32, len(xs))
	for i, v := range xs {
		x32[i] = float32(v)
	}
	x := graph.NewFloat32([]int64{2000, 3}, x32)
	iso := []float64{std * std, std * std, std * std}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		o := eval.ObjectiveOptions{Objective: eval.Fisher, Sigmas: []float64{sigma}, Reference: sampler.NewGMMScorer(g)}
		m, spec := gaussModel(t, kindScore, true, gaussMu, iso, nil)
		if r := one(t, be, m, spec, x, o); !(r.Value < fisherZero) {
			t.Errorf("Fisher divergence of the exact score = %g, want < %g", r.Value, fisherZero)
		}
		shift := []float64{0.1, 0.2, -0.2}
		m, spec = gaussModel(t, kindScore, true, gaussMu, iso, shift)
		v := std*std + sigma*sigma
		want := 0.5 * (0.01 + 0.04 + 0.04) / (v * v)
		if r := one(t, be, m, spec, x, o); !relClose(r.Value, want, sameRelTol) {
			t.Errorf("Fisher divergence of a shifted score = %.8g, want %.8g", r.Value, want)
		}
	})
}

// The W1/W3 model: SSM on every backend is the float64 reference's (mlp64,
// itself checked against PyTorch) on the same draws, and progress counts
// samples.
func TestNCSNFixtureAgainstReference(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "models", "ncsn_mlp", "model.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	toy, _ := dataset.Toy("8gaussians")
	x := toy.Tensor(1000, rand.New(rand.NewPCG(1, 1)))
	o := eval.ObjectiveOptions{Objective: eval.SSM, Sigmas: []float64{0.1}, Seed: 1, Batch: 300}
	want := ssmReference(t, m, x, o)
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		var prog atomic.Int64
		o := o
		o.Progress = &prog
		r := one(t, be, m, spec, x, o)
		if prog.Load() != 1000 {
			t.Errorf("progress %d, want 1000", prog.Load())
		}
		if !relClose(r.Value, want, sameRelTol) {
			t.Errorf("%s: ssm %.8g, float64 reference %.8g", be.Name(), r.Value, want)
		}
		t.Logf("%s: ssm %.8g, float64 reference %.8g", be.Name(), r.Value, want)
	})
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	be, _ := runtime.Get("native")
	x := gaussData(10, 1)
	cond, cspec := gaussModel(t, kindScore, true, gaussMu, gaussVar, nil)
	free, fspec := gaussModel(t, kindScore, false, gaussMu, gaussVar, nil)
	for _, c := range []struct {
		name string
		m    *graph.Model
		spec *importer.ModelSpec
		x    *graph.Tensor
		o    eval.ObjectiveOptions
		want string
	}{
		{"no sigma", cond, cspec, x, eval.ObjectiveOptions{}, "give the σ"},
		{"dsm clean", free, fspec, x, eval.ObjectiveOptions{Objective: eval.DSM}, "needs a noise level"},
		{"fisher no reference", free, fspec, x, eval.ObjectiveOptions{Objective: eval.Fisher}, "exact score"},
		{"unknown objective", free, fspec, x, eval.ObjectiveOptions{Objective: "sm"}, "unknown objective"},
		{"unknown projection", free, fspec, x, eval.ObjectiveOptions{Projection: "uniform"}, "unknown projection"},
		{"negative sigma", cond, cspec, x, eval.ObjectiveOptions{Sigmas: []float64{-1}}, "positive"},
		{"wrong shape", free, fspec, graph.NewFloat32([]int64{5, 2}, make([]float32, 10)), eval.ObjectiveOptions{}, "shape"},
		{"noise of the wrong size", free, fspec, x, eval.ObjectiveOptions{Noise: make([]float32, 29)}, "noise values given"},
		{"projections of the wrong size", free, fspec, x, eval.ObjectiveOptions{Projections: 2, Vectors: make([]float32, 30)}, "want 60"},
		{"exact too wide", free, fspec, graph.NewFloat32([]int64{1, 65}, make([]float32, 65)), eval.ObjectiveOptions{Objective: eval.Exact}, "use ssm"},
	} {
		spec := c.spec
		if c.name == "exact too wide" {
			s := *spec
			s.DataShape = nil
			spec = &s
		}
		e, err := eval.NewEvaluator(be, c.m, spec, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Evaluate(context.Background(), c.x, c.o)
		e.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "eval: ") {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	spec := *cspec
	spec.Condition = importer.CondTime
	// A time-conditioned model asked at a σ, and a σ model at time steps.
	te, err := eval.NewEvaluator(be, cond, &spec, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := te.Evaluate(context.Background(), x, eval.ObjectiveOptions{Sigmas: []float64{0.5}}); err == nil || !strings.Contains(err.Error(), "diffusion time") {
		t.Errorf("time-conditioned model at a σ: %v", err)
	}
	te.Close()
	se, _ := eval.NewEvaluator(be, cond, cspec, runtime.Options{})
	if _, err := se.Evaluate(context.Background(), x, eval.ObjectiveOptions{Times: []int{3}}); err == nil || !strings.Contains(err.Error(), "time-conditioned") {
		t.Errorf("σ model at time steps: %v", err)
	}
	se.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, _ := eval.NewEvaluator(be, free, fspec, runtime.Options{Threads: 1})
	defer e.Close()
	if _, err := e.Evaluate(ctx, x, eval.ObjectiveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// Draws reproduces Evaluate's perturbation and projections: SSM computed by
// hand from them is Evaluate's value.
func TestDraws(t *testing.T) {
	t.Parallel()
	const sigma = 0.25
	x := gaussData(300, 8)
	o := eval.ObjectiveOptions{Objective: eval.SSM, Sigmas: []float64{1, sigma}, Projections: 2, Seed: 5, Batch: 64}
	xt, v, err := eval.Draws(x, o, 1)
	if err != nil {
		t.Fatal(err)
	}
	be, _ := runtime.Get("native")
	m, spec := gaussModel(t, kindScore, true, gaussMu, gaussVar, nil)
	res := evaluate(t, be, m, spec, x, o)
	var want float64
	d, n := len(gaussMu), 300
	for k := 0; k < 2; k++ {
		for i := 0; i < n; i++ {
			var jvp, vs float64
			for j := 0; j < d; j++ {
				vj := float64(v[(k*n+i)*d+j])
				den := gaussVar[j] + sigma*sigma
				jvp -= vj * vj / den
				vs += vj * (gaussMu[j] - float64(xt[i*d+j])) / den
			}
			want += (jvp + 0.5*vs*vs) / float64(2*n)
		}
	}
	if !relClose(res[1].Value, want, sameRelTol) {
		t.Errorf("ssm at σ=%g: %.8g, from the draws %.8g", sigma, res[1].Value, want)
	}
	// Given noise and projections are what Draws returns, and what
	// Evaluate uses: the hand-made SSM from them is its value.
	z := make([]float32, len(x.F32))
	for j := range z {
		z[j] = float32(j%7) - 3
	}
	g := o
	g.Noise, g.Vectors = z, v[len(v)/2:]
	g.Projections = 1
	gxt, gv, err := eval.Draws(x, g, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = 0
	for i := 0; i < n; i++ {
		var jvp, vs float64
		for j := 0; j < d; j++ {
			if gv[i*d+j] != g.Vectors[i*d+j] || gxt[i*d+j] != float32(float64(x.F32[i*d+j])+sigma*float64(z[i*d+j])) {
				t.Fatalf("Draws with given values: sample %d coordinate %d is x̃ %g, v %g", i, j, gxt[i*d+j], gv[i*d+j])
			}
			vj := float64(gv[i*d+j])
			den := gaussVar[j] + sigma*sigma
			jvp -= vj * vj / den
			vs += vj * (gaussMu[j] - float64(gxt[i*d+j])) / den
		}
		want += (jvp + 0.5*vs*vs) / float64(n)
	}
	if res := evaluate(t, be, m, spec, x, g); !relClose(res[1].Value, want, sameRelTol) {
		t.Errorf("ssm at σ=%g on given draws: %.8g, by hand %.8g", sigma, res[1].Value, want)
	}
	if _, _, err := eval.Draws(x, o, 2); err == nil {
		t.Error("Draws of a level that does not exist: no error")
	}
}

// Every fixture kind runs through the objectives on both backends: a
// label-conditioned MLP (given its schedule), an unconditional energy MLP
// (second-order autodiff), a conv net on [1,8,8] images (d = 64, the widest
// exact score matching takes); a DDPM ε-model is refused. The two
// backends must agree on Evaluate's own draws; TestFixturesAgainstPyTorch
// checks the same fixtures against PyTorch on given draws.
func TestFixtures(t *testing.T) {
	t.Parallel()
	const n, fixtureRelTol = 16, 1e-3
	cases := []struct {
		name   string
		ov     importer.Overrides
		sigmas []float64
		objs   []eval.Objective
	}{
		{"ncsnv1_labels", importer.Overrides{Sigmas: sampler.Geometric(1, 0.01, 10)}, []float64{sampler.Geometric(1, 0.01, 10)[4]}, []eval.Objective{eval.SSM, eval.Exact, eval.DSM}},
		{"energy_mlp", importer.Overrides{}, nil, []eval.Objective{eval.SSMVR, eval.Exact, eval.FDSSM}},
		{"conv_score", importer.Overrides{}, []float64{0.5}, []eval.Objective{eval.SSM, eval.Exact}},
	}
	values := map[string]float64{}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		for _, c := range cases {
			path := testenv.Path(t, "testdata", "models", c.name, "model.onnx")
			testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
			m, err := importer.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := importer.Spec(m, c.ov)
			if err != nil {
				t.Fatal(err)
			}
			shape := append([]int64{n}, spec.DataShape...)
			r := rand.New(rand.NewPCG(2, 2))
			data := make([]float32, graph.NumElements(shape))
			for i := range data {
				data[i] = float32(r.NormFloat64())
			}
			x := graph.NewFloat32(shape, data)
			for _, obj := range c.objs {
				res := one(t, be, m, spec, x, eval.ObjectiveOptions{Objective: obj, Sigmas: c.sigmas, Seed: 1})
				key := c.name + "/" + string(obj)
				if want, ok := values[key]; ok && !relClose(res.Value, want, fixtureRelTol) {
					t.Errorf("%s: %s gives %.8g, native %.8g", key, be.Name(), res.Value, want)
				}
				values[key] = res.Value
			}
			if spec.Condition == importer.CondLabels {
				e, _ := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
				_, err := e.Evaluate(context.Background(), x, eval.ObjectiveOptions{Sigmas: []float64{0.5}})
				e.Close()
				if err == nil || !strings.Contains(err.Error(), "not in the σ schedule") {
					t.Errorf("%s at σ=0.5: %v; want a refusal naming the schedule", c.name, err)
				}
			}
		}
		// The DDPM ε-model is evaluated at time steps, and refused at a σ.
		m, err := importer.Load(testenv.Path(t, "testdata", "models", "ddpm_eps", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := importer.Spec(m, importer.Overrides{})
		x := gaussData(200, 4)
		x = graph.NewFloat32([]int64{200, 2}, x.F32[:400])
		for _, obj := range []eval.Objective{eval.SSM, eval.Exact} {
			res := one(t, be, m, spec, x, eval.ObjectiveOptions{Objective: obj, Times: []int{100}, Seed: 1})
			key := "ddpm_eps/" + string(obj)
			if math.IsNaN(res.Value) || math.IsInf(res.Value, 0) || res.Time != 100 {
				t.Errorf("%s: %+v", key, res)
			}
			if want, ok := values[key]; ok && !relClose(res.Value, want, fixtureRelTol) {
				t.Errorf("%s: %s gives %.8g, native %.8g", key, be.Name(), res.Value, want)
			}
			values[key] = res.Value
		}
		e, err := eval.NewEvaluator(be, m, spec, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if _, err := e.Evaluate(context.Background(), x, eval.ObjectiveOptions{Sigmas: []float64{0.1}}); err == nil || !strings.Contains(err.Error(), "time") {
			t.Errorf("ddpm_eps at a σ: %v; want a refusal asking for time steps", err)
		}
	})
}
