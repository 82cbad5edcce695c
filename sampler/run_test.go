package sampler

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/tensorio"
)

// TestDeterminism: the same seed gives bit-identical samples for any worker
// count, batch size and sharding.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	const n = 301
	for _, smp := range []Sampler{
		&ALD{Sigmas: Geometric(1, 0.01, 3), Steps: 5, Denoise: true},
		&ULA{Steps: 7, StepSize: 1e-3},
		&CAS{Sigmas: Geometric(1, 0.01, 8)},
		&PC{Sigmas: Geometric(1, 0.01, 4), NormGroup: 16},
		&DDPM{Betas: LinearBetas(1e-3, 0.2, 20)},
	} {
		base := Config{N: n, Dim: 2, Seed: 42, Init: Uniform{-4, 4}, Batch: 1000, Workers: 1}
		want, _, err := Collect(context.Background(), smp, ring8Source(), base)
		if err != nil {
			t.Fatalf("%s: %v", smp.Name(), err)
		}
		for _, c := range []struct{ batch, workers int }{{1, 1}, {7, 2}, {64, 3}, {100, 4}} {
			cfg := base
			cfg.Batch, cfg.Workers = c.batch, c.workers
			got, _, err := Collect(context.Background(), smp, ring8Source(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !bitEqual(got, want) {
				t.Errorf("%s: batch %d, %d workers: samples differ from batch 1000, 1 worker", smp.Name(), c.batch, c.workers)
			}
		}
		for _, shards := range []int{2, 3, 7} {
			var got []float32
			for i := 0; i < shards; i++ {
				cfg := base
				cfg.Shard, cfg.Shards, cfg.Batch, cfg.Workers = i, shards, 10, 2
				part, st, err := Collect(context.Background(), smp, ring8Source(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if st.Start != len(got)/2 {
					t.Fatalf("%s: shard %d/%d starts at %d, previous ended at %d", smp.Name(), i, shards, st.Start, len(got)/2)
				}
				got = append(got, part...)
			}
			if !bitEqual(got, want) {
				t.Errorf("%s: %d shards joined differ from the unsharded run", smp.Name(), shards)
			}
		}
		other, _, _ := Collect(context.Background(), smp, ring8Source(), Config{N: n, Dim: 2, Seed: 43, Init: Uniform{-4, 4}})
		if bitEqual(other, want) {
			t.Errorf("%s: seeds 42 and 43 give the same samples", smp.Name())
		}
	}
}

func bitEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestShardRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, k int }{{10, 3}, {1000, 7}, {5, 8}, {0, 2}, {100, 1}} {
		prev := 0
		for i := 0; i < tc.k; i++ {
			s, e := ShardRange(tc.n, i, tc.k)
			if s != prev || e < s || e-s > tc.n/tc.k+1 {
				t.Fatalf("ShardRange(%d, %d, %d) = [%d, %d) after %d", tc.n, i, tc.k, s, e, prev)
			}
			prev = e
		}
		if prev != tc.n {
			t.Fatalf("shards of %d end at %d", tc.n, prev)
		}
	}
}

// placeScorer mimics a tiled GEMM kernel: its result for a chain depends on
// the chain's place in the batch, by a rounding-sized amount.
type placeScorer struct{ Scorer }

func (s placeScorer) Score(dst, x []float32, n int, nz Noise) error {
	if err := s.Scorer.Score(dst, x, n, nz); err != nil {
		return err
	}
	d := len(x) / n
	for i := 0; i < n; i++ {
		dst[i*d] *= 1 + float32(i%6)*1e-7
	}
	return nil
}

// TestDeterminismPlaceDependentScorer: with such a scorer, the same batch
// size still gives bit-identical samples for any worker count and sharding.
func TestDeterminismPlaceDependentScorer(t *testing.T) {
	t.Parallel()
	src := func() (Scorer, error) { s, _ := ring8Source()(); return placeScorer{s}, nil }
	smp := &ALD{Sigmas: Geometric(1, 0.01, 3), Steps: 5}
	base := Config{N: 203, Dim: 2, Seed: 4, Batch: 17, Workers: 1}
	want, _, err := Collect(context.Background(), smp, src, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, shards := range []int{1, 2, 5, 13} {
		var got []float32
		for i := 0; i < shards; i++ {
			cfg := base
			cfg.Shard, cfg.Shards, cfg.Workers = i, shards, 1+i%3
			part, _, err := Collect(context.Background(), smp, src, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, part...)
		}
		if !bitEqual(got, want) {
			t.Errorf("%d shards joined differ from the unsharded run", shards)
		}
	}
	cfg := base
	cfg.Batch = 16
	if other, _, _ := Collect(context.Background(), smp, src, cfg); bitEqual(other, want) {
		t.Error("batch 16 matches batch 17: the scorer's place effect did not show, so the test proves nothing")
	}
}

// nanScorer returns NaN for samples whose first coordinate is above 3, a
// model that breaks down in part of the space.
type nanScorer struct{ Scorer }

func (s nanScorer) Score(dst, x []float32, n int, nz Noise) error {
	if err := s.Scorer.Score(dst, x, n, nz); err != nil {
		return err
	}
	d := len(x) / n
	for i := 0; i < n; i++ {
		if x[i*d] > 3 {
			dst[i*d] = float32(math.NaN())
		}
	}
	return nil
}

// TestDivergenceStopsTheRun: a NaN score stops the run with an error naming
// the sampler, σ level, step and count, and no output file is left.
func TestDivergenceStopsTheRun(t *testing.T) {
	t.Parallel()
	src := func() (Scorer, error) { s, _ := ring8Source()(); return nanScorer{s}, nil }
	out := filepath.Join(t.TempDir(), "samples.npy")
	cfg := Config{N: 5000, Dim: 2, Seed: 1, Init: Uniform{-4, 4}, Batch: 5000, Workers: 1}
	err := tensorio.WriteAtomic(out, func(w io.Writer) error {
		_, err := Run(context.Background(), &ALD{}, src, cfg, func(x []float32, start, n int) error {
			for _, v := range x {
				if err := binary.Write(w, binary.LittleEndian, v); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	})
	var de *DivergenceError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DivergenceError", err)
	}
	// Uniform on [−4, 4): an eighth of the chains start with x₀ > 3.
	if de.Diverged < 500 || de.Diverged > 750 || de.Of != 5000 || !de.InScore {
		t.Errorf("diverged %d of %d (in score %v), want about 625 of 5000 in the score", de.Diverged, de.Of, de.InScore)
	}
	for _, want := range []string{"ald diverged", "σ level 1 of 10 (σ=1)", "step 1 of 100", " of 5000 samples", "NaN or Inf in the score"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("files left behind: %v", entries)
	}
}

func TestDivergenceInState(t *testing.T) {
	t.Parallel()
	// A step size far beyond stability blows the chains up.
	_, _, err := Collect(context.Background(), &ULA{Sigma: 0.01, Steps: 1000, StepSize: 1}, ring8Source(), Config{N: 10, Dim: 2, Seed: 1})
	var de *DivergenceError
	if !errors.As(err, &de) || de.Sampler != "ula" || de.Step < 2 {
		t.Fatalf("got %v, want ula diverging after a few steps", err)
	}
}

// gaussScorer is the score of N(0, I) data at σ, cheap enough to stream a
// million samples through.
type gaussScorer struct{}

func (gaussScorer) Score(dst, x []float32, n int, nz Noise) error {
	c := -1 / (1 + nz.Sigma*nz.Sigma)
	for i, v := range x {
		dst[i] = c * v
	}
	return nil
}

// TestStreamingBoundedMemory: a million 2-D samples stream to the sink in
// index order with allocations bounded by batch × workers, not N.
func TestStreamingBoundedMemory(t *testing.T) {
	// Not parallel: the allocation count must be this test's alone.
	const n, dim = 1_000_000, 2
	var next int
	var prog atomic.Int64
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	smp := &ULA{Steps: 2, StepSize: 0.01}
	st, err := Run(context.Background(), smp, func() (Scorer, error) { return gaussScorer{}, nil },
		Config{N: n, Dim: dim, Seed: 3, Batch: 4096, Workers: 2, Progress: &prog},
		func(x []float32, start, k int) error {
			if start != next || len(x) != k*dim {
				t.Fatalf("chunk at %d of %d samples, want %d", start, k, next)
			}
			next += k
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	goruntime.ReadMemStats(&after)
	if next != n || st.End != n {
		t.Fatalf("streamed %d samples, want %d", next, n)
	}
	if got := prog.Load(); got != int64(n)*int64(smp.Evals()) {
		t.Errorf("progress %d, want %d", got, n*smp.Evals())
	}
	// All the samples are 8 MB; the run may allocate a small part of that.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > n*dim*4/4 {
		t.Errorf("the run allocated %d bytes for %d samples", alloc, n)
	}
}

// TestStreamToNpy writes samples as .npy with the header first, the way the
// CLI does, and reads them back.
func TestStreamToNpy(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "s.npy")
	const n = 777
	cfg := Config{N: n, Dim: 2, Seed: 5, Batch: 100}
	smp := &ALD{Sigmas: Geometric(1, 0.1, 2), Steps: 3}
	want, _, err := Collect(context.Background(), smp, ring8Source(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = tensorio.WriteAtomic(out, func(w io.Writer) error {
		h, _ := tensorio.NpyHeader(graph.Float32, []int64{n, 2})
		bw := bufio.NewWriter(w)
		bw.Write(h)
		_, err := Run(context.Background(), smp, ring8Source(), cfg, func(x []float32, start, k int) error {
			return binary.Write(bw, binary.LittleEndian, x)
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tensorio.ReadNpyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Shape, []int64{n, 2}) || !bitEqual(got.F32, want) {
		t.Errorf("read back %v, differs from the samples", got.Shape)
	}
}

func TestTrace(t *testing.T) {
	t.Parallel()
	smp := &ALD{Sigmas: Geometric(1, 0.01, 2), Steps: 10}
	_, st, err := Collect(context.Background(), smp, ring8Source(), Config{N: 50, Dim: 2, Seed: 1, Batch: 2, TraceEvery: 5, TraceChains: 3})
	if err != nil {
		t.Fatal(err)
	}
	// 3 chains × 20 steps / 5.
	if len(st.Trace) != 12 {
		t.Fatalf("%d trace points, want 12", len(st.Trace))
	}
	if p := st.Trace[0]; p.Chain != 0 || p.Step != 5 || p.Level != 1 {
		t.Errorf("first trace point %+v", p)
	}
	if p := st.Trace[11]; p.Chain != 2 || p.Step != 20 || p.Level != 2 || p.Sigma != float64(float32(0.01)) {
		t.Errorf("last trace point %+v", p)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Collect(ctx, &ALD{}, ring8Source(), Config{N: 100, Dim: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    Sampler
		want string
	}{
		{&CAS{StepLR: 2e-5}, "η = ε/σ_L² = 0.2 is outside 1−γ < η < 1+γ = (0.4005, 1.599)"},
		{&CAS{Sigmas: Geometric(1, 0.01, 10), StepLR: 2e-4}, "outside 1−γ < η < 1+γ"},
		{&CAS{Sigmas: []float64{1}}, "at least two σ levels"},
		{&ALD{Sigmas: []float64{0.1, 1}}, "σ level 2 (1) is not below level 1 (0.1)"},
		{&ALD{StepLR: -1}, "step size ε = -1"},
		{&PC{SNR: -0.1}, "snr"},
		{&DDPM{Betas: []float64{0.1, 1.5}}, "β_1 = 1.5"},
		{&ULA{Sigma: math.Inf(1)}, "ula: σ"},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: Validate() = %v, want %q", tc.s.Name(), tc.s, err, tc.want)
		}
	}
	for _, s := range []Sampler{&ALD{}, &ULA{}, &CAS{}, &PC{}, &DDPM{}} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s defaults: %v", s.Name(), err)
		}
	}
}

func TestParseSigmas(t *testing.T) {
	t.Parallel()
	got, err := ParseSigmas("geom:1,0.01,10")
	if err != nil || len(got) != 10 || got[0] != 1 || got[9] != 0.01 || math.Abs(got[1]-0.599484250318941) > 1e-15 {
		t.Errorf("geom:1,0.01,10 = %v, %v", got, err)
	}
	got, err = ParseSigmas("1, 0.5,0.1")
	if err != nil || !slices.Equal(got, []float64{1, 0.5, 0.1}) {
		t.Errorf("list = %v, %v", got, err)
	}
	for _, bad := range []string{"geom:1,2,3", "geom:1,0.1", "1,x", "0.1,1", "geom:1,0,5", ""} {
		if _, err := ParseSigmas(bad); err == nil {
			t.Errorf("ParseSigmas(%q) accepted", bad)
		}
	}
}

// TestStepsAllocateNothing: once a batch exists, the Langevin steps of every
// sampler allocate nothing (DDPM's ᾱ table is made once per batch).
func TestStepsAllocateNothing(t *testing.T) {
	// Not parallel: AllocsPerRun refuses parallel tests.
	sc := NewGMMScorer(dataset.Ring8())
	b := newBatch(64, 2)
	x := make([]float32, 128)
	for _, smp := range []Sampler{
		&ALD{Sigmas: Geometric(1, 0.01, 3), Steps: 20, Denoise: true},
		&ULA{Steps: 20},
		&CAS{Sigmas: Geometric(1, 0.01, 20)},
		&PC{Sigmas: Geometric(1, 0.01, 20)},
	} {
		allocs := testing.AllocsPerRun(5, func() {
			b.reset(x, 0, 64, 1)
			for i := range x {
				x[i] = 0.5
			}
			if err := smp.Sample(sc, b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per batch", smp.Name(), allocs)
		}
	}
}
