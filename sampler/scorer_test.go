package sampler

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// fakePlan is a model computed in Go: f(x, cond) for each sample, standing
// in for a backend so the adapter is tested without one.
type fakePlan struct {
	ins  []graph.ValueInfo
	outs []graph.ValueInfo
	// f writes the output of one sample given its data and condition value.
	f func(out, x []float32, cond float64)
}

func (p *fakePlan) Inputs() []graph.ValueInfo  { return p.ins }
func (p *fakePlan) Outputs() []graph.ValueInfo { return p.outs }
func (p *fakePlan) Close() error               { return nil }
func (p *fakePlan) NewSession() (runtime.Session, error) {
	return &fakeSession{p: p}, nil
}

type fakeSession struct {
	p     *fakePlan
	calls int
}

func (s *fakeSession) Close() error { return nil }

// Run follows the Session contract: outputs shaped like x, data slices
// reused when large enough.
func (s *fakeSession) Run(ins, outs []*graph.Tensor) error {
	s.calls++
	var x, c *graph.Tensor
	for i, vi := range s.p.ins {
		if vi.Name == "x" {
			x = ins[i]
		} else {
			c = ins[i]
		}
	}
	n := int(x.Shape[0])
	d := len(x.F32) / n
	for _, o := range outs {
		o.DType = graph.Float32
		if cap(o.F32) < len(x.F32) {
			o.F32 = make([]float32, len(x.F32))
		}
		o.F32 = o.F32[:len(x.F32)]
		o.Shape = append(o.Shape[:0], x.Shape...)
		for i := 0; i < n; i++ {
			var cond float64
			switch {
			case c == nil:
			case c.DType == graph.Int64:
				if int64(len(c.I64)) != graph.NumElements(c.Shape) || c.Shape[0] != int64(n) {
					return errors.New("fake: bad condition shape")
				}
				cond = float64(c.I64[i])
			default:
				if int64(len(c.F32)) != graph.NumElements(c.Shape) || c.Shape[0] != int64(n) {
					return errors.New("fake: bad condition shape")
				}
				cond = float64(c.F32[i])
			}
			s.p.f(o.F32[i*d:(i+1)*d], x.F32[i*d:(i+1)*d], cond)
		}
	}
	return nil
}

func vi(name string, dt graph.DType, dims ...int64) graph.ValueInfo {
	s := graph.Fixed(dims...)
	s[0] = graph.Dim{Param: "N"}
	return graph.ValueInfo{Name: name, DType: dt, Shape: s, HasShape: true}
}

// gaussScore is the score at σ of N(0, I) data: −x/(1+σ²).
func gaussScore(out, x []float32, sigma float64) {
	for j := range x {
		out[j] = float32(-float64(x[j]) / (1 + sigma*sigma))
	}
}

func TestModelScorerConditions(t *testing.T) {
	// Not parallel: AllocsPerRun refuses parallel tests.
	sigmas := []float64{1, 0.5, 0.25}
	x := []float32{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		name string
		spec importer.ModelSpec
		cond graph.ValueInfo
		f    func(out, x []float32, c float64)
		nz   Noise
		want func(x float32) float32
	}{
		{"sigma [N]", importer.ModelSpec{Condition: importer.CondSigma, CondRank: 1, Kind: importer.OutScore},
			vi("sigma", graph.Float32, -1), gaussScore, VENoise(1, 0.5), func(x float32) float32 { return float32(-float64(x) / 1.25) }},
		{"sigma [N,1]", importer.ModelSpec{Condition: importer.CondSigma, CondRank: 2, Kind: importer.OutScore},
			vi("sigma", graph.Float32, -1, 1), gaussScore, VENoise(1, 0.5), func(x float32) float32 { return float32(-float64(x) / 1.25) }},
		{"labels", importer.ModelSpec{Condition: importer.CondLabels, CondRank: 1, Kind: importer.OutScore, Sigmas: sigmas},
			vi("labels", graph.Int64, -1), func(out, x []float32, c float64) { gaussScore(out, x, sigmas[int(c)]) },
			VENoise(-1, 0.25), func(x float32) float32 { return float32(-float64(x) / 1.0625) }},
		{"eps sigma", importer.ModelSpec{Condition: importer.CondSigma, CondRank: 1, Kind: importer.OutEps},
			vi("sigma", graph.Float32, -1), func(out, x []float32, c float64) { gaussScore(out, x, c); scale(out, float32(-c)) },
			VENoise(0, 0.5), func(x float32) float32 { return float32(-float64(x) / 1.25) }},
		{"eps time", importer.ModelSpec{Condition: importer.CondTime, CondRank: 1, Kind: importer.OutEps},
			vi("t", graph.Int64, -1), func(out, x []float32, c float64) {
				for j := range out {
					out[j] = float32(c)
				}
			},
			Noise{Sigma: 2, Level: -1, Time: 7}, func(float32) float32 { return -3.5 }},
		{"none", importer.ModelSpec{Condition: importer.CondNone, Kind: importer.OutScore},
			graph.ValueInfo{}, func(out, x []float32, c float64) { copy(out, x) }, VENoise(0, 1), func(x float32) float32 { return x }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.XInput, spec.Output, spec.CondInput = "x", "out", tc.cond.Name
			spec.DataShape = []int64{2}
			p := &fakePlan{ins: []graph.ValueInfo{vi("x", graph.Float32, -1, 2)}, outs: []graph.ValueInfo{vi("out", graph.Float32, -1, 2)}, f: tc.f}
			if tc.cond.Name != "" {
				p.ins = append(p.ins, tc.cond)
			}
			s, err := ModelSource(p, &spec)()
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]float32, len(x))
			if err := s.Score(dst, x, 3, tc.nz); err != nil {
				t.Fatal(err)
			}
			for i, v := range x {
				if w := tc.want(v); math.Abs(float64(dst[i]-w)) > 1e-6 {
					t.Fatalf("score[%d] = %v, want %v", i, dst[i], w)
				}
			}
			// Steady state allocates nothing, at any batch size up to the first.
			allocs := testing.AllocsPerRun(20, func() {
				if err := s.Score(dst[:4], x[:4], 2, tc.nz); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per Score call, want 0", allocs)
			}
		})
	}
}

func scale(v []float32, c float32) {
	for i := range v {
		v[i] *= c
	}
}

func TestModelScorerRefusals(t *testing.T) {
	t.Parallel()
	p := &fakePlan{ins: []graph.ValueInfo{vi("x", graph.Float32, -1, 2)}, outs: []graph.ValueInfo{vi("energy", graph.Float32, -1)}}
	spec := &importer.ModelSpec{XInput: "x", Output: "energy", Condition: importer.CondNone, Kind: importer.OutEnergy}
	if _, err := ModelSource(p, spec)(); !errors.Is(err, ErrEnergyModel) || !strings.Contains(err.Error(), "prepare its score graph −∇x E from EnergyScoreModel") {
		t.Errorf("energy model: got %v", err)
	}
	// A label model asked at a σ outside its schedule.
	p = &fakePlan{ins: []graph.ValueInfo{vi("x", graph.Float32, -1, 2), vi("labels", graph.Int64, -1)},
		outs: []graph.ValueInfo{vi("score", graph.Float32, -1, 2)}, f: func(out, x []float32, c float64) {}}
	spec = &importer.ModelSpec{XInput: "x", CondInput: "labels", Output: "score", Condition: importer.CondLabels, CondRank: 1, Kind: importer.OutScore, Sigmas: []float64{1, 0.1}}
	s, err := ModelSource(p, spec)()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Score(make([]float32, 2), make([]float32, 2), 1, VENoise(0, 0.3)); err == nil || !strings.Contains(err.Error(), "not in the σ schedule") {
		t.Errorf("σ outside the schedule: got %v", err)
	}
	// A time-conditioned model under a VE sampler.
	p.ins[1] = vi("t", graph.Int64, -1)
	spec = &importer.ModelSpec{XInput: "x", CondInput: "t", Output: "score", Condition: importer.CondTime, CondRank: 1, Kind: importer.OutEps}
	s, _ = ModelSource(p, spec)()
	if err := s.Score(make([]float32, 2), make([]float32, 2), 1, VENoise(0, 0.3)); err == nil || !strings.Contains(err.Error(), "ddpm") {
		t.Errorf("time model under ald: got %v", err)
	}
}

// TestGMMScorerMatchesReference checks the cached fast path against
// dataset.GMM.Score.
func TestGMMScorerMatchesReference(t *testing.T) {
	t.Parallel()
	const tol = 1e-6 // float32 rounding of scores of size ≲ 100
	g := dataset.Ring8()
	s := NewGMMScorer(g)
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 200)
	for i := range x {
		x[i] = float32(6 * (r.Float64() - 0.5))
	}
	x64 := make([]float64, len(x))
	for i, v := range x {
		x64[i] = float64(v)
	}
	dst := make([]float32, len(x))
	for _, sigma := range []float32{0.01, 0.3, 1, 5} {
		if err := s.Score(dst, x, 100, Noise{Sigma: sigma}); err != nil {
			t.Fatal(err)
		}
		want := g.Score(nil, x64, float64(sigma))
		for i := range want {
			if d := math.Abs(float64(dst[i]) - want[i]); d > tol*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("σ=%v: score[%d] = %v, reference %v", sigma, i, dst[i], want[i])
			}
		}
	}
}

// DDPM ancestral sampling of N(μ, s²I) data through an ε-model with a time
// input, going through the adapter: x_t ~ N(√ᾱ_t·μ, (ᾱ_t·s² + 1−ᾱ_t)I), whose
// exact score gives ε(x, t) = √(1−ᾱ_t)·(x − √ᾱ_t·μ)/(ᾱ_t·s² + 1 − ᾱ_t).
func TestDDPMGaussian(t *testing.T) {
	t.Parallel()
	const (
		// Standard errors with 20 000 samples are ≈ 0.004 for the mean and
		// ≈ 1% for the variance; the discretised reverse chain adds a little.
		meanTol   = 0.02
		varRelTol = 0.05
	)
	mu, s := []float64{1, -2}, 0.5
	betas := LinearBetas(DefaultBetaStart, DefaultBetaEnd, DefaultBetaSteps)
	abar := make([]float64, len(betas))
	prod := 1.0
	for i, b := range betas {
		prod *= 1 - b
		abar[i] = prod
	}
	p := &fakePlan{
		ins:  []graph.ValueInfo{vi("x", graph.Float32, -1, 2), vi("t", graph.Int64, -1)},
		outs: []graph.ValueInfo{vi("eps", graph.Float32, -1, 2)},
		f: func(out, x []float32, c float64) {
			a := abar[int(c)]
			for j := range x {
				out[j] = float32(math.Sqrt(1-a) * (float64(x[j]) - math.Sqrt(a)*mu[j]) / (a*s*s + 1 - a))
			}
		},
	}
	spec := &importer.ModelSpec{XInput: "x", CondInput: "t", Output: "eps", Condition: importer.CondTime, CondRank: 1, Kind: importer.OutEps, DataShape: []int64{2}}
	x, _, err := Collect(context.Background(), &DDPM{}, ModelSource(p, spec), Config{N: statSamples, Dim: 2, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 2; j++ {
		var m, v float64
		for i := j; i < len(x); i += 2 {
			m += float64(x[i])
		}
		m /= statSamples
		for i := j; i < len(x); i += 2 {
			v += (float64(x[i]) - m) * (float64(x[i]) - m)
		}
		v /= statSamples - 1
		if math.Abs(m-mu[j]) > meanTol || math.Abs(v/(s*s)-1) > varRelTol {
			t.Errorf("coordinate %d: mean %.4f variance %.4f, want %v and %v", j, m, v, mu[j], s*s)
		}
	}
}
