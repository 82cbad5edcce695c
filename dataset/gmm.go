package dataset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// GMM is a mixture of isotropic Gaussians: component k has weight
// Weights[k], mean Means[k] (a point in Dim() dimensions) and standard
// deviation Stds[k] in every coordinate. Build one with NewGMM, which checks
// it; the methods assume a valid mixture.
type GMM struct {
	Weights []float64
	Means   [][]float64
	Stds    []float64

	logW []float64 // log Weights, cached by NewGMM
}

// NewGMM checks and normalises a mixture: weights must be positive (they are
// scaled to sum to one), means of one dimension, standard deviations
// positive. The slices are copied.
func NewGMM(weights []float64, means [][]float64, stds []float64) (*GMM, error) {
	k := len(weights)
	if k == 0 {
		return nil, errors.New("dataset: a mixture needs at least one component")
	}
	if len(means) != k || len(stds) != k {
		return nil, fmt.Errorf("dataset: %d weights, %d means and %d stds; want one of each per component", k, len(means), len(stds))
	}
	d := len(means[0])
	if d == 0 {
		return nil, errors.New("dataset: component means must have at least one dimension")
	}
	g := &GMM{Weights: make([]float64, k), Means: make([][]float64, k), Stds: make([]float64, k), logW: make([]float64, k)}
	var sum float64
	for i, w := range weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("dataset: weight %d is %v; weights must be positive and finite", i, w)
		}
		sum += w
	}
	for i := range weights {
		if len(means[i]) != d {
			return nil, fmt.Errorf("dataset: mean %d has %d dimensions, mean 0 has %d", i, len(means[i]), d)
		}
		if !(stds[i] > 0) || math.IsInf(stds[i], 0) {
			return nil, fmt.Errorf("dataset: std %d is %v; stds must be positive and finite", i, stds[i])
		}
		g.Weights[i] = weights[i] / sum
		g.logW[i] = math.Log(g.Weights[i])
		g.Means[i] = append([]float64(nil), means[i]...)
		g.Stds[i] = stds[i]
	}
	return g, nil
}

// Ring8Weights are the mode weights of Ring8: proportional to 1, 2, …, 8, so
// the lightest mode has an eighth of the heaviest one's mass. Samplers that
// do not mix between modes get them visibly wrong.
var Ring8Weights = []float64{1, 2, 3, 4, 5, 6, 7, 8}

// Ring8 is the test mixture of the samplers: eight modes on a circle of
// radius 2 around the origin (mode k at angle 2πk/8), each with standard
// deviation 0.1, with the unequal weights Ring8Weights.
func Ring8() *GMM {
	const radius, std = 2.0, 0.1
	means := make([][]float64, 8)
	stds := make([]float64, 8)
	for k := range means {
		a := 2 * math.Pi * float64(k) / 8
		means[k] = []float64{radius * math.Cos(a), radius * math.Sin(a)}
		stds[k] = std
	}
	g, err := NewGMM(Ring8Weights, means, stds)
	if err != nil {
		panic(err) // the constants above are valid
	}
	return g
}

// Dim is the dimension of the space the mixture lives in.
func (g *GMM) Dim() int { return len(g.Means[0]) }

// Len is the number of components.
func (g *GMM) Len() int { return len(g.Weights) }

// Sample draws n points into dst (n×Dim values, row-major), allocating when
// dst is too short, and returns it. Randomness comes from r only.
func (g *GMM) Sample(dst []float64, n int, r *rand.Rand) []float64 {
	d := g.Dim()
	if len(dst) < n*d {
		dst = make([]float64, n*d)
	}
	dst = dst[:n*d]
	for i := 0; i < n; i++ {
		k := g.pick(r.Float64())
		for j := 0; j < d; j++ {
			dst[i*d+j] = g.Means[k][j] + g.Stds[k]*r.NormFloat64()
		}
	}
	return dst
}

// pick maps u ∈ [0,1) to a component by inverting the weights' CDF.
func (g *GMM) pick(u float64) int {
	for k, w := range g.Weights {
		if u < w {
			return k
		}
		u -= w
	}
	return len(g.Weights) - 1
}

// LogProb is log p(x) at one point x (Dim values).
func (g *GMM) LogProb(x []float64) float64 { return g.LogProbSigma(x, 0) }

// LogProbSigma is log p_σ(x) of the mixture convolved with N(0, σ²I): the
// same mixture with each component's variance increased by σ².
func (g *GMM) LogProbSigma(x []float64, sigma float64) float64 {
	d := float64(g.Dim())
	m := math.Inf(-1)
	terms := make([]float64, g.Len())
	for k := range g.Weights {
		v := g.Stds[k]*g.Stds[k] + sigma*sigma
		terms[k] = g.logW[k] - sqDist(x, g.Means[k])/(2*v) - d/2*math.Log(2*math.Pi*v)
		m = math.Max(m, terms[k])
	}
	var s float64
	for _, t := range terms {
		s += math.Exp(t - m)
	}
	return m + math.Log(s)
}

// Score writes ∇x log p_σ(x) for the points x (n×Dim values, row-major) into
// dst, allocating when dst is too short, and returns it. σ = 0 gives the
// score of the mixture itself. The responsibilities are computed in log
// space, so points far from every mode get the score of the nearest ones
// rather than 0/0.
func (g *GMM) Score(dst, x []float64, sigma float64) []float64 {
	d := g.Dim()
	n := len(x) / d
	if len(dst) < n*d {
		dst = make([]float64, n*d)
	}
	dst = dst[:n*d]
	var stack [16]float64
	logr := stack[:0]
	if g.Len() > len(stack) {
		logr = make([]float64, 0, g.Len())
	}
	logr = logr[:g.Len()]
	for i := 0; i < n; i++ {
		xi := x[i*d : (i+1)*d]
		g.scoreOne(dst[i*d:(i+1)*d], xi, sigma, logr)
	}
	return dst
}

// scoreOne is Σ_k r_k(x)·(μ_k − x)/v_k with v_k = s_k² + σ² and r_k the
// posterior responsibility of component k at x under p_σ.
func (g *GMM) scoreOne(dst, x []float64, sigma float64, logr []float64) {
	d := float64(len(x))
	m := math.Inf(-1)
	for k := range g.Weights {
		v := g.Stds[k]*g.Stds[k] + sigma*sigma
		logr[k] = g.logW[k] - sqDist(x, g.Means[k])/(2*v) - d/2*math.Log(v)
		m = math.Max(m, logr[k])
	}
	var z float64
	for k := range logr {
		logr[k] = math.Exp(logr[k] - m)
		z += logr[k]
	}
	for j := range dst {
		dst[j] = 0
	}
	for k, r := range logr {
		c := r / z / (g.Stds[k]*g.Stds[k] + sigma*sigma)
		for j := range dst {
			dst[j] += c * (g.Means[k][j] - x[j])
		}
	}
}

// Nearest is the index of the component whose mean is closest to x, which
// is how tests assign samples to modes.
func (g *GMM) Nearest(x []float64) int {
	best, bd := 0, math.Inf(1)
	for k, mu := range g.Means {
		if dd := sqDist(x, mu); dd < bd {
			best, bd = k, dd
		}
	}
	return best
}

func sqDist(a, b []float64) float64 {
	var s float64
	for i := range a {
		t := a[i] - b[i]
		s += t * t
	}
	return s
}
