package sampler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebmrun/ebmrun/internal/membudget"
)

// Init draws a chain's initial state from the chain's own random source.
type Init interface {
	Draw(x []float32, r *rand.Rand)
}

// Uniform is the uniform distribution on [Lo, Hi) in every coordinate.
type Uniform struct{ Lo, Hi float64 }

func (u Uniform) Draw(x []float32, r *rand.Rand) {
	for i := range x {
		x[i] = float32(u.Lo + (u.Hi-u.Lo)*r.Float64())
	}
}

// Gaussian is N(0, Std²I).
type Gaussian struct{ Std float64 }

func (g Gaussian) Draw(x []float32, r *rand.Rand) {
	for i := range x {
		x[i] = float32(g.Std * r.NormFloat64())
	}
}

// DefaultBatch is the number of chains advanced together when
// Config.Batch is zero.
const DefaultBatch = 1000

// Config says how many samples to draw and how.
type Config struct {
	N    int    // samples of the whole (unsharded) run
	Dim  int    // values per sample
	Seed uint64 // chain i draws from the stream (Seed, i)
	Init Init   // initial states; nil: N(0, I)

	// Batch is the number of chains per batch; default 1000, rounded up to
	// PC's norm groups. The same Seed and Batch give bit-identical samples
	// for any Workers and sharding. Across batch sizes samples are identical
	// only when the scorer's result for a chain does not depend on the other
	// chains in its batch — true of the exact scorers and of the native
	// backend (runtime/native's TestBatchInvariance), not of onnxruntime,
	// whose kernels round a row differently by the batch's shape.
	Batch   int
	Workers int // goroutines, each with its own Scorer; default GOMAXPROCS

	// Shard and Shards split the run: this call writes the Shard-th
	// (0-based) of Shards contiguous slices of the N samples (ShardRange),
	// exactly as they come out of the unsharded run. Where a slice starts or
	// ends inside one of the unsharded run's batches, the whole batch is
	// computed (at most two batches of extra work). Default: shard 0 of 1.
	Shard, Shards int

	// TraceEvery records every TraceEvery-th step of the first TraceChains
	// chains (global indices) in Stats.Trace; 0 records nothing.
	TraceEvery, TraceChains int

	// Progress, when set, is increased by the number of chain steps taken
	// as the run goes (Evals per sample when done). Workers add to it.
	Progress *atomic.Int64

	// Stop, when closed, ends the run at the next batch boundary: no new
	// batch starts, those in progress finish and are delivered, and Run
	// returns ErrStopped with Stats covering the samples delivered (always
	// the first ones of the shard). Cancelling ctx instead abandons the
	// batches in progress.
	Stop <-chan struct{}

	// Box, when set, is a plausible range for every value of a sample;
	// Stats.Escape records the first step at which a chain's state left it
	// (widened by Box.PerSigma·σ at noise level σ) and how many samples end
	// outside it. Values outside are not an error: a step size too large for
	// the model shows here first.
	Box *Box
}

// Box is the range [Lo, Hi] in every coordinate, widened by PerSigma·σ
// while the chains carry noise of level σ.
type Box struct{ Lo, Hi, PerSigma float64 }

// at is the box at noise level sigma.
func (b Box) at(sigma float64) Box {
	w := b.PerSigma * sigma
	return Box{Lo: b.Lo - w, Hi: b.Hi + w}
}

// Escape says where chains first left Config.Box.
type Escape struct {
	Level, Levels int // 1-based σ level (DDPM: the step counted from the start)
	Step, Steps   int // 1-based step within the level
	Sigma         float64
	Time          int // DDPM time step, −1 otherwise
	Outside       int // samples delivered with a value outside the box
}

// Where names the step the chains first left the box, as errors do.
func (e *Escape) Where() string {
	return where(e.Level-1, e.Levels, e.Step-1, e.Steps, e.Sigma, e.Time)
}

func (e *Escape) before(o *Escape) bool {
	return o == nil || e.Level < o.Level || e.Level == o.Level && e.Step < o.Step
}

// ErrStopped is returned by Run when Config.Stop ended the run early.
var ErrStopped = errors.New("sampler: stopped before the end of the run")

// TracePoint is one recorded chain state.
type TracePoint struct {
	Chain int     // global index
	Step  int     // step of the chain, from 1, over all levels
	Level int     // σ level, from 1
	Sigma float64 // noise level of the step
	X     []float32
}

// Stats describe a finished run.
type Stats struct {
	Start, End int   // the samples of this shard: [Start, End)
	Evals      int64 // score evaluations, counted per sample
	Calls      int64 // Scorer.Score calls (batched)
	Seconds    float64
	// ComputeSeconds is the time the backend itself computed, summed over
	// the workers, when every scorer reports it (runtime.ComputeTimer);
	// 0 otherwise. Seconds·Workers − ComputeSeconds is the Go-side overhead.
	ComputeSeconds float64
	Trace          []TracePoint
	// Escape is where the first chain left Config.Box; nil when none did.
	Escape *Escape
}

// computeTimer is implemented by scorers that know their backend's compute
// time (ModelScorer over a runtime.ComputeTimer session).
type computeTimer interface {
	ComputeTime() (time.Duration, bool)
}

// EvalsPerSecond is the rate of per-sample score evaluations.
func (s *Stats) EvalsPerSecond() float64 {
	if s.Seconds == 0 {
		return 0
	}
	return float64(s.Evals) / s.Seconds
}

// ShardRange is the slice [start, end) of n samples that shard i of k
// writes: ⌊i·n/k⌋ … ⌊(i+1)·n/k⌋.
func ShardRange(n, i, k int) (start, end int) {
	if k <= 0 {
		k, i = 1, 0
	}
	start = int(int64(n) * int64(i) / int64(k))
	end = int(int64(n) * int64(i+1) / int64(k))
	return start, end
}

func (c Config) withDefaults(align int) (Config, error) {
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Workers == 0 {
		c.Workers = goruntime.GOMAXPROCS(0)
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Init == nil {
		c.Init = Gaussian{Std: 1}
	}
	switch {
	case c.N < 0:
		return c, fmt.Errorf("sampler: number of samples %d is negative", c.N)
	case c.Dim <= 0:
		return c, fmt.Errorf("sampler: samples of %d values", c.Dim)
	case c.Batch < 0 || c.Workers < 0:
		return c, fmt.Errorf("sampler: batch %d and workers %d must be positive", c.Batch, c.Workers)
	case c.Shard < 0 || c.Shard >= c.Shards:
		return c, fmt.Errorf("sampler: shard %d of %d: want 0 ≤ shard < shards", c.Shard, c.Shards)
	case c.TraceEvery < 0 || c.TraceChains < 0:
		return c, errors.New("sampler: trace settings must not be negative")
	}
	// A batch larger than the run holds the same single chunk as one of
	// exactly N chains; sizing buffers by it would only waste memory.
	if c.N > 0 && c.Batch > c.N {
		c.Batch = c.N
	}
	if align > 1 {
		c.Batch = (c.Batch + align - 1) / align * align
	}
	return c, nil
}

// floatsPerValue is how many float32 buffers of Batch×Dim a worker holds:
// two pooled batches of states, and the batch's score, noise and scratch.
const floatsPerValue = 5

// Check validates smp and cfg as Run will, and checks the memory the run's
// buffers need against the memory budget — before anything is allocated or
// an output file is created. Scorers' own memory (a backend's activations)
// is not counted here.
func Check(smp Sampler, cfg Config) error {
	if err := smp.Validate(); err != nil {
		return err
	}
	align := 1
	if g, ok := smp.(grouped); ok {
		align = g.group()
	}
	c, err := cfg.withDefaults(align)
	if err != nil {
		return err
	}
	workers := int64(c.Workers)
	if c.N > 0 {
		workers = min(workers, int64((c.N+c.Batch-1)/c.Batch))
	}
	need := membudget.Product(workers, int64(c.Batch), int64(c.Dim), 4*floatsPerValue)
	return membudget.Check(fmt.Sprintf("sampler: %d worker(s) × %d chains × %d values", workers, c.Batch, c.Dim), need)
}

// Run draws this shard's samples and passes them to sink in index order,
// one batch at a time: x holds n samples starting at global index start and
// is reused after sink returns. Memory is bounded by a few batches per worker,
// whatever N is. The first error — a scorer failure, divergence, sink error or
// ctx's — stops every worker and is returned.
func Run(ctx context.Context, smp Sampler, src Source, cfg Config, sink func(x []float32, start, n int) error) (*Stats, error) {
	if err := Check(smp, cfg); err != nil {
		return nil, err
	}
	align := 1
	if g, ok := smp.(grouped); ok {
		align = g.group()
	}
	cfg, err := cfg.withDefaults(align)
	if err != nil {
		return nil, err
	}
	if c, ok := smp.(evalCounter); ok {
		c.resetEvals()
	}
	start, end := ShardRange(cfg.N, cfg.Shard, cfg.Shards)
	st := &Stats{Start: start, End: end}
	begin := time.Now()
	defer func() { st.Seconds = time.Since(begin).Seconds() }()
	if end == start {
		return st, nil
	}
	// Batches are cut from the unsharded run's grid of multiples of Batch,
	// whole even where a shard starts or ends inside one, so every chain
	// shares its batch with the same chains in any sharding: backends whose
	// results for a row depend on its place in the batch (tiled GEMM
	// kernels) then still give bit-identical samples.
	first := start / cfg.Batch
	chunks := (end-1)/cfg.Batch - first + 1
	workers := min(cfg.Workers, chunks)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		k   int
		buf []float32
	}
	pool := make(chan []float32, 2*workers)
	for range cap(pool) {
		pool <- nil
	}
	results := make(chan result, cap(pool))
	var (
		next    atomic.Int64
		calls   atomic.Int64
		compute atomic.Int64 // nanoseconds; −1 once a scorer cannot say
		traceMu sync.Mutex
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runWorker(ctx, smp, src, cfg, start, end, first, chunks, pool, &next, &calls, &compute, func(k int, buf []float32) {
				results <- result{k, buf}
			}, func(tp []TracePoint, esc *Escape) {
				traceMu.Lock()
				st.Trace = append(st.Trace, tp...)
				if esc != nil && esc.before(st.Escape) {
					st.Escape = esc
				}
				traceMu.Unlock()
			}); err != nil {
				cancel(err)
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	// Hand the batches to the sink in order, holding early ones back; the
	// buffer pool bounds how many can wait.
	pending := map[int][]float32{}
	want := 0
	delivered, outside := start, 0
	for r := range results {
		pending[r.k] = r.buf
		for buf, ok := pending[want]; ok && ctx.Err() == nil; buf, ok = pending[want] {
			delete(pending, want)
			c0 := (first + want) * cfg.Batch
			lo, hi := max(start, c0), min(end, c0+cfg.Batch)
			x := buf[(lo-c0)*cfg.Dim : (hi-c0)*cfg.Dim]
			if cfg.Box != nil {
				outside += countOutside(x, cfg.Dim, *cfg.Box)
			}
			if err := sink(x, lo, hi-lo); err != nil {
				cancel(err)
			}
			delivered = hi
			pool <- buf
			want++
		}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	sort.Slice(st.Trace, func(i, j int) bool {
		a, b := st.Trace[i], st.Trace[j]
		return a.Chain < b.Chain || a.Chain == b.Chain && a.Step < b.Step
	})
	st.Calls = calls.Load()
	if c := compute.Load(); c > 0 {
		st.ComputeSeconds = time.Duration(c).Seconds()
	}
	if st.Escape != nil {
		st.Escape.Outside = outside
	}
	if delivered < end {
		// Only a stop ends the loop early without an error.
		st.End = delivered
		st.Evals = int64(delivered-start) * int64(smp.Evals())
		return st, ErrStopped
	}
	st.Evals = int64(end-start) * int64(smp.Evals())
	if c, ok := smp.(evalCounter); ok {
		st.Evals = int64(math.Round(float64(end-start) * c.evalsPerChain()))
	}
	return st, nil
}

// countOutside counts the samples with a value outside the box (NaN
// included).
func countOutside(x []float32, dim int, b Box) int {
	lo, hi := float32(b.Lo), float32(b.Hi)
	n := 0
	for i := 0; i+dim <= len(x); i += dim {
		for _, v := range x[i : i+dim] {
			if !(v >= lo && v <= hi) {
				n++
				break
			}
		}
	}
	return n
}

// runWorker takes batches in index order until none are left.
func runWorker(ctx context.Context, smp Sampler, src Source, cfg Config, start, end, first, chunks int,
	pool chan []float32, next, calls, compute *atomic.Int64, emit func(int, []float32), trace func([]TracePoint, *Escape)) (err error) {
	sc, err := src()
	if err != nil {
		return err
	}
	if c, ok := sc.(io.Closer); ok {
		defer func() {
			if cerr := c.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("sampler: closing scorer: %w", cerr)
			}
		}()
	}
	// Read the compute time before the session closes (defers run last first).
	defer func() {
		ct, ok := sc.(computeTimer)
		d, known := time.Duration(0), false
		if ok {
			d, known = ct.ComputeTime()
		}
		for {
			old := compute.Load()
			if old < 0 {
				return
			}
			v := old + int64(d)
			if !known {
				v = -1
			}
			if compute.CompareAndSwap(old, v) {
				return
			}
		}
	}()
	counted := &countingScorer{Scorer: sc, calls: calls}
	b := newBatch(min(cfg.Batch, cfg.N), cfg.Dim)
	b.ctx = ctx
	b.box = cfg.Box
	var tps []TracePoint
	b.hook = func(b *Batch, level, step int, sigma float64) {
		// Only the shard's own chains count; a batch may hold others.
		lo, hi := max(start, b.Start), min(end, b.Start+b.N)
		if cfg.Progress != nil {
			cfg.Progress.Add(int64(hi - lo))
		}
		if cfg.TraceEvery > 0 && lo < cfg.TraceChains && b.step%cfg.TraceEvery == 0 {
			for i := lo - b.Start; i < hi-b.Start && b.Start+i < cfg.TraceChains; i++ {
				tps = append(tps, TracePoint{Chain: b.Start + i, Step: b.step, Level: level + 1, Sigma: sigma,
					X: append([]float32(nil), b.X[i*b.Dim:(i+1)*b.Dim]...)})
			}
		}
	}
	for {
		var buf []float32
		select {
		case buf = <-pool:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-cfg.Stop: // nil: never
			pool <- buf
			return nil
		default:
		}
		k := int(next.Add(1) - 1)
		if k >= chunks {
			pool <- buf
			return nil
		}
		s := (first + k) * cfg.Batch
		n := min(cfg.Batch, cfg.N-s)
		if cap(buf) < cfg.Batch*cfg.Dim {
			buf = make([]float32, cfg.Batch*cfg.Dim)
		}
		b.reset(buf[:cap(buf)], s, n, cfg.Seed)
		for i := 0; i < n; i++ {
			cfg.Init.Draw(b.X[i*cfg.Dim:(i+1)*cfg.Dim], b.rng[i])
		}
		tps = tps[:0]
		b.escape = nil
		if err := smp.Sample(counted, b); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil
			}
			return err
		}
		if len(tps) > 0 || b.escape != nil {
			trace(tps, b.escape)
			tps = nil
		}
		emit(k, buf)
	}
}

type countingScorer struct {
	Scorer
	calls *atomic.Int64
}

func (c *countingScorer) Score(dst, x []float32, n int, nz Noise) error {
	c.calls.Add(1)
	return c.Scorer.Score(dst, x, n, nz)
}

// Collect runs the sampler and returns all the shard's samples in one
// slice ((End−Start)×Dim values) — for runs that fit in memory. A run ended
// by Config.Stop returns the samples delivered with ErrStopped.
func Collect(ctx context.Context, smp Sampler, src Source, cfg Config) ([]float32, *Stats, error) {
	start, end := ShardRange(cfg.N, cfg.Shard, max(cfg.Shards, 1))
	need := membudget.Product(int64(end-start), int64(max(cfg.Dim, 0)), 4)
	if err := membudget.Check(fmt.Sprintf("sampler: %d samples of %d values", end-start, cfg.Dim), need); err != nil {
		return nil, nil, err
	}
	var out []float32
	st, err := Run(ctx, smp, src, cfg, func(x []float32, start, n int) error {
		out = append(out, x...)
		return nil
	})
	if errors.Is(err, ErrStopped) {
		return out, st, err
	}
	if err != nil {
		return nil, nil, err
	}
	return out, st, nil
}
