package autodiff_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// backendNames are the backends every gradient graph is checked on.
var backendNames = []string{"native", "ort"}

// forEachBackend runs f as a subtest per backend. A backend that cannot run
// here is a failure under CI=true and a skip elsewhere; onnxruntime in a
// build without cgo is skipped (that build has no onnxruntime by design).
func forEachBackend(t *testing.T, f func(t *testing.T, be runtime.Backend)) {
	t.Helper()
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			be, err := runtime.Get(name)
			if err != nil {
				if errors.Is(err, ort.ErrNoCgo) {
					t.Skip(err)
				}
				testenv.Missing(t, err.Error())
			}
			f(t, be)
		})
	}
}

// session prepares m. A backend that lacks one of the ops skips the test:
// the gradient graph is fine, the backend is not finished.
type session struct {
	plan runtime.Plan
	sess runtime.Session
}

func prepare(t testing.TB, be runtime.Backend, m *graph.Model) *session {
	t.Helper()
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		if errors.Is(err, graph.ErrUnsupportedOp) && be.Name() == "native" {
			t.Skipf("native backend lacks an op: %v", err)
		}
		t.Fatalf("%s: prepare: %v", be.Name(), err)
	}
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{plan, sess}
	t.Cleanup(func() { sess.Close(); plan.Close() })
	return s
}

// run feeds inputs by name and returns the outputs by name.
func (s *session) run(t testing.TB, in map[string]*graph.Tensor) map[string]*graph.Tensor {
	t.Helper()
	var ins []*graph.Tensor
	for _, vi := range s.plan.Inputs() {
		v, ok := in[vi.Name]
		if !ok {
			t.Fatalf("no value for input %q", vi.Name)
		}
		ins = append(ins, v)
	}
	outs := make([]*graph.Tensor, len(s.plan.Outputs()))
	for i := range outs {
		outs[i] = &graph.Tensor{}
	}
	if err := s.sess.Run(ins, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string]*graph.Tensor{}
	for i, vi := range s.plan.Outputs() {
		res[vi.Name] = outs[i]
	}
	return res
}

// tol is |got − want| ≤ Rel·max|want| + Abs, elementwise.
type tol struct{ Rel, Abs float64 }

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func compare(got, want []float32, tl tol) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	bound := tl.Rel*maxAbs(want) + tl.Abs
	worst, at := 0.0, -1
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return fmt.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > bound {
		return fmt.Errorf("[%d] = %v, want %v (|diff| %.3g > %.3g; max|want| %.3g)", at, got[at], want[at], worst, bound, maxAbs(want))
	}
	return nil
}

func compare64(got []float32, want []float64, tl tol) error {
	w := make([]float32, len(want))
	for i, v := range want {
		w[i] = float32(v)
	}
	return compare(got, w, tl)
}

// finiteDiff is the central difference of L = Σ_k cot_k ⊙ out_k with
// respect to every element of input wrt, accumulated in float64 from
// per-element output differences (so unchanged outputs add exactly nothing).
func finiteDiff(t testing.TB, s *session, in map[string]*graph.Tensor, outs []string, cots [][]float32, wrt string, h float64) []float64 {
	t.Helper()
	x := in[wrt]
	grad := make([]float64, len(x.F32))
	for i := range x.F32 {
		orig := x.F32[i]
		x.F32[i] = orig + float32(h)
		hi := float64(x.F32[i])
		res := s.run(t, in)
		plus := make([][]float32, len(outs))
		for k, o := range outs {
			plus[k] = append([]float32(nil), res[o].F32...)
		}
		x.F32[i] = orig - float32(h)
		lo := float64(x.F32[i])
		res = s.run(t, in)
		x.F32[i] = orig
		sum := 0.0
		for k, o := range outs {
			minus := res[o].F32
			for j := range plus[k] {
				sum += float64(cots[k][j]) * (float64(plus[k][j]) - float64(minus[j]))
			}
		}
		grad[i] = sum / (hi - lo)
	}
	return grad
}
