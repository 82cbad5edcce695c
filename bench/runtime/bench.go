package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
)

// Variants and backends, in the order the tables show them.
const (
	fixture = "fixture"
	hVar    = "h"

	native = "native"
	ort    = "ort"
	onnxGO = "onnx-go"
)

var (
	variants = []string{fixture, hVar}
	backends = []string{native, ort, onnxGO}
)

// agreeRel is how far, relative to the largest reference score (at least 1),
// a backend's scores may be from the reference (native on the fixture) and
// from its own first evaluation: float32 rounding differs between backends by
// a few ulps of the largest value, a wrong kernel by far more.
const agreeRel = 1e-4

// result is one backend on one variant at one batch size.
type result struct {
	variant, backend string
	batch            int
	err              error     // could not prepare or run
	rates            []float64 // evaluations per second, one per repeat
	firstDiff        float64   // max |score − reference|, first evaluation
	drift            float64   // max |score_k − score_1| over the drift runs
	driftRuns        int
	restored         bool    // drifted, and was timed with onnxGo.restore
	afterDiff        float64 // max |score − reference| after the timed runs
	tol              float64 // the agreement tolerance at this batch
}

func (r *result) median() float64 {
	if len(r.rates) == 0 {
		return 0
	}
	s := slices.Clone(r.rates)
	slices.Sort(s)
	return s[len(s)/2]
}

// spread is (max − min)/median of the repeats.
func (r *result) spread() float64 {
	if len(r.rates) < 2 {
		return 0
	}
	return (slices.Max(r.rates) - slices.Min(r.rates)) / r.median()
}

// agrees reports whether the timed computation was right: the first and the
// last score match the reference, and either repeated runs do not drift or
// the drift was worked around for the timing.
func (r *result) agrees() bool {
	return r.err == nil && r.firstDiff <= r.tol && r.afterDiff <= r.tol && (r.drift <= r.tol || r.restored)
}

func bench(w io.Writer, o options) error {
	fix, err := importer.Load(o.model)
	if err != nil {
		return fmt.Errorf("%w (run from bench/runtime or pass -model)", err)
	}
	fixONNX, err := os.ReadFile(o.model)
	if err != nil {
		return err
	}
	hModel, err := variantH(fix)
	if err != nil {
		return err
	}
	hONNX, err := importer.Encode(hModel)
	if err != nil {
		return err
	}
	if o.saveVariant != "" {
		if err := importer.Save(o.saveVariant, hModel); err != nil {
			return err
		}
	}
	// ebmrun runs the variant decoded from the very bytes onnx-go reads.
	hModel, err = importer.Decode(hONNX, importer.Options{})
	if err != nil {
		return fmt.Errorf("decoding the h variant: %w", err)
	}

	env := machine(o)
	fmt.Fprint(w, env)
	var all []*result
	for _, n := range o.batches {
		rs, err := benchBatch(o, n, fix, fixONNX, hModel, hONNX)
		if err != nil {
			return fmt.Errorf("batch %d: %w", n, err)
		}
		all = append(all, rs...)
	}
	fmt.Fprintf(w, "load average after: %s\n\n", loadavg())
	report(w, o, all)
	return nil
}

// benchBatch measures every backend on both variants at one batch size. The
// timed measurements go round-robin over the backends, repeat by repeat, so
// that a burst of load on this shared machine hits all of them alike.
func benchBatch(o options, n int, fix *graph.Model, fixONNX []byte, hModel *graph.Model, hONNX []byte) ([]*result, error) {
	d := makeBatch(n, o.seed)
	var (
		rs      []*result
		runners []runner
		ref     []float32
		tol     float64
	)
	defer func() {
		for _, r := range runners {
			if r != nil {
				r.Close()
			}
		}
	}()
	for _, v := range variants {
		for _, b := range backends {
			res := &result{variant: v, backend: b, batch: n}
			r, err := newRunner(v, b, d, o.threads, fix, fixONNX, hModel, hONNX)
			if err != nil {
				r = nil
			} else if err = r.Eval(); err != nil {
				r.Close()
				r = nil
			}
			if err != nil {
				if v == fixture && b == native {
					return nil, fmt.Errorf("the reference (native on the fixture) fails: %w", err)
				}
				res.err = err
			}
			if r != nil && ref == nil {
				ref = slices.Clone(r.Score())
				tol = agreeRel * max(1, maxAbs(ref))
			}
			if r != nil {
				res.firstDiff = maxDiff(r.Score(), ref)
				res.driftRuns = o.driftRuns
				res.drift, res.err = drift(r, o.driftRuns)
				if og, ok := r.(*onnxGo); ok && res.err == nil && res.drift > tol {
					og.restore, res.restored = true, true
				}
				if res.err != nil {
					r.Close()
					r = nil
				}
			}
			res.tol = tol
			rs = append(rs, res)
			runners = append(runners, r)
		}
	}
	for i, r := range runners {
		if r == nil {
			continue
		}
		if err := runFor(r, o.warmup); err != nil {
			rs[i].err = err
			drop(runners, i)
		}
	}
	for rep := 0; rep < o.repeat; rep++ {
		for i, r := range runners {
			if r == nil {
				continue
			}
			goruntime.GC() // don't bill one backend for another's garbage
			rate, err := measure(r, n, o.minTime)
			if err != nil {
				rs[i].err = err
				drop(runners, i)
				continue
			}
			rs[i].rates = append(rs[i].rates, rate)
		}
	}
	for i, r := range runners {
		if r != nil {
			rs[i].afterDiff = maxDiff(r.Score(), ref)
		}
	}
	return rs, nil
}

// drop closes runners[i] and takes it out of the measurements.
func drop(runners []runner, i int) {
	runners[i].Close()
	runners[i] = nil
}

func newRunner(variant, backend string, d *batchData, threads int, fix *graph.Model, fixONNX []byte, hModel *graph.Model, hONNX []byte) (runner, error) {
	switch {
	case backend == onnxGO && variant == fixture:
		return newOnnxGo(fixONNX, fixture, d, gemmBiases(fix))
	case backend == onnxGO:
		return newOnnxGo(hONNX, hVar, d, gemmBiases(hModel))
	case variant == fixture:
		return newEbmrunFixture(backend, fix, d, threads)
	default:
		return newEbmrunH(backend, hModel, d, threads)
	}
}

// makeBatch draws x ~ N(0, I) and σ log-uniform on [0.01, 1], the range of
// the NCSN schedule the fixture was made for.
func makeBatch(n int, seed uint64) *batchData {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	d := &batchData{n: n, x: make([]float32, 2*n), sigma: make([]float32, n)}
	for i := range d.x {
		d.x[i] = float32(rng.NormFloat64())
	}
	for i := range d.sigma {
		d.sigma[i] = float32(math.Exp(math.Log(0.01) * rng.Float64()))
	}
	return d
}

// drift evaluates the same input k more times and returns the largest change
// from the first result. A deterministic backend gives 0 or a few ulps.
func drift(r runner, k int) (float64, error) {
	first := slices.Clone(r.Score())
	var worst float64
	for i := 0; i < k; i++ {
		if err := r.Eval(); err != nil {
			return 0, err
		}
		worst = max(worst, maxDiff(r.Score(), first))
	}
	return worst, nil
}

func runFor(r runner, d time.Duration) error {
	start := time.Now()
	for runs := 0; runs < 2 || time.Since(start) < d; runs++ {
		if err := r.Eval(); err != nil {
			return err
		}
	}
	return nil
}

// measure runs r for at least minTime and 3 evaluations and returns samples
// scored per second.
func measure(r runner, n int, minTime time.Duration) (float64, error) {
	runs := 0
	start := time.Now()
	var elapsed time.Duration
	for runs < 3 || elapsed < minTime {
		if err := r.Eval(); err != nil {
			return 0, err
		}
		runs++
		elapsed = time.Since(start)
	}
	return float64(n*runs) / elapsed.Seconds(), nil
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > m || math.IsNaN(d) {
			m = d
		}
	}
	return m
}

func maxAbs(a []float32) float64 {
	var m float64
	for _, v := range a {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// gemmBiases lists the names of the initializers that Gemm nodes take as C.
func gemmBiases(m *graph.Model) []string {
	init := m.Graph.InitializerMap()
	var names []string
	for _, n := range m.Graph.Nodes {
		if n.OpType == "Gemm" && len(n.Inputs) == 3 && init[n.Inputs[2]] != nil {
			names = append(names, n.Inputs[2])
		}
	}
	return names
}
