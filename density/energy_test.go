package density_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// energyShift is the constant added to the mixture's −log-density, so
// the energy's log Z is −energyShift, not 0.
const energyShift = 1.7

// energyMixture is a 2-D mixture with unequal weights and widths.
func energyMixture(t testing.TB) *dataset.GMM {
	g, err := dataset.NewGMM([]float64{0.2, 0.5, 0.3}, [][]float64{{-1.5, 0}, {1, 1}, {0.5, -1.5}}, []float64{0.4, 0.6, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gmmEnergyModel is the ONNX graph of E(x) = −log p(x) + energyShift for
// an isotropic mixture p, unconditional, with its logsumexp as one
// ReduceLogSumExp.
func gmmEnergyModel(t testing.TB, g *dataset.GMM) (*graph.Model, *importer.ModelSpec) {
	t.Helper()
	k, d := int64(g.Len()), int64(g.Dim())
	mu := make([]float32, 0, k*d)
	inv := make([]float32, k)
	c := make([]float32, k)
	for i := range g.Means {
		for _, m := range g.Means[i] {
			mu = append(mu, float32(m))
		}
		s2 := g.Stds[i] * g.Stds[i]
		inv[i] = float32(-1 / (2 * s2))
		c[i] = float32(math.Log(g.Weights[i]) - float64(d)/2*math.Log(2*math.Pi*s2))
	}
	b := graph.NewBuilder("gmm_energy")
	nDim := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{nDim, {Value: d}})
	diff := b.Op("Sub", b.Op("Unsqueeze", x, axes(b, "ax1", 1))[0], b.Const("mu", graph.NewFloat32([]int64{1, k, d}, mu)))[0]
	sq := b.Node("ReduceSum", []string{b.Op("Mul", diff, diff)[0], axes(b, "ax2", 2)}, 1, graph.IntAttr("keepdims", 0))[0]
	q := b.Op("Add", b.Op("Mul", sq, b.Const("inv", graph.NewFloat32([]int64{k}, inv)))[0], b.Const("c", graph.NewFloat32([]int64{k}, c)))[0]
	lse := b.Node("ReduceLogSumExp", []string{q, axes(b, "ax1b", 1)}, 1, graph.IntAttr("keepdims", 0))[0]
	e := b.Op("Sub", b.Const("shift", graph.ScalarFloat32(energyShift)), lse)[0]
	b.Output("energy", e, graph.Float32, graph.Shape{nDim})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 18}}, Graph: b.Graph()}
	m.SetMeta(importer.MetaKind, "energy")
	m.SetMeta(importer.MetaCondition, "none")
	m.SetMeta(importer.MetaDataShape, "[2]")
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return m, spec
}

// TestEnergyLogZ checks AIS and grid quadrature against the known log Z
// of a shifted mixture's −log-density, and log p = −E − log Ẑ against the
// mixture's exact log-density on its own samples, on every backend.
func TestEnergyLogZ(t *testing.T) {
	g := energyMixture(t)
	m, spec := gmmEnergyModel(t, g)
	const want = -energyShift
	forEachBackend(t, func(t *testing.T, be runtime.Backend) {
		e, err := density.NewEnergy(be, m, spec, 0, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		grid, err := e.Grid(context.Background(), []float64{-6, -6}, []float64{6, 6}, 400)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(grid.LogZ-want) > 1e-3 {
			t.Errorf("grid log Z = %.6f, want %.6f within 1e-3", grid.LogZ, want)
		}
		ais, err := e.AIS(context.Background(), density.AISOptions{Chains: 500, Temperatures: 500, BaseStd: 2, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(ais.LogZ-want) > 0.05 || !(ais.StdErr > 0 && ais.StdErr < 0.05) {
			t.Errorf("AIS log Z = %.4f ± %.4f, want %.4f within 0.05", ais.LogZ, ais.StdErr, want)
		}
		t.Logf("grid %.6f (edge mass %.2g); AIS %.4f ± %.4f (accept %.2f, ESS %.0f of %d)", grid.LogZ, grid.EdgeMass, ais.LogZ, ais.StdErr, ais.Accept, ais.ESS, ais.Chains)

		const n = 500
		r := rand.New(rand.NewPCG(9, 9))
		xs := g.Sample(nil, n, r)
		x := make([]float32, len(xs))
		var exact float64
		for i := range xs {
			x[i] = float32(xs[i])
		}
		for i := 0; i < n; i++ {
			exact += g.LogProb(xs[2*i:2*i+2]) / n
		}
		lp := make([]float64, n)
		if err := e.LogP(lp, x, n, ais.LogZ); err != nil {
			t.Fatal(err)
		}
		var got float64
		for _, v := range lp {
			got += v / n
		}
		if math.Abs(got-exact) > 0.05 {
			t.Errorf("mean log p with AIS's log Z = %.4f, exact %.4f: off by more than 0.05 nats", got, exact)
		}
	})
}

func TestEnergyGridRefusesHighDimensions(t *testing.T) {
	g, err := dataset.NewGMM([]float64{1}, [][]float64{{0, 0, 0}}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	m, spec := gmmEnergyModel(t, g)
	spec.DataShape = []int64{3}
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	e, err := density.NewEnergy(be, m, spec, 0, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Grid(context.Background(), []float64{-1, -1, -1}, []float64{1, 1, 1}, 10); err == nil {
		t.Error("grid quadrature in 3-D: no error")
	}
}
