package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/ebmrun/ebmrun/internal/membudget"
)

// Float is the element type of sample sets: the runtime's float32, or
// float64.
type Float interface{ ~float32 | ~float64 }

// Defaults of Options.
const (
	// DefaultMaxSamples caps the points of each set the kernel metrics
	// (MMD², energy distance) use. Their cost is quadratic: the pooled
	// N×N matrix (N ≤ 2·cap, 32 MB at the default) and one matrix product
	// with a column per permutation. The statistics' own noise at this
	// size (standard error of MMD² of order 1/cap under the null) is below
	// what distinguishes a good sampler from a bad one.
	DefaultMaxSamples = 1000
	// DefaultPermutations gives p-values down to 1/201 ≈ 0.005.
	DefaultPermutations = 200
	// MaxPermutations bounds Permutations, so that their count cannot
	// overflow the sizes computed from it.
	MaxPermutations = 1_000_000_000
	// DefaultProjections is the number of random directions of the sliced
	// Wasserstein distance.
	DefaultProjections = 128
)

// BandwidthFactors are the RBF bandwidths of MMD², as multiples of the
// median pairwise distance of the pooled sample: the kernel is the mean of
// exp(−‖a−b‖²/(2h²)) over h = f·median. Several bandwidths keep the test
// sensitive both to fine structure (missing small modes) and to gross
// shifts, where one bandwidth is blind to one or the other. Powers of two,
// so one exp per pair gives all five kernels.
var BandwidthFactors = [5]float64{0.25, 0.5, 1, 2, 4}

// Options are the settings of the metrics. The zero value is ready to use.
type Options struct {
	// Seed fixes the subsets, permutations and projections.
	Seed uint64
	// MaxSamples caps the points of each set the kernel metrics use; larger
	// sets are subsampled at random. 0 means DefaultMaxSamples.
	MaxSamples int
	// Permutations is the number of label permutations of the tests; 0
	// means DefaultPermutations, a negative value runs no test (PValue is
	// NaN).
	Permutations int
	// Projections is the number of directions of the sliced Wasserstein
	// distance; 0 means DefaultProjections.
	Projections int
}

// Validate reports settings that cannot work.
func (o Options) Validate() error {
	if o.MaxSamples < 0 || o.MaxSamples == 1 {
		return fmt.Errorf("eval: MaxSamples is %d; want 0 (the default, %d) or at least 2", o.MaxSamples, DefaultMaxSamples)
	}
	if o.Permutations > MaxPermutations {
		return fmt.Errorf("eval: Permutations is %d; at most %d (p-values down to 1e-9)", o.Permutations, MaxPermutations)
	}
	if o.Projections < 0 {
		return fmt.Errorf("eval: Projections is %d; want 0 (the default, %d) or more", o.Projections, DefaultProjections)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxSamples == 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.Permutations == 0 {
		o.Permutations = DefaultPermutations
	}
	if o.Projections == 0 {
		o.Projections = DefaultProjections
	}
	return o
}

// Random streams, one per use, so that changing one setting (more
// permutations, say) does not change the others' draws.
const (
	streamSubsample = iota + 1
	streamPermute
	streamProject
	streamMedian
)

func (o Options) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(o.Seed, stream)) }

// Estimate is one metric between two sample sets.
type Estimate struct {
	Value float64
	// StdErr is the estimated standard error of Value, NaN where there is
	// none. For MMD² and the energy distance it is the first-order (delta
	// method) error of the U-statistic: sound when the distributions
	// differ, near 0 when they are equal, where the p-value is the
	// measure to read. For the sliced Wasserstein distance it is the error
	// of averaging over random directions, for these samples.
	StdErr float64
	// PValue is the permutation test's p-value for "x and y come from one
	// distribution", NaN when no test was run.
	PValue float64
}

// Report is what Compare measures.
type Report struct {
	MMD2, Energy, SW1 Estimate
	// MedianDistance is the median pairwise distance of the pooled
	// (subsampled) sample, Bandwidths the RBF bandwidths made from it and
	// MMD2PerBandwidth the unbiased MMD² of each kernel alone.
	MedianDistance   float64
	Bandwidths       []float64
	MMD2PerBandwidth []float64
	// NX and NY are the sizes of the sets, UsedX and UsedY the points the
	// kernel metrics used, Dim the dimension.
	NX, NY, UsedX, UsedY, Dim int
}

// Compare measures MMD², energy distance and sliced Wasserstein-1 between x
// and y (nx×d and ny×d values, row-major), sharing the pairwise distances.
func Compare[F Float](x, y []F, d int, o Options) (*Report, error) {
	p, err := prepare(x, y, d, o)
	if err != nil {
		return nil, err
	}
	if err := p.o.slicedBudget(p.nx, p.ny, d); err != nil {
		return nil, err
	}
	r := p.report()
	a := p.sqDists()
	r.MedianDistance = p.median(a)
	sqrtAll(a)
	r.Energy = p.energy(a)
	r.MMD2, r.Bandwidths, r.MMD2PerBandwidth = p.mmd(a, r.MedianDistance, false)
	r.SW1 = slicedW1(x, y, d, p.o)
	return r, nil
}

// MMD2 is the unbiased squared maximum mean discrepancy between x and y
// (nx×d and ny×d values) under the RBF mixture kernel of BandwidthFactors,
// with its permutation p-value.
func MMD2[F Float](x, y []F, d int, o Options) (Estimate, error) {
	p, err := prepare(x, y, d, o)
	if err != nil {
		return Estimate{}, err
	}
	a := p.sqDists()
	e, _, _ := p.mmd(a, p.median(a), true)
	return e, nil
}

// EnergyDistance is the unbiased energy distance
// 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ between x and y (nx×d and ny×d values),
// with its permutation p-value. It is zero exactly when the distributions
// are equal and, unlike MMD², has no bandwidth to choose.
func EnergyDistance[F Float](x, y []F, d int, o Options) (Estimate, error) {
	p, err := prepare(x, y, d, o)
	if err != nil {
		return Estimate{}, err
	}
	a := p.sqDists()
	sqrtAll(a)
	return p.energy(a), nil
}

// SlicedWasserstein1 is the mean, over Options.Projections directions drawn
// uniformly on the sphere, of the exact Wasserstein-1 distance between the
// empirical distributions of x and y projected on the direction. It uses
// every point. In one dimension it is the Wasserstein-1 distance itself (a
// shift by δ gives δ); in d dimensions a shift by a vector of length δ
// gives δ·E|θ₁|, about δ·√(2/(πd)).
func SlicedWasserstein1[F Float](x, y []F, d int, o Options) (Estimate, error) {
	if err := check(x, y, d, o); err != nil {
		return Estimate{}, err
	}
	o = o.withDefaults()
	if err := o.slicedBudget(len(x)/d, len(y)/d, d); err != nil {
		return Estimate{}, err
	}
	return slicedW1(x, y, d, o), nil
}

func check[F Float](x, y []F, d int, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if d < 1 {
		return fmt.Errorf("eval: dimension %d; want at least 1", d)
	}
	for _, s := range []struct {
		name string
		v    []F
	}{{"x", x}, {"y", y}} {
		if len(s.v)%d != 0 {
			return fmt.Errorf("eval: %s has %d values, not a whole number of %d-dimensional points", s.name, len(s.v), d)
		}
		if len(s.v)/d < 2 {
			return fmt.Errorf("eval: %s has %d points; the metrics need at least 2 in each set", s.name, len(s.v)/d)
		}
		for i, v := range s.v {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("eval: %s point %d has a non-finite value %v", s.name, i/d, f)
			}
		}
	}
	return nil
}

// kernelBudget refuses, before anything is allocated, kernel metrics whose
// float64 arrays do not fit the memory budget: the N×N distance matrix of
// the pooled subsample, the N×(permutations+2) split masks and their row
// sums, and the pooled points.
func (o Options) kernelBudget(nx, ny, d int) error {
	N := int64(min(nx, o.MaxSamples) + min(ny, o.MaxSamples))
	C := int64(max(o.Permutations, 0) + 2)
	elems := membudget.Product(N, N+2*C+int64(d)) // -1 when it overflows
	if err := membudget.Elems(fmt.Sprintf("eval: MMD² and energy distance over %d points with %d permutations", N, C-2), elems, 8); err != nil {
		return fmt.Errorf("%w; fewer samples (MaxSamples) or permutations need less", err)
	}
	return nil
}

// slicedBudget does the same for the sliced distance: every point's
// coordinate along every direction, the directions, and each worker's two
// sorted columns.
func (o Options) slicedBudget(nx, ny, d int) error {
	K := int64(o.Projections)
	elems := membudget.Product(K, int64(nx+ny+d))
	if elems >= 0 {
		elems += int64(workerCount(o.Projections)) * int64(nx+ny)
	}
	if err := membudget.Elems(fmt.Sprintf("eval: sliced Wasserstein-1 of %d and %d points along %d directions", nx, ny, K), elems, 8); err != nil {
		return fmt.Errorf("%w; fewer projections need less", err)
	}
	return nil
}

// pooled is the (subsampled) pooled sample the kernel metrics work on:
// m rows of x then n rows of y, centred on their joint mean so squared
// distances computed from inner products lose little to cancellation.
type pooled struct {
	z       []float64
	m, n, d int
	nx, ny  int
	o       Options
}

func prepare[F Float](x, y []F, d int, o Options) (*pooled, error) {
	if err := check(x, y, d, o); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if err := o.kernelBudget(len(x)/d, len(y)/d, d); err != nil {
		return nil, err
	}
	r := o.rng(streamSubsample)
	xi := subset(len(x)/d, o.MaxSamples, r)
	yi := subset(len(y)/d, o.MaxSamples, r)
	p := &pooled{m: len(xi), n: len(yi), d: d, nx: len(x) / d, ny: len(y) / d, o: o}
	p.z = make([]float64, 0, (p.m+p.n)*d)
	for _, i := range xi {
		for _, v := range x[i*d : (i+1)*d] {
			p.z = append(p.z, float64(v))
		}
	}
	for _, i := range yi {
		for _, v := range y[i*d : (i+1)*d] {
			p.z = append(p.z, float64(v))
		}
	}
	mean := make([]float64, d)
	for i := 0; i < len(p.z); i += d {
		for j := range mean {
			mean[j] += p.z[i+j]
		}
	}
	N := float64(p.m + p.n)
	for i := 0; i < len(p.z); i += d {
		for j := range mean {
			p.z[i+j] -= mean[j] / N
		}
	}
	return p, nil
}

func (p *pooled) report() *Report {
	return &Report{NX: p.nx, NY: p.ny, UsedX: p.m, UsedY: p.n, Dim: p.d}
}

// subset is all of 0..n−1 when n ≤ limit, else limit of them at random.
func subset(n, limit int, r *rand.Rand) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if n <= limit {
		return idx
	}
	for i := 0; i < limit; i++ { // partial Fisher–Yates
		j := i + r.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	idx = idx[:limit]
	slices.Sort(idx) // keep the data's order; it costs nothing and reads better in a debugger
	return idx
}

// sqDists is the N×N matrix of squared distances of the pooled sample,
// ‖a‖² + ‖b‖² − 2a·b with the inner products from one matrix product.
func (p *pooled) sqDists() []float64 {
	N, d := p.m+p.n, p.d
	a := make([]float64, N*N)
	z := blas64.General{Rows: N, Cols: d, Data: p.z, Stride: d}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, z, z, 0, blas64.General{Rows: N, Cols: N, Data: a, Stride: N})
	sq := make([]float64, N)
	for i := range sq {
		sq[i] = a[i*N+i]
	}
	parallel(N, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			row := a[i*N : (i+1)*N]
			for j := range row {
				row[j] = max(sq[i]+sq[j]-2*row[j], 0)
			}
			row[i] = 0
		}
	})
	return a
}

// maxMedianPairs bounds the pairs the median distance is taken over.
const maxMedianPairs = 200_000

// median is the median pairwise distance of the pooled sample, from a
// matrix of squared distances; over a random subset of pairs when there
// are many. When more than half the pairs coincide (discrete data) it is
// the mean distance instead, and 1 when every point is the same.
func (p *pooled) median(a []float64) float64 {
	N := p.m + p.n
	var d2 []float64
	if pairs := N * (N - 1) / 2; pairs <= maxMedianPairs {
		d2 = make([]float64, 0, pairs)
		for i := 0; i < N; i++ {
			d2 = append(d2, a[i*N+i+1:(i+1)*N]...)
		}
	} else {
		r := p.o.rng(streamMedian)
		d2 = make([]float64, maxMedianPairs)
		for k := range d2 {
			i := r.IntN(N)
			j := r.IntN(N - 1)
			if j >= i {
				j++
			}
			d2[k] = a[i*N+j]
		}
	}
	slices.Sort(d2)
	if med := math.Sqrt(d2[len(d2)/2]); med > 0 {
		return med
	}
	var sum float64
	for _, v := range d2 {
		sum += math.Sqrt(v)
	}
	if mean := sum / float64(len(d2)); mean > 0 {
		return mean
	}
	return 1
}

func sqrtAll(a []float64) {
	parallel(len(a), func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			a[i] = math.Sqrt(a[i])
		}
	})
}

// energy is the energy distance from a matrix of distances.
func (p *pooled) energy(dist []float64) Estimate {
	t := p.twoSample(dist)
	e := Estimate{Value: -t.stat, StdErr: t.stderr, PValue: math.NaN()}
	if t.perm != nil {
		// The energy distance is −stat: a permutation is at least as
		// extreme when its stat is at most the observed one.
		e.PValue = pvalue(t.perm, func(s float64) bool { return s <= t.stat })
	}
	return e
}

// mmd turns a into the mixture kernel matrix in place — from squared
// distances when squared, else from distances — and returns MMD² under it,
// the bandwidths, and MMD² under each kernel alone.
func (p *pooled) mmd(a []float64, median float64, squared bool) (Estimate, []float64, []float64) {
	N := p.m + p.n
	nk := len(BandwidthFactors)
	bw := make([]float64, nk)
	for k, f := range BandwidthFactors {
		bw[k] = f * median
	}
	inv := 1 / (2 * median * median)
	// Per worker, per kernel: the sums over x–x, y–y and x–y pairs.
	workers := workerCount(N)
	acc := make([][5][3]float64, workers)
	parallel(N, func(lo, hi, w int) {
		s := &acc[w]
		for i := lo; i < hi; i++ {
			row := a[i*N : (i+1)*N]
			for j, v := range row {
				if !squared {
					v *= v
				}
				e1 := math.Exp(-v * inv) // bandwidth 1·median
				e4 := e1 * e1
				e4 *= e4 // 0.5·median: e1^4
				e16 := e4 * e4
				e16 *= e16                     // 0.25·median: e1^16
				eq := math.Sqrt(math.Sqrt(e1)) // 2·median: e1^(1/4)
				es := math.Sqrt(math.Sqrt(eq)) // 4·median: e1^(1/16)
				row[j] = (e16 + e4 + e1 + eq + es) / 5
				if j == i {
					continue
				}
				blk := 2 // x–y
				if i < p.m && j < p.m {
					blk = 0
				} else if i >= p.m && j >= p.m {
					blk = 1
				}
				s[0][blk] += e16
				s[1][blk] += e4
				s[2][blk] += e1
				s[3][blk] += eq
				s[4][blk] += es
			}
		}
	})
	per := make([]float64, nk)
	m, n := float64(p.m), float64(p.n)
	for k := range per {
		var xx, yy, xy float64
		for w := range acc {
			xx += acc[w][k][0]
			yy += acc[w][k][1]
			xy += acc[w][k][2] / 2 // each x–y pair is met from both rows
		}
		per[k] = xx/(m*(m-1)) + yy/(n*(n-1)) - 2*xy/(m*n)
	}
	t := p.twoSample(a)
	e := Estimate{Value: t.stat, StdErr: t.stderr, PValue: math.NaN()}
	if t.perm != nil {
		e.PValue = pvalue(t.perm, func(s float64) bool { return s >= t.stat })
	}
	return e, bw, per
}

type twoSampleResult struct {
	stat, stderr float64
	perm         []float64 // the statistic under each permutation; nil without a test
}

// twoSample evaluates, for a symmetric N×N matrix a over the pooled sample,
//
//	S = mean_{i≠j ∈ X} a + mean_{i≠j ∈ Y} a − 2·mean_{X×Y} a
//
// for the observed split (MMD² when a is a kernel, minus the energy
// distance when a holds distances), its first-order standard error, and S
// for each permutation of the labels. All splits come from one matrix
// product A·M, where column c of M is the 0/1 indicator of the "x" side
// of split c (and one column is all ones, for the row totals).
func (p *pooled) twoSample(a []float64) twoSampleResult {
	N, m, n := p.m+p.n, p.m, p.n
	perms := max(p.o.Permutations, 0)
	C := perms + 2 // observed, ones, permutations
	mask := make([]float64, N*C)
	for i := 0; i < N; i++ {
		if i < m {
			mask[i*C] = 1
		}
		mask[i*C+1] = 1
	}
	r := p.o.rng(streamPermute)
	order := make([]int, N)
	for i := range order {
		order[i] = i
	}
	for c := 2; c < C; c++ {
		r.Shuffle(N, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order[:m] {
			mask[i*C+c] = 1
		}
	}
	rs := make([]float64, N*C)
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
		blas64.General{Rows: N, Cols: N, Data: a, Stride: N},
		blas64.General{Rows: N, Cols: C, Data: mask, Stride: C},
		0, blas64.General{Rows: N, Cols: C, Data: rs, Stride: C})

	fm, fn := float64(m), float64(n)
	stat := func(c int) float64 {
		var sxx, syy, sxy float64
		for i := 0; i < N; i++ {
			rx, tot, diag := rs[i*C+c], rs[i*C+1], a[i*N+i]
			if mask[i*C+c] == 1 {
				sxx += rx - diag
				sxy += tot - rx
			} else {
				syy += tot - rx - diag
			}
		}
		return sxx/(fm*(fm-1)) + syy/(fn*(fn-1)) - 2*sxy/(fm*fn)
	}
	res := twoSampleResult{stat: stat(0)}

	// First-order error: S − E S ≈ mean_i f(x_i) + mean_j g(y_j) with
	// f(x) = 2(E a(x, X') − E a(x, Y)), g(y) = 2(E a(y, Y') − E a(X, y)).
	var f, g []float64
	for i := 0; i < N; i++ {
		rx, tot, diag := rs[i*C], rs[i*C+1], a[i*N+i]
		if i < m {
			f = append(f, 2*((rx-diag)/(fm-1)-(tot-rx)/fn))
		} else {
			g = append(g, 2*((tot-rx-diag)/(fn-1)-rx/fm))
		}
	}
	res.stderr = math.Sqrt(variance(f)/fm + variance(g)/fn)

	if perms > 0 {
		res.perm = make([]float64, perms)
		for c := range res.perm {
			res.perm[c] = stat(c + 2)
		}
	}
	return res
}

// pvalue is (1 + #{permutations at least as extreme}) / (1 + permutations),
// the permutation p-value that is valid at finite sizes.
func pvalue(perm []float64, extreme func(float64) bool) float64 {
	k := 0
	for _, s := range perm {
		if extreme(s) {
			k++
		}
	}
	return float64(1+k) / float64(1+len(perm))
}

func variance(v []float64) float64 {
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	var s float64
	for _, x := range v {
		s += (x - mean) * (x - mean)
	}
	return s / float64(len(v)-1)
}

// projectChunk is the number of rows converted to float64 and projected at
// once, bounding the copy of a large sample set.
const projectChunk = 2048

func slicedW1[F Float](x, y []F, d int, o Options) Estimate {
	K := o.Projections
	r := o.rng(streamProject)
	theta := make([]float64, K*d) // K unit directions, one a row
	for k := 0; k < K; k++ {
		row := theta[k*d : (k+1)*d]
		var norm float64
		for norm == 0 {
			for j := range row {
				row[j] = r.NormFloat64()
				norm += row[j] * row[j]
			}
		}
		for j := range row {
			row[j] /= math.Sqrt(norm)
		}
	}
	px, py := project(x, d, theta, K), project(y, d, theta, K)
	nx, ny := len(x)/d, len(y)/d
	w := make([]float64, K)
	parallel(K, func(lo, hi, _ int) {
		a, b := make([]float64, nx), make([]float64, ny)
		for k := lo; k < hi; k++ {
			for i := range a {
				a[i] = px[i*K+k]
			}
			for i := range b {
				b[i] = py[i*K+k]
			}
			slices.Sort(a)
			slices.Sort(b)
			w[k] = w1Sorted(a, b)
		}
	})
	var mean float64
	for _, v := range w {
		mean += v
	}
	mean /= float64(K)
	e := Estimate{Value: mean, StdErr: math.NaN(), PValue: math.NaN()}
	if K > 1 {
		e.StdErr = math.Sqrt(variance(w) / float64(K))
	}
	return e
}

// project is x·θᵀ: every point's coordinate along every direction (n×K).
func project[F Float](x []F, d int, theta []float64, K int) []float64 {
	n := len(x) / d
	out := make([]float64, n*K)
	buf := make([]float64, min(n, projectChunk)*d)
	th := blas64.General{Rows: K, Cols: d, Data: theta, Stride: d}
	for lo := 0; lo < n; lo += projectChunk {
		hi := min(lo+projectChunk, n)
		b := buf[:(hi-lo)*d]
		for i, v := range x[lo*d : hi*d] {
			b[i] = float64(v)
		}
		blas64.Gemm(blas.NoTrans, blas.Trans, 1,
			blas64.General{Rows: hi - lo, Cols: d, Data: b, Stride: d}, th,
			0, blas64.General{Rows: hi - lo, Cols: K, Data: out[lo*K : hi*K], Stride: K})
	}
	return out
}

// w1Sorted is the Wasserstein-1 distance ∫|F_a − F_b| between the
// empirical distributions of two sorted samples, of any sizes: the area
// between the two step functions, walked in one merge.
func w1Sorted(a, b []float64) float64 {
	var i, j int
	var fa, fb, w float64
	prev := math.Min(a[0], b[0])
	for i < len(a) || j < len(b) {
		takeA := j == len(b) || (i < len(a) && a[i] <= b[j])
		var t float64
		if takeA {
			t = a[i]
		} else {
			t = b[j]
		}
		w += math.Abs(fa-fb) * (t - prev)
		prev = t
		if takeA {
			i++
			fa = float64(i) / float64(len(a))
		} else {
			j++
			fb = float64(j) / float64(len(b))
		}
	}
	return w
}

// workerCount is how many goroutines share n rows: every core, but not so
// many that each has little to do.
func workerCount(n int) int { return max(1, min(runtime.GOMAXPROCS(0), n/16)) }

// parallel runs body over [0, n) in contiguous blocks, one goroutine each;
// w is the block's worker index, for per-worker accumulators.
func parallel(n int, body func(lo, hi, w int)) {
	workers := workerCount(n)
	if workers == 1 {
		body(0, n, 0)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lo, hi, w)
		}()
	}
	wg.Wait()
}
