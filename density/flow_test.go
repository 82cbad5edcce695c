package density_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Sampling with the ODE sampler and integrating the same ODE forward with
// LogP maps the samples back to the prior draws they started from.
func TestODEReversesToPrior(t *testing.T) {
	t.Parallel()
	g := testMixtures(t)["mixture"]
	m, spec := gmmModel(t, g)
	const n, smax, smin, seed = 50, 8.0, 0.05, 21
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		plan, err := be.Prepare(m, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer plan.Close()
		init := sampler.Gaussian{Std: smax}
		smp := &sampler.ODE{Sigmas: []float64{smax, smin}, RTol: 1e-7, ATol: 1e-7}
		x, _, err := sampler.Collect(context.Background(), smp, sampler.ModelSource(plan, spec), sampler.Config{N: n, Dim: 3, Seed: seed, Init: init})
		if err != nil {
			t.Fatal(err)
		}
		res := logp(t, be, m, spec, x, n, density.Options{Sigma: smin, SigmaMax: smax, RTol: 1e-7, ATol: 1e-7, KeepPrior: true})
		start := make([]float32, 3)
		for i := 0; i < n; i++ {
			init.Draw(start, sampler.Stream(seed, i))
			for j := range start {
				if d := math.Abs(float64(res.Prior[3*i+j] - start[j])); d > 2e-3*smax {
					t.Fatalf("chain %d: back at σ_max %v, started at %v", i, res.Prior[3*i:3*i+3], start)
				}
			}
		}
	})
}

// vpGaussModel is a time-conditioned ε-model for data N(0, c²I) in d
// dimensions under the default DDPM schedule in its continuous form: at
// step τ = t/(T−1), x_t ~ N(0, v) with v = ᾱc² + 1 − ᾱ, so
// ε = √(1−ᾱ)·x/v.
func vpGaussModel(t *testing.T, c float64, d int64) (*graph.Model, *importer.ModelSpec) {
	t.Helper()
	const T = sampler.DefaultBetaSteps
	bmin, bmax := T*sampler.DefaultBetaStart, T*sampler.DefaultBetaEnd
	b := graph.NewBuilder("vp")
	nDim := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{nDim, {Value: d}})
	ti := b.Input("t", graph.Float32, graph.Shape{nDim})
	k := func(name string, v float64) string { return b.Const(name, graph.ScalarFloat32(float32(v))) }
	tau := b.Op("Div", ti, k("tmax", T-1))[0]
	// log ᾱ = −½τ²(β_max−β_min) − τβ_min
	la := b.Op("Neg", b.Op("Add", b.Op("Mul", b.Op("Mul", tau, tau)[0], k("half_db", 0.5*(bmax-bmin)))[0], b.Op("Mul", tau, k("bmin", bmin))[0])[0])[0]
	ab := b.Op("Exp", la)[0]
	one := k("one", 1)
	om := b.Op("Sub", one, ab)[0]
	v := b.Op("Add", b.Op("Mul", ab, k("c2", c*c))[0], om)[0]
	f := b.Op("Unsqueeze", b.Op("Div", b.Op("Sqrt", om)[0], v)[0], axes(b, "ax1", 1))[0]
	b.Output("eps", b.Op("Mul", x, f)[0], graph.Float32, graph.Shape{nDim, {Value: d}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	m.SetMeta(importer.MetaKind, "eps")
	m.SetMeta(importer.MetaCondition, "time")
	m.SetMeta(importer.MetaConditionInput, "t")
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return m, spec
}

func TestVPLogPMatchesClosedForm(t *testing.T) {
	t.Parallel()
	const c, d, n = 0.4, 2, 100
	m, spec := vpGaussModel(t, c, d)
	r := rand.New(rand.NewPCG(3, 3))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(c * r.NormFloat64())
	}
	// At t₀ = 1e-5 the data are noised by √(1−ᾱ(t₀)) ≈ 1e-3·…: the exact
	// density is N(0, v(t₀)).
	ab := math.Exp(-0.5*1e-10*(20-0.1) - 1e-5*0.1)
	v := ab*c*c + 1 - ab
	var want float64
	for _, xi := range x {
		want += (-0.5*math.Log(2*math.Pi*v) - 0.5*float64(xi)*float64(xi)/v) / n
	}
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		res := logp(t, be, m, spec, x, n, density.Options{})
		if res.Process != "vp" || math.Abs(res.Mean-want) > exactNats {
			t.Errorf("VP mean log p %.5f (%s), exact %.5f", res.Mean, res.Process, want)
		}
	})
}
