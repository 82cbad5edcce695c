package eval_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

// mlp64 is the fixture ncsn_mlp (concat(x, log σ) → 3 × (Linear, SiLU) →
// Linear, ÷ σ) in float64, with its ONNX initializers as weights: an outside
// reference for the objectives that needs neither backend. Weights are
// PyTorch's Linear layout, [out, in].
type mlp64 struct {
	w, b [][]float64
	out  []int
}

func newMLP64(t *testing.T, m *graph.Model) *mlp64 {
	t.Helper()
	inits := m.Graph.InitializerMap()
	r := &mlp64{}
	for _, l := range []string{"l1", "l2", "l3", "l4"} {
		w, b := inits[l+".weight"], inits[l+".bias"]
		if w == nil || b == nil {
			t.Fatalf("ncsn_mlp fixture has no %s.weight or %s.bias", l, l)
		}
		r.w, r.b = append(r.w, f64(w.F32)), append(r.b, f64(b.F32))
		r.out = append(r.out, int(w.Shape[0]))
	}
	return r
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// score returns s(x, σ) and its directional derivative J·v (forward mode).
func (m *mlp64) score(x []float64, sigma float64, v []float64) (s, jv []float64) {
	h := append(append([]float64(nil), x...), math.Log(sigma))
	dh := append(append([]float64(nil), v...), 0)
	for l := range m.w {
		in := len(h)
		a, da := make([]float64, m.out[l]), make([]float64, m.out[l])
		for o := range a {
			a[o] = m.b[l][o]
			for i := 0; i < in; i++ {
				a[o] += m.w[l][o*in+i] * h[i]
				da[o] += m.w[l][o*in+i] * dh[i]
			}
		}
		if l < len(m.w)-1 { // SiLU: a·σ(a), derivative σ(a)(1 + a(1 − σ(a)))
			for o := range a {
				g := 1 / (1 + math.Exp(-a[o]))
				da[o] *= g * (1 + a[o]*(1-g))
				a[o] *= g
			}
		}
		h, dh = a, da
	}
	for i := range h {
		h[i] /= sigma
		dh[i] /= sigma
	}
	return h, dh
}

// refTol bounds the float64 reference against PyTorch's float32 outputs and
// against Evaluate's float32 objective, relative to the largest value.
const refTol = 1e-5

// TestMLP64MatchesPyTorch anchors the float64 reference to the fixture's
// PyTorch outputs: the score, and vᵀJv against v·(Jᵀv) from PyTorch's VJP.
func TestMLP64MatchesPyTorch(t *testing.T) {
	dir := testenv.Path(t, "testdata", "models", "ncsn_mlp")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ref := newMLP64(t, m)
	read := func(p string) []float32 {
		x, err := tensorio.ReadNpyFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return x.F32
	}
	x, sigma, want := read("inputs/x.npy"), read("inputs/sigma.npy"), read("expected/score.npy")
	v, gradX := read("vjp/v.npy"), read("vjp/grad_x.npy")
	var gapS, maxS, gapJ, maxJ float64
	for i := range sigma {
		s, jv := ref.score(f64(x[2*i:2*i+2]), float64(sigma[i]), f64(v[2*i:2*i+2]))
		var vjv, vjtv float64
		for j := 0; j < 2; j++ {
			gapS = max(gapS, math.Abs(s[j]-float64(want[2*i+j])))
			maxS = max(maxS, math.Abs(float64(want[2*i+j])))
			vjv += float64(v[2*i+j]) * jv[j]
			vjtv += float64(v[2*i+j]) * float64(gradX[2*i+j])
		}
		gapJ, maxJ = max(gapJ, math.Abs(vjv-vjtv)), max(maxJ, math.Abs(vjtv))
	}
	if gapS > refTol*maxS || gapJ > refTol*maxJ {
		t.Errorf("float64 MLP against PyTorch: score gap %.3g of %.3g, vᵀJv gap %.3g of %.3g", gapS, maxS, gapJ, maxJ)
	}
}

// ssmReference is SSM at one level from Evaluate's own draws (eval.Draws),
// in float64 through mlp64: the mean over samples and projections of
// vᵀJv + ½(vᵀs)².
func ssmReference(t *testing.T, m *graph.Model, x *graph.Tensor, o eval.ObjectiveOptions) float64 {
	t.Helper()
	xt, v, err := eval.Draws(x, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	ref := newMLP64(t, m)
	n, d := int(x.Shape[0]), int(x.Shape[1])
	k := len(v) / (n * d)
	var sum float64
	for p := 0; p < k; p++ {
		for i := 0; i < n; i++ {
			vi := f64(v[(p*n+i)*d : (p*n+i+1)*d])
			s, jv := ref.score(f64(xt[i*d:(i+1)*d]), o.Sigmas[0], vi)
			var vjv, vs float64
			for j := range vi {
				vjv += vi[j] * jv[j]
				vs += vi[j] * s[j]
			}
			sum += vjv + 0.5*vs*vs
		}
	}
	return sum / float64(k*n)
}
