package native

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
)

func mlpArgs(n int) []*graph.Tensor {
	x, sigma := mlpInputs(1, n)
	return []*graph.Tensor{x, sigma}
}

// TestCallTimeout: past the deadline a run stops with ErrTimeout between
// nodes, and the session runs normally once the deadline is lifted.
func TestCallTimeout(t *testing.T) {
	s := newSession(t, buildMLP(newMLPWeights(1, 64)), runtime.Options{Threads: 1})
	out := []*graph.Tensor{{}}
	SetCallTimeout(time.Nanosecond)
	err := s.Run(mlpArgs(4096), out)
	SetCallTimeout(0)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "before node") {
		t.Fatalf("run under a 1 ns deadline: %v, want ErrTimeout naming the node", err)
	}
	if err := s.Run(mlpArgs(4096), out); err != nil || len(out[0].F32) != 2*4096 {
		t.Fatalf("after lifting the deadline: %v", err)
	}
}

// TestPrepareRefusesThreadsBeyondMax: a thread count past runtime.MaxThreads
// is an error at Prepare, before any worker or scratch exists.
func TestPrepareRefusesThreadsBeyondMax(t *testing.T) {
	m, b := buildMLP(newMLPWeights(1, 8)), Backend{}
	if _, err := b.Prepare(m, runtime.Options{Threads: runtime.MaxThreads + 1}); err == nil || !strings.Contains(err.Error(), "threads") {
		t.Fatalf("Prepare with %d threads: %v, want an error naming the threads", runtime.MaxThreads+1, err)
	}
	if _, err := b.Prepare(m, runtime.Options{Threads: 3}); err != nil {
		t.Fatalf("Prepare with 3 threads: %v", err)
	}
}

// TestActivationBudget: a batch whose activations exceed the budget ends in
// an error naming the activations, before the memory is taken; a batch that
// fits runs.
func TestActivationBudget(t *testing.T) {
	s := newSession(t, buildMLP(newMLPWeights(1, 256)), runtime.Options{Threads: 1})
	out := []*graph.Tensor{{}}
	old := membudget.Set(8 << 20)
	defer membudget.Set(old)
	// 1 M rows × 256 hidden units × 4 bytes is 1 GiB per hidden layer.
	err := s.Run(mlpArgs(1<<20), out)
	if !errors.Is(err, membudget.ErrExceeded) || !strings.Contains(err.Error(), "activations") {
		t.Fatalf("1 M rows under an 8 MiB budget: %v", err)
	}
	if err := s.Run(mlpArgs(256), out); err != nil {
		t.Fatalf("256 rows under an 8 MiB budget: %v", err)
	}
}
