package eval

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// GaussianFit is a mean and covariance fitted to a set of vectors.
type GaussianFit struct {
	Mean []float64
	Cov  *mat.SymDense // unbiased (divided by n−1)
}

// FitGaussian fits a Gaussian to n vectors of d values (x row-major,
// n·d values, n ≥ 2), in float64.
func FitGaussian(x []float32, d int) (*GaussianFit, error) {
	if d < 1 || len(x)%d != 0 || len(x)/d < 2 {
		return nil, fmt.Errorf("eval: a Gaussian fit needs at least 2 vectors of %d values, got %d values", d, len(x))
	}
	n := len(x) / d
	mu := make([]float64, d)
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("eval: value %d of vector %d is %v", j, i, v)
			}
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	// Centred rows, then one symmetric rank-n update: Σ = CᵀC/(n−1).
	c := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		row := c.RawRowView(i)
		for j, v := range x[i*d : (i+1)*d] {
			row[j] = float64(v) - mu[j]
		}
	}
	cov := mat.NewSymDense(d, nil)
	cov.SymRankK(cov, 1/float64(n-1), c.T())
	return &GaussianFit{Mean: mu, Cov: cov}, nil
}

// FrechetDistance is the Fréchet (2-Wasserstein) distance squared between
// Gaussian fits of two sets of d-dimensional vectors — FID's formula when
// the vectors are a classifier's features (Heusel et al. 2017):
//
//	‖μ_A − μ_B‖² + Tr(Σ_A + Σ_B − 2(Σ_A Σ_B)^{1/2})
//
// See FrechetGaussians for how the matrix square root is taken.
func FrechetDistance(a, b []float32, d int) (float64, error) {
	ga, err := FitGaussian(a, d)
	if err != nil {
		return 0, fmt.Errorf("eval: set A: %w", trimEval(err))
	}
	gb, err := FitGaussian(b, d)
	if err != nil {
		return 0, fmt.Errorf("eval: set B: %w", trimEval(err))
	}
	return FrechetGaussians(ga, gb)
}

// FrechetGaussians is the Fréchet distance squared between two Gaussians.
// Tr((Σ_A Σ_B)^{1/2}) is computed in the symmetric form
// Tr((Σ_A^{1/2} Σ_B Σ_A^{1/2})^{1/2}) — the same eigenvalues, since
// Σ_A Σ_B is similar to Σ_A^{1/2} Σ_B Σ_A^{1/2} — with two symmetric
// eigendecompositions, so no non-symmetric square root (and no complex
// rounding) is involved; eigenvalues that rounding leaves slightly negative
// are taken as 0. The result can be a rounding error below 0 for equal
// inputs; it is returned as computed.
func FrechetGaussians(a, b *GaussianFit) (float64, error) {
	d := len(a.Mean)
	if d == 0 || len(b.Mean) != d || a.Cov.SymmetricDim() != d || b.Cov.SymmetricDim() != d {
		return 0, fmt.Errorf("eval: Fréchet distance of Gaussians of dimensions %d and %d", d, len(b.Mean))
	}
	var m2 float64
	for i := range a.Mean {
		dm := a.Mean[i] - b.Mean[i]
		m2 += dm * dm
	}
	sa, err := sqrtSym(a.Cov)
	if err != nil {
		return 0, err
	}
	// M = Σ_A^{1/2} Σ_B Σ_A^{1/2}, symmetrised against rounding.
	var t, m mat.Dense
	t.Mul(sa, b.Cov)
	m.Mul(&t, sa)
	ms := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			ms.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	vals, err := eigenvaluesSym(ms)
	if err != nil {
		return 0, err
	}
	var trSqrt float64
	for _, v := range vals {
		trSqrt += math.Sqrt(max(v, 0))
	}
	return m2 + mat.Trace(a.Cov) + mat.Trace(b.Cov) - 2*trSqrt, nil
}

// sqrtSym is the symmetric positive semi-definite square root U√ΛUᵀ of s,
// negative eigenvalues taken as 0.
func sqrtSym(s *mat.SymDense) (*mat.Dense, error) {
	var e mat.EigenSym
	if !e.Factorize(s, true) {
		return nil, errors.New("eval: the eigendecomposition of a covariance did not converge")
	}
	vals := e.Values(nil)
	var u mat.Dense
	e.VectorsTo(&u)
	d := len(vals)
	us := mat.NewDense(d, d, nil)
	for j, v := range vals {
		r := math.Sqrt(max(v, 0))
		for i := 0; i < d; i++ {
			us.Set(i, j, u.At(i, j)*r)
		}
	}
	var out mat.Dense
	out.Mul(us, u.T())
	return &out, nil
}

func eigenvaluesSym(s *mat.SymDense) ([]float64, error) {
	var e mat.EigenSym
	if !e.Factorize(s, false) {
		return nil, errors.New("eval: the eigendecomposition in the Fréchet distance did not converge")
	}
	return e.Values(nil), nil
}

// ClassHistogram is the fraction of labels equal to each of k classes.
func ClassHistogram(labels []int, k int) ([]float64, error) {
	if k < 1 || len(labels) == 0 {
		return nil, fmt.Errorf("eval: a class histogram needs labels and classes, got %d labels of %d classes", len(labels), k)
	}
	h := make([]float64, k)
	for i, l := range labels {
		if l < 0 || l >= k {
			return nil, fmt.Errorf("eval: label %d is %d, outside 0 … %d", i, l, k-1)
		}
		h[l]++
	}
	for i := range h {
		h[i] /= float64(len(labels))
	}
	return h, nil
}

// ClassTV is the total-variation distance ½Σ|p_i − q_i| between two
// distributions over the same classes.
func ClassTV(p, q []float64) (float64, error) {
	if len(p) == 0 || len(p) != len(q) {
		return 0, fmt.Errorf("eval: total variation of distributions over %d and %d classes", len(p), len(q))
	}
	var s float64
	for i := range p {
		s += math.Abs(p[i] - q[i])
	}
	return s / 2, nil
}

// TVToUniform is the total-variation distance from p to the uniform
// distribution over its classes: 0 when every class is equally frequent,
// 1 − 1/K when all mass is on one class.
func TVToUniform(p []float64) float64 {
	u := make([]float64, len(p))
	for i := range u {
		u[i] = 1 / float64(len(p))
	}
	tv, _ := ClassTV(p, u)
	return tv
}

// trimEval drops a nested "eval: " prefix.
func trimEval(err error) error {
	const p = "eval: "
	if s := err.Error(); len(s) > len(p) && s[:len(p)] == p {
		return prefixless{s[len(p):], err}
	}
	return err
}

type prefixless struct {
	msg string
	err error
}

func (p prefixless) Error() string { return p.msg }
func (p prefixless) Unwrap() error { return p.err }
