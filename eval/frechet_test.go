package eval

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// gaussianSet draws n vectors x = μ + L·z.
func gaussianSet(r *rand.Rand, n int, mu []float64, l *mat.Dense) []float32 {
	d := len(mu)
	out := make([]float32, n*d)
	z := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := range z {
			z[j] = r.NormFloat64()
		}
		for j := 0; j < d; j++ {
			v := mu[j]
			for k := 0; k < d; k++ {
				v += l.At(j, k) * z[k]
			}
			out[i*d+j] = float32(v)
		}
	}
	return out
}

func randomMatrix(r *rand.Rand, d int, scale float64) *mat.Dense {
	m := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			m.Set(i, j, scale*r.NormFloat64())
		}
	}
	return m
}

// The distance of a set to itself is 0 up to rounding, also in 64
// dimensions with one dead (constant) feature, whose covariance is
// singular as a ReLU layer's often is.
func TestFrechetDistanceOfASetWithItselfIsZero(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{1, 5, 64} {
		mu := make([]float64, d)
		for i := range mu {
			mu[i] = r.NormFloat64()
		}
		a := gaussianSet(r, 500, mu, randomMatrix(r, d, 1))
		if d > 1 {
			for i := 0; i < 500; i++ {
				a[i*d+d-1] = 0.25 // a dead unit
			}
		}
		g, err := FitGaussian(a, d)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := FrechetDistance(a, a, d)
		if err != nil {
			t.Fatal(err)
		}
		if tol := 1e-9 * mat.Trace(g.Cov); math.IsNaN(fd) || math.Abs(fd) > tol {
			t.Errorf("d=%d: FD(A, A) = %g, want 0 within %g", d, fd, tol)
		}
	}
}

// FrechetDistance agrees with the usual scipy.linalg.sqrtm computation on
// the committed fixture (testdata/frechet/make_fixture.py).
func TestFrechetDistanceMatchesScipy(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "frechet", "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		D       int       `json:"d"`
		A       []float64 `json:"a"`
		B       []float64 `json:"b"`
		FD      float64   `json:"fd"`
		FDAHalf float64   `json:"fd_a_half"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	a, b := f32(fx.A), f32(fx.B)
	d := fx.D
	for _, c := range []struct {
		name string
		x, y []float32
		want float64
	}{
		{"A vs B", a, b, fx.FD},
		{"A's halves", a[:150*d], a[150*d:], fx.FDAHalf},
	} {
		got, err := FrechetDistance(c.x, c.y, d)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-c.want) > 1e-9*math.Abs(c.want) {
			t.Errorf("%s: FD = %.15g, scipy %.15g", c.name, got, c.want)
		}
		back, _ := FrechetDistance(c.y, c.x, d)
		if math.Abs(back-got) > 1e-9*math.Abs(got) {
			t.Errorf("%s: FD(B, A) = %.15g ≠ FD(A, B) = %.15g", c.name, back, got)
		}
	}
}

// Two Gaussians whose covariances share eigenvectors, R·diag(a)·Rᵀ and
// R·diag(b)·Rᵀ, are at ‖μ₁ − μ₂‖² + Σ(√aᵢ − √bᵢ)²: exactly for the
// Gaussians themselves, and within the sampling error for sets drawn from
// them.
func TestFrechetDistanceClosedForm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const d = 4
	var qr mat.QR
	qr.Factorize(randomMatrix(r, d, 1))
	var rot mat.Dense
	qr.QTo(&rot)
	ea := []float64{4, 1, 0.25, 2}
	eb := []float64{1, 1, 1, 0.5}
	mu1 := []float64{1, 0, -1, 2}
	mu2 := []float64{0, 0.5, -1, 1}
	want := 0.0
	for i := range ea {
		want += (mu1[i]-mu2[i])*(mu1[i]-mu2[i]) + (math.Sqrt(ea[i])-math.Sqrt(eb[i]))*(math.Sqrt(ea[i])-math.Sqrt(eb[i]))
	}
	cov := func(e []float64) *mat.SymDense {
		var t1, t2 mat.Dense
		t1.Mul(&rot, mat.NewDiagDense(d, e))
		t2.Mul(&t1, rot.T())
		s := mat.NewSymDense(d, nil)
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				s.SetSym(i, j, t2.At(i, j))
			}
		}
		return s
	}
	got, err := FrechetGaussians(&GaussianFit{mu1, cov(ea)}, &GaussianFit{mu2, cov(eb)})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-12*want {
		t.Errorf("FD of the Gaussians = %.15g, closed form %.15g", got, want)
	}

	root := func(e []float64) *mat.Dense {
		s := make([]float64, len(e))
		for i, v := range e {
			s[i] = math.Sqrt(v)
		}
		var m mat.Dense
		m.Mul(&rot, mat.NewDiagDense(d, s))
		return &m
	}
	const n = 40000
	fd, err := FrechetDistance(gaussianSet(r, n, mu1, root(ea)), gaussianSet(r, n, mu2, root(eb)), d)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(fd-want) > 0.03*want {
		t.Errorf("FD of %d samples each = %g, closed form %g", n, fd, want)
	}
}

func TestFitGaussianRefusesTooFewOrNonFinite(t *testing.T) {
	if _, err := FitGaussian([]float32{1, 2, 3}, 3); err == nil {
		t.Error("one vector: no error")
	}
	if _, err := FitGaussian([]float32{1, 2, 3}, 2); err == nil {
		t.Error("3 values in vectors of 2: no error")
	}
	if _, err := FitGaussian([]float32{1, float32(math.NaN()), 3, 4}, 2); err == nil {
		t.Error("NaN: no error")
	}
	if _, err := FrechetDistance([]float32{1, 2, 3, 4}, []float32{1, 2, 3, 4, 5, 6}, 3); err == nil {
		t.Error("mismatched dimensions: no error")
	}
}

func TestClassHistogramAndTV(t *testing.T) {
	h, err := ClassHistogram([]int{0, 2, 2, 3}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.25, 0, 0.5, 0.25}; !equalFloats(h, want) {
		t.Errorf("histogram %v, want %v", h, want)
	}
	// Uniform over 4: |0.25−0.25| + 0.25 + 0.25 + 0 = 0.5, halved.
	if got := TVToUniform(h); math.Abs(got-0.25) > 1e-15 {
		t.Errorf("TV to uniform = %g, want 0.25", got)
	}
	if got := TVToUniform([]float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}); math.Abs(got) > 1e-15 {
		t.Errorf("TV of the uniform histogram to uniform = %g, want 0", got)
	}
	if got := TVToUniform([]float64{0, 0, 1, 0, 0, 0, 0, 0, 0, 0}); math.Abs(got-0.9) > 1e-15 {
		t.Errorf("TV of one class to uniform over 10 = %g, want 1 − 1/10", got)
	}
	if got, _ := ClassTV([]float64{1, 0}, []float64{0, 1}); got != 1 {
		t.Errorf("TV of disjoint histograms = %g, want 1", got)
	}
	if got, _ := ClassTV(h, h); got != 0 {
		t.Errorf("TV of a histogram to itself = %g, want 0", got)
	}
	if _, err := ClassTV([]float64{1}, []float64{0.5, 0.5}); err == nil {
		t.Error("TV over different class counts: no error")
	}
	if _, err := ClassHistogram([]int{0, 4}, 4); err == nil {
		t.Error("label 4 of 4 classes: no error")
	}
	if _, err := ClassHistogram(nil, 4); err == nil {
		t.Error("no labels: no error")
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
