package sampler

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/membudget"
)

// Sizes from flags and model shapes are checked against the memory budget
// before the sampler allocates anything.
func TestCheckBoundsBuffers(t *testing.T) {
	old := membudget.Set(64 << 20)
	defer membudget.Set(old)
	ald := &ALD{Sigmas: []float64{1, 0.1}, Steps: 1}
	// --batch 2147483647 with a small N is the run of N chains it is.
	if err := Check(ald, Config{N: 10, Dim: 2, Batch: math.MaxInt32, Workers: 2}); err != nil {
		t.Errorf("huge batch, 10 samples: %v", err)
	}
	for _, cfg := range []Config{
		{N: math.MaxInt32, Dim: 2, Batch: math.MaxInt32, Workers: 2},
		{N: 1000, Dim: 3 * 4096 * 4096, Batch: 1000, Workers: 1},
		{N: 1 << 40, Dim: 1 << 40, Batch: 1 << 40, Workers: 1 << 20},
	} {
		err := Check(ald, cfg)
		if !errors.Is(err, membudget.ErrExceeded) || !strings.Contains(err.Error(), "sampler:") {
			t.Errorf("%+v: got %v, want a budget error naming the sampler", cfg, err)
		}
	}
	if _, _, err := Collect(t.Context(), ald, nil, Config{N: 1 << 30, Dim: 2}); !errors.Is(err, membudget.ErrExceeded) {
		t.Errorf("Collect of 2³⁰ samples: %v", err)
	}
}

func TestParseSigmasBoundsLevels(t *testing.T) {
	for _, s := range []string{"geom:1,0.01,100000000000", "geom:1,0.01,1e11", "geom:1,0.01,-3"} {
		if _, err := ParseSigmas(s); err == nil {
			t.Errorf("ParseSigmas(%q) accepted", s)
		}
	}
	if LinearBetas(1e-4, 0.02, -5) != nil {
		t.Error("LinearBetas with negative steps")
	}
}
