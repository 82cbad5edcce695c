package sampler_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/sampler"
)

func ringSource() sampler.Source {
	g := dataset.Ring8()
	return func() (sampler.Scorer, error) { return sampler.NewGMMScorer(g), nil }
}

// Closing Config.Stop ends the run at a batch boundary with the first
// samples of the full run, whole batches, and ErrStopped.
func TestRunStop(t *testing.T) {
	t.Parallel()
	ald := &sampler.ALD{Steps: 5}
	cfg := sampler.Config{N: 2000, Dim: 2, Seed: 3, Batch: 100, Workers: 2, Init: sampler.Uniform{Lo: -4, Hi: 4}}
	full, _, err := sampler.Collect(context.Background(), ald, ringSource(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	cfg.Stop = stop
	var got []float32
	st, err := sampler.Run(context.Background(), ald, ringSource(), cfg, func(x []float32, start, n int) error {
		if start == 0 {
			close(stop)
		}
		got = append(got, x...)
		return nil
	})
	if !errors.Is(err, sampler.ErrStopped) || st == nil {
		t.Fatalf("err %v, stats %v", err, st)
	}
	if st.End < 100 || st.End >= 2000 || st.End%100 != 0 || len(got) != 2*st.End || st.Evals != int64(st.End)*int64(ald.Evals()) {
		t.Fatalf("stopped at %d with %d values, %d evaluations", st.End, len(got), st.Evals)
	}
	for i := range got {
		if got[i] != full[i] {
			t.Fatalf("value %d differs from the full run", i)
		}
	}
	// A Stop closed before the start delivers nothing.
	x, st, err := sampler.Collect(context.Background(), ald, ringSource(), cfg)
	if !errors.Is(err, sampler.ErrStopped) || len(x) != 0 || st.End != 0 {
		t.Errorf("closed before the start: %d values, %v", len(x), err)
	}
}

// Config.Box records the first step a chain left it and how many samples
// end outside.
func TestRunBox(t *testing.T) {
	t.Parallel()
	ald := &sampler.ALD{Steps: 5}
	cfg := sampler.Config{N: 300, Dim: 2, Seed: 1, Batch: 100, Init: sampler.Uniform{Lo: -4, Hi: 4}, Box: &sampler.Box{Lo: -100, Hi: 100}}
	_, st, err := sampler.Collect(context.Background(), ald, ringSource(), cfg)
	if err != nil || st.Escape != nil {
		t.Fatalf("a plausible run escaped: %+v, %v", st.Escape, err)
	}
	// The ring's modes lie at radius 2 and beyond: a box of ±0.5 is left at
	// once, and nearly every sample ends outside it.
	cfg.Box = &sampler.Box{Lo: -0.5, Hi: 0.5}
	_, st, err = sampler.Collect(context.Background(), ald, ringSource(), cfg)
	if err != nil || st.Escape == nil {
		t.Fatalf("no escape recorded: %v", err)
	}
	e := st.Escape
	if e.Level != 1 || e.Step != 1 || e.Levels != 10 || e.Steps != 5 || e.Outside < 250 || e.Outside > 300 {
		t.Errorf("escape %+v (%s)", e, e.Where())
	}
}
