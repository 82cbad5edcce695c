package density_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)

// Tolerances, by name.
const (
	// exactNats: the mean log p through the ODE with the exact divergence
	// against the closed form (the bound).
	exactNats = 0.01
	// agreeSE: Hutchinson's estimate agrees with the exact value within
	// this many standard errors of the paired difference.
	agreeSE = 3
)

var backendNames = []string{"native", "ort"}

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

var axes = func(b *graph.Builder, name string, v ...int64) string {
	return b.Const(name, graph.NewInt64([]int64{int64(len(v))}, v))
}

// gmmModel is the exact score of the mixture g convolved with N(0, σ²I), as
// an ONNX graph with inputs x [N,d] and sigma [N]:
// s = Σ_k r_k(x)·(μ_k − x)/(s_k² + σ²), r = softmax_k of the components' log
// densities.
func gmmModel(t testing.TB, g *dataset.GMM) (*graph.Model, *importer.ModelSpec) {
	t.Helper()
	k, d := int64(g.Len()), int64(g.Dim())
	mu := make([]float32, 0, k*d)
	v0 := make([]float32, k)
	logw := make([]float32, k)
	for i := range g.Means {
		for _, m := range g.Means[i] {
			mu = append(mu, float32(m))
		}
		v0[i] = float32(g.Stds[i] * g.Stds[i])
		logw[i] = float32(math.Log(g.Weights[i]))
	}
	b := graph.NewBuilder("gmm")
	nDim := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{nDim, {Value: d}})
	sigma := b.Input("sigma", graph.Float32, graph.Shape{nDim})
	diff := b.Op("Sub", b.Const("mu", graph.NewFloat32([]int64{1, k, d}, mu)), b.Op("Unsqueeze", x, axes(b, "ax1", 1))[0])[0]
	sq := b.Node("ReduceSum", []string{b.Op("Mul", diff, diff)[0], axes(b, "ax2", 2)}, 1, graph.IntAttr("keepdims", 0))[0]
	s2 := b.Op("Unsqueeze", b.Op("Mul", sigma, sigma)[0], axes(b, "ax1b", 1))[0]
	v := b.Op("Add", b.Const("v0", graph.NewFloat32([]int64{k}, v0)), s2)[0]
	q := b.Op("Sub", b.Const("logw", graph.NewFloat32([]int64{k}, logw)), b.Op("Div", sq, b.Op("Mul", v, b.Const("two", graph.ScalarFloat32(2)))[0])[0])[0]
	q = b.Op("Sub", q, b.Op("Mul", b.Op("Log", v)[0], b.Const("halfd", graph.ScalarFloat32(float32(d)/2)))[0])[0]
	r := b.Op1("Softmax", []string{q}, graph.IntAttr("axis", 1))
	rw := b.Op("Unsqueeze", b.Op("Div", r, v)[0], axes(b, "ax2b", 2))[0]
	score := b.Node("ReduceSum", []string{b.Op("Mul", rw, diff)[0], axes(b, "ax1c", 1)}, 1, graph.IntAttr("keepdims", 0))[0]
	b.Output("score", score, graph.Float32, graph.Shape{nDim, {Value: d}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	m.SetMeta(importer.MetaKind, "score")
	m.SetMeta(importer.MetaCondition, "sigma")
	m.SetMeta(importer.MetaConditionInput, "sigma")
	m.SetMeta(importer.MetaDataShape, "["+itoa(d)+"]")
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return m, spec
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// noised draws n points of g convolved with N(0, σ²I) and their exact
// log-densities.
func noised(g *dataset.GMM, n int, sigma float64, seed uint64) ([]float32, []float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	d := g.Dim()
	xs := g.Sample(nil, n, r)
	x := make([]float32, n*d)
	want := make([]float64, n)
	for i := 0; i < n; i++ {
		p := xs[i*d : (i+1)*d]
		for j := range p {
			p[j] += sigma * r.NormFloat64()
			x[i*d+j] = float32(p[j])
		}
		want[i] = g.LogProbSigma(p, sigma)
	}
	return x, want
}

func logp(t *testing.T, be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, x []float32, n int, o density.Options) *density.Result {
	t.Helper()
	e, err := density.New(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.LogP(context.Background(), x, n, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// The mixtures: a single Gaussian off the origin, and two unequal modes in
// 3-D with different widths.
func testMixtures(t testing.TB) map[string]*dataset.GMM {
	g1, err := dataset.NewGMM([]float64{1}, [][]float64{{0.5, -0.3}}, []float64{0.7})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := dataset.NewGMM([]float64{1, 3}, [][]float64{{1, 0, -1}, {-1, 0.5, 0}}, []float64{0.3, 0.6})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*dataset.GMM{"gaussian": g1, "mixture": g2}
}

// σ_max is large enough that N(0, σ_max²I) is p_σmax to 1e-4 nats.
const (
	testSigma0   = 0.05
	testSigmaMax = 200
	testN        = 200
)

func TestLogPMatchesClosedForm(t *testing.T) {
	t.Parallel()
	for name, g := range testMixtures(t) {
		m, spec := gmmModel(t, g)
		x, want := noised(g, testN, testSigma0, 3)
		forEachBackend(t, func(t *testing.T, be runtime.Backend) {
			o := density.Options{Sigma: testSigma0, SigmaMax: testSigmaMax, Batch: 100, Workers: 2}
			res := logp(t, be, m, spec, x, testN, o)
			if got, w := res.Mean, mean(want); math.Abs(got-w) > exactNats || res.Divergence != density.Exact {
				t.Errorf("%s: mean log p = %.5f, exact %.5f (divergence %s)", name, got, w, res.Divergence)
			}
			worst := 0.0
			for i := range want {
				worst = math.Max(worst, math.Abs(res.LogP[i]-want[i]))
			}
			if worst > 5*exactNats {
				t.Errorf("%s: a point is off by %.4f nats", name, worst)
			}
			if res.Evals <= 0 || res.EvalsPerPoint < 10 || res.N != testN {
				t.Errorf("%s: evaluations %d (%.1f per point), n %d", name, res.Evals, res.EvalsPerPoint, res.N)
			}

			o.Divergence, o.Probes, o.Seed = density.Hutchinson, 2, 7
			h := logp(t, be, m, spec, x, testN, o)
			var diff []float64
			for i := range want {
				diff = append(diff, h.LogP[i]-want[i])
			}
			md := mean(diff)
			var v float64
			for _, dv := range diff {
				v += (dv - md) * (dv - md)
			}
			se := math.Sqrt(v / float64(len(diff)-1) / float64(len(diff)))
			if math.Abs(md) > agreeSE*se || se == 0 {
				t.Errorf("%s: Hutchinson mean log p is %.4f from exact, s.e. %.4f", name, md, se)
			}
		})
	}
}

// For p = N(0, σ²I) (a point mass at 0 noised; here of width 1e-4), x(σ) = x₀σ/σ₀ and the
// divergence integral is d·log(σ_max/σ₀): the prior term is exact too.
func TestLogPPointMassIsExact(t *testing.T) {
	t.Parallel()
	g, err := dataset.NewGMM([]float64{1}, [][]float64{{0, 0}}, []float64{1e-4})
	if err != nil {
		t.Fatal(err)
	}
	m, spec := gmmModel(t, g)
	x, want := noised(g, 50, 0.1, 5)
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		res := logp(t, be, m, spec, x, 50, density.Options{Sigma: 0.1, SigmaMax: 3, KeepPrior: true})
		for i := range want {
			if math.Abs(res.LogP[i]-want[i]) > 1e-3 {
				t.Fatalf("point %d: %.6f, want %.6f", i, res.LogP[i], want[i])
			}
			// The ODE's end is the start scaled by σ_max/σ₀.
			for j := 0; j < 2; j++ {
				if w := 30 * float64(x[2*i+j]); math.Abs(float64(res.Prior[2*i+j])-w) > 1e-3*math.Max(1, math.Abs(w)) {
					t.Fatalf("point %d: end state %v, want 30·x₀ = %v", i, res.Prior[2*i:2*i+2], w)
				}
			}
		}
	})
}

// Results do not depend on the number of workers, and are reproducible.
func TestLogPDeterministic(t *testing.T) {
	t.Parallel()
	g := testMixtures(t)["mixture"]
	m, spec := gmmModel(t, g)
	x, _ := noised(g, 60, testSigma0, 9)
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	o := density.Options{Sigma: testSigma0, SigmaMax: 10, Divergence: density.Hutchinson, Seed: 4, Batch: 16, Workers: 1}
	a := logp(t, be, m, spec, x, 60, o)
	o.Workers = 3
	b := logp(t, be, m, spec, x, 60, o)
	for i := range a.LogP {
		if a.LogP[i] != b.LogP[i] {
			t.Fatalf("point %d: %v with one worker, %v with three", i, a.LogP[i], b.LogP[i])
		}
	}
}

func TestLogPRefusals(t *testing.T) {
	t.Parallel()
	g := testMixtures(t)["gaussian"]
	m, spec := gmmModel(t, g)
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	e, err := density.New(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x := []float32{0, 0}
	for _, o := range []density.Options{
		{}, // no σ schedule
		{Sigma: 1, SigmaMax: 0.5},
		{Sigma: 0.1, SigmaMax: 1, Divergence: "trace"},
		{Sigma: 0.1, SigmaMax: 1, Heun: true},
		{Sigma: 0.1, SigmaMax: 1, Dequantize: true},
	} {
		if _, err := e.LogP(context.Background(), x, 1, o); err == nil || !strings.HasPrefix(err.Error(), "density: ") {
			t.Errorf("%+v: err %v", o, err)
		}
	}
	if _, err := e.LogP(context.Background(), x, 2, density.Options{Sigma: 0.1, SigmaMax: 1}); err == nil {
		t.Error("2 points from 2 values accepted")
	}
}
