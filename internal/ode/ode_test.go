package ode

import (
	"math"
	"testing"
)

// rotation is y' = (−y₁, y₀)·ω: y(t) is y(0) turned by ωt.
func rotation(omega float64) Func {
	return func(t float64, y, dy []float64) error {
		dy[0], dy[1] = -omega*y[1], omega*y[0]
		return nil
	}
}

// Tolerances, by name.
const (
	adaptiveTol = 1e-5 // RK45 at rtol = atol = 1e-7 over a few turns
	fixedTol    = 1e-8 // fifth order at 200 steps
)

func TestAdaptiveRotationBackAndForth(t *testing.T) {
	y := []float64{1, 0}
	st, err := Solve(rotation(2), 0, 3, y, Options{RTol: 1e-7, ATol: 1e-7})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(y[0]-math.Cos(6)) > adaptiveTol || math.Abs(y[1]-math.Sin(6)) > adaptiveTol {
		t.Errorf("y(3) = %v, want (cos 6, sin 6) = (%v, %v)", y, math.Cos(6), math.Sin(6))
	}
	if st.Evals < 6*st.Steps || st.Steps < 10 {
		t.Errorf("stats %+v: a step costs six evaluations", st)
	}
	// Backward in time returns to the start.
	if _, err := Solve(rotation(2), 3, 0, y, Options{RTol: 1e-7, ATol: 1e-7}); err != nil {
		t.Fatal(err)
	}
	if math.Abs(y[0]-1) > 2*adaptiveTol || math.Abs(y[1]) > 2*adaptiveTol {
		t.Errorf("back at t=0: %v, want (1, 0)", y)
	}
}

// Looser tolerances take fewer steps and still meet them.
func TestAdaptiveTolerance(t *testing.T) {
	f := func(t float64, y, dy []float64) error { dy[0] = -t * y[0]; return nil }
	prev := 0
	for _, tol := range []float64{1e-3, 1e-6, 1e-9} {
		y := []float64{1}
		st, err := Solve(f, 0, 2, y, Options{RTol: tol, ATol: tol})
		if err != nil {
			t.Fatal(err)
		}
		if e := math.Abs(y[0] - math.Exp(-2)); e > 20*tol {
			t.Errorf("tol %g: error %g", tol, e)
		}
		if st.Steps < prev {
			t.Errorf("tol %g took %d steps, a looser one %d", tol, st.Steps, prev)
		}
		prev = st.Steps
	}
}

func TestFixedOrders(t *testing.T) {
	y := []float64{1, 0}
	st, err := Solve(rotation(1), 0, 2, y, Options{Steps: 200})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(y[0]-math.Cos(2)) > fixedTol || st.Evals != 1+6*200 {
		t.Errorf("RK45 at 200 steps: %v (%+v)", y, st)
	}
	// Heun is second order: halving the step quarters the error.
	errAt := func(n int) float64 {
		y := []float64{1, 0}
		st, err := Solve(rotation(1), 0, 2, y, Options{Steps: n, Heun: true})
		if err != nil || st.Evals != 2*n {
			t.Fatal(err, st)
		}
		return math.Hypot(y[0]-math.Cos(2), y[1]-math.Sin(2))
	}
	if r := errAt(50) / errAt(100); r < 3.5 || r > 4.5 {
		t.Errorf("Heun error ratio at half the step %.3g, want ≈ 4", r)
	}
}

func TestRefusals(t *testing.T) {
	y := []float64{1}
	f := func(t float64, y, dy []float64) error { dy[0] = 1; return nil }
	for _, o := range []Options{{RTol: -1}, {Steps: -2}, {Heun: true}} {
		if _, err := Solve(f, 0, 1, y, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	nan := func(t float64, y, dy []float64) error { dy[0] = math.NaN(); return nil }
	if _, err := Solve(nan, 0, 1, y, Options{}); err == nil {
		t.Error("a NaN derivative integrated")
	}
}
