package autodiff_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)

// backendNames are the backends every gradient graph is checked on.
var backendNames = []string{"native", "ort"}

// forEachBackend runs f as a subtest per backend. A backend that cannot run
// here is a failure under CI=true and a skip elsewhere (testenv.Missing);
// a build without cgo does not list onnxruntime at all.
func forEachBackend(t *testing.T, f func(t *testing.T, be runtime.Backend)) {
	t.Helper()
	for _, name := range backendNames {
		if name != "native" && !testenv.Cgo {
			continue // a build without cgo has no onnxruntime by design
		}
		t.Run(name, func(t *testing.T) {
			be, err := runtime.Get(name)
			if err != nil {
				testenv.Missing(t, err.Error())
			}
			f(t, be)
		})
	}
}

// session prepares m; a backend that cannot prepare a gradient graph fails
// the test (every op the autodiff emits must run on every backend).
type session struct {
	plan runtime.Plan
	sess runtime.Session
}

func prepare(t testing.TB, be runtime.Backend, m *graph.Model) *session {
	t.Helper()
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
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

// fd is a finite-difference gradient: the estimate per element and a bound
// on its error from float32 rounding of the outputs it differences.
type fd struct {
	grad, noise []float64
}

// outULPs is how many float32 units of roundoff (relative to |y|) each
// output of a backend may carry: kernels sum in their own order and
// approximate transcendental functions.
const outULPs = 16

// finiteDiff estimates the gradient of L = Σ_k cot_k ⊙ out_k with respect
// to every element of input wrt, in float64 from per-element output
// differences (unchanged outputs add exactly nothing): the central
// difference at h and at h/2, Richardson-extrapolated, (4·D(h/2) − D(h))/3,
// so truncation is O(h⁴) and h can stay large against float32 rounding.
// noise bounds the rounding part of each element's error: outULPs units of
// every output, weighted by |cot|, divided by the actual step.
func finiteDiff(t testing.TB, s *session, in map[string]*graph.Tensor, outs []string, cots [][]float32, wrt string, h float64) fd {
	t.Helper()
	x := in[wrt]
	res := fd{grad: make([]float64, len(x.F32)), noise: make([]float64, len(x.F32))}
	const u = 0x1p-24 // float32 unit roundoff
	for i := range x.F32 {
		var d, n [2]float64
		for k, step := range []float64{h, h / 2} {
			d[k], n[k] = centralDiff(t, s, in, outs, cots, x, i, step)
		}
		res.grad[i] = (4*d[1] - d[0]) / 3
		res.noise[i] = outULPs * u * (4*n[1] + n[0]) / 3
	}
	return res
}

// centralDiff is Σ cot·(y(x+h) − y(x−h))/(x₊ − x₋) for element i of x, and
// Σ|cot|·(|y₊| + |y₋|)/(x₊ − x₋) over the outputs that moved, the scale of
// its rounding error.
func centralDiff(t testing.TB, s *session, in map[string]*graph.Tensor, outs []string, cots [][]float32, x *graph.Tensor, i int, h float64) (float64, float64) {
	orig := x.F32[i]
	x.F32[i] = orig + float32(h)
	hi := float64(x.F32[i])
	r := s.run(t, in)
	plus := make([][]float32, len(outs))
	for k, o := range outs {
		plus[k] = append([]float32(nil), r[o].F32...)
	}
	x.F32[i] = orig - float32(h)
	lo := float64(x.F32[i])
	r = s.run(t, in)
	x.F32[i] = orig
	var sum, scale float64
	for k, o := range outs {
		minus := r[o].F32
		for j := range plus[k] {
			if plus[k][j] == minus[j] {
				continue // untouched by element i: exactly nothing, no noise
			}
			c := float64(cots[k][j])
			sum += c * (float64(plus[k][j]) - float64(minus[j]))
			scale += math.Abs(c) * (math.Abs(float64(plus[k][j])) + math.Abs(float64(minus[j])))
		}
	}
	return sum / (hi - lo), scale / (hi - lo)
}

// fdTol compares a gradient with a finite difference element by element:
// |got − want| ≤ Rel·|want| + noise + Floor·max|want|, where noise is the
// difference's own rounding bound and Floor keeps exact zeros comparable.
type fdTol struct{ Rel, Floor float64 }

func compareFD(got []float32, want fd, tl fdTol) error {
	if len(got) != len(want.grad) {
		return fmt.Errorf("%d values, want %d", len(got), len(want.grad))
	}
	var scale float64
	for _, w := range want.grad {
		scale = math.Max(scale, math.Abs(w))
	}
	worst, at := 0.0, -1
	for i, g := range got {
		w := want.grad[i]
		d := math.Abs(float64(g) - w)
		if math.IsNaN(d) {
			return fmt.Errorf("[%d] = %v, want %v", i, g, w)
		}
		if r := d / (tl.Rel*math.Abs(w) + want.noise[i] + tl.Floor*scale); r > worst {
			worst, at = r, i
		}
	}
	if worst > 1 {
		w := want.grad[at]
		return fmt.Errorf("[%d] = %v, want %.8g ± %.3g (|diff| %.3g is %.3g× the bound %g·|want| + noise + %g·max|want|)",
			at, got[at], w, want.noise[at], math.Abs(float64(got[at])-w), worst, tl.Rel, tl.Floor)
	}
	return nil
}
