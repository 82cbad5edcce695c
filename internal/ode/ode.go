// Package ode integrates systems of ordinary differential equations
// dy/dt = f(t, y) in float64: Dormand–Prince 5(4) with adaptive steps (the
// method of scipy's solve_ivp "RK45", with its error norm and step-size
// rules), the same tableau at fixed steps, and Heun's method. The score
// ODEs of ebmrun (probability-flow sampling, log-likelihoods) are built on
// it. Integration runs forward or backward: t1 may be below t0.
package ode

import (
	"errors"
	"fmt"
	"math"
)

// Func writes dy/dt at (t, y) into dy. It must not keep y or dy.
type Func func(t float64, y, dy []float64) error

// DefaultTol is the default relative and absolute tolerance.
const DefaultTol = 1e-5

// Options tune Solve. Zero fields take the defaults.
type Options struct {
	RTol, ATol float64 // adaptive Dormand–Prince; default DefaultTol each
	// Steps > 0 integrates with that many equal steps instead of adapting.
	Steps int
	// Heun uses Heun's second-order method (two evaluations per step; needs
	// Steps) instead of Dormand–Prince.
	Heun bool
	// MaxSteps bounds the accepted adaptive steps (default 100 000).
	MaxSteps int
}

// Stats count what a solve did.
type Stats struct {
	Evals    int // calls of f
	Steps    int // accepted steps
	Rejected int // rejected adaptive steps
}

// ErrStepTooSmall is returned when the adaptive step shrinks below what
// float64 can resolve at t: the system is stiff or f is not smooth.
var ErrStepTooSmall = errors.New("ode: the step size became too small")

// Dormand–Prince 5(4) (Dormand & Prince 1980) tableau; the last stage is
// evaluated at the new point, so an accepted step's last derivative is the
// next step's first (first same as last).
var (
	dpC = [7]float64{0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1}
	dpA = [7][6]float64{
		{},
		{1.0 / 5},
		{3.0 / 40, 9.0 / 40},
		{44.0 / 45, -56.0 / 15, 32.0 / 9},
		{19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
		{9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
		{35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
	}
	// dpE is the fifth-order weights minus the embedded fourth-order ones.
	dpE = [7]float64{71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40}
)

// Step-size control as in Hairer, Nørsett & Wanner, Solving ODEs I, II.4.
const (
	safety    = 0.9
	minFactor = 0.2
	maxFactor = 10.0
)

// Solve integrates y from t0 to t1 in place.
func Solve(f Func, t0, t1 float64, y []float64, o Options) (Stats, error) {
	if o.RTol == 0 {
		o.RTol = DefaultTol
	}
	if o.ATol == 0 {
		o.ATol = DefaultTol
	}
	if o.MaxSteps == 0 {
		o.MaxSteps = 100000
	}
	switch {
	case !(o.RTol > 0) || !(o.ATol > 0):
		return Stats{}, fmt.Errorf("ode: tolerances rtol=%v atol=%v must be positive", o.RTol, o.ATol)
	case o.Steps < 0:
		return Stats{}, fmt.Errorf("ode: %d steps", o.Steps)
	case o.Heun && o.Steps == 0:
		return Stats{}, errors.New("ode: Heun's method needs a number of steps")
	}
	s := newSolver(f, len(y))
	if t0 == t1 {
		return s.st, nil
	}
	if o.Steps > 0 {
		return s.st, s.fixed(t0, t1, y, o)
	}
	return s.st, s.adaptive(t0, t1, y, o)
}

type solver struct {
	f    Func
	k    [7][]float64
	tmp  []float64
	ynew []float64
	st   Stats
}

func newSolver(f Func, n int) *solver {
	s := &solver{f: f, tmp: make([]float64, n), ynew: make([]float64, n)}
	for i := range s.k {
		s.k[i] = make([]float64, n)
	}
	return s
}

func (s *solver) eval(t float64, y, dy []float64) error {
	s.st.Evals++
	return s.f(t, y, dy)
}

// dpStep takes one Dormand–Prince step of size h from (t, y) with k[0] =
// f(t, y) already computed, writing the fifth-order solution into s.ynew and
// k[6] = f(t+h, ynew).
func (s *solver) dpStep(t, h float64, y []float64) error {
	for i := 1; i < 7; i++ {
		a := &dpA[i]
		for j := range y {
			acc := 0.0
			for l := 0; l < i; l++ {
				acc += a[l] * s.k[l][j]
			}
			s.tmp[j] = y[j] + h*acc
		}
		if i == 6 {
			copy(s.ynew, s.tmp)
		}
		if err := s.eval(t+dpC[i]*h, s.tmp, s.k[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *solver) fixed(t0, t1 float64, y []float64, o Options) error {
	h := (t1 - t0) / float64(o.Steps)
	for i := 0; i < o.Steps; i++ {
		t := t0 + float64(i)*h
		if i == o.Steps-1 {
			h = t1 - t
		}
		if o.Heun {
			if err := s.heun(t, h, y); err != nil {
				return err
			}
			s.st.Steps++
			continue
		}
		if i == 0 {
			if err := s.eval(t, y, s.k[0]); err != nil {
				return err
			}
		}
		if err := s.dpStep(t, h, y); err != nil {
			return err
		}
		copy(y, s.ynew)
		s.k[0], s.k[6] = s.k[6], s.k[0]
		s.st.Steps++
	}
	return nil
}

// heun is y ← y + h/2·(f(t, y) + f(t+h, y + h·f(t, y))).
func (s *solver) heun(t, h float64, y []float64) error {
	k0, k1 := s.k[0], s.k[1]
	if err := s.eval(t, y, k0); err != nil {
		return err
	}
	for j := range y {
		s.tmp[j] = y[j] + h*k0[j]
	}
	if err := s.eval(t+h, s.tmp, k1); err != nil {
		return err
	}
	for j := range y {
		y[j] += 0.5 * h * (k0[j] + k1[j])
	}
	return nil
}

// rms is the root mean square of v_j / (atol + rtol·max(|a_j|, |b_j|)).
func rms(v, a, b []float64, o Options) float64 {
	var s float64
	for j, x := range v {
		sc := o.ATol + o.RTol*math.Max(math.Abs(a[j]), math.Abs(b[j]))
		s += (x / sc) * (x / sc)
	}
	return math.Sqrt(s / float64(max(len(v), 1)))
}

// initialStep guesses a first step from the size of y, f and f's change
// (Hairer, Nørsett & Wanner, II.4), as solve_ivp does.
func (s *solver) initialStep(t, dir float64, y []float64, o Options) (float64, error) {
	f0 := s.k[0]
	d0 := rms(y, y, y, o)
	d1 := rms(f0, y, y, o)
	h0 := 1e-6
	if d0 >= 1e-5 && d1 >= 1e-5 {
		h0 = 0.01 * d0 / d1
	}
	for j := range y {
		s.tmp[j] = y[j] + dir*h0*f0[j]
	}
	f1 := s.k[1]
	if err := s.eval(t+dir*h0, s.tmp, f1); err != nil {
		return 0, err
	}
	for j := range y {
		s.ynew[j] = f1[j] - f0[j]
	}
	d2 := rms(s.ynew, y, y, o) / h0
	var h1 float64
	if d1 <= 1e-15 && d2 <= 1e-15 {
		h1 = math.Max(1e-6, h0*1e-3)
	} else {
		h1 = math.Pow(0.01/math.Max(d1, d2), 1.0/5)
	}
	return math.Min(100*h0, h1), nil
}

func (s *solver) adaptive(t0, t1 float64, y []float64, o Options) error {
	dir := math.Copysign(1, t1-t0)
	if err := s.eval(t0, y, s.k[0]); err != nil {
		return err
	}
	h, err := s.initialStep(t0, dir, y, o)
	if err != nil {
		return err
	}
	if !(h > 0) { // f or y not finite
		return fmt.Errorf("ode: the derivative at t=%g is not finite", t0)
	}
	h = math.Min(h, math.Abs(t1-t0))
	t := t0
	errv := s.tmp
	for (t1-t)*dir > 0 {
		if s.st.Steps >= o.MaxSteps {
			return fmt.Errorf("ode: no convergence after %d steps at t=%g", s.st.Steps, t)
		}
		minStep := 10 * math.Abs(math.Nextafter(t, t+dir)-t)
		if !(h >= minStep) {
			return fmt.Errorf("%w at t=%g", ErrStepTooSmall, t)
		}
		rejected := false
		for {
			hs := h * dir
			tn := t + hs
			if (tn-t1)*dir > 0 || math.Abs(t1-tn) < minStep {
				tn, hs = t1, t1-t
				h = math.Abs(hs)
			}
			if err := s.dpStep(t, hs, y); err != nil {
				return err
			}
			for j := range y {
				e := 0.0
				for l := 0; l < 7; l++ {
					e += dpE[l] * s.k[l][j]
				}
				errv[j] = hs * e
			}
			en := rms(errv, y, s.ynew, o)
			if en < 1 && !math.IsNaN(en) {
				factor := maxFactor
				if en > 0 {
					factor = math.Min(maxFactor, safety*math.Pow(en, -1.0/5))
				}
				if rejected {
					factor = math.Min(1, factor)
				}
				copy(y, s.ynew)
				s.k[0], s.k[6] = s.k[6], s.k[0]
				t = tn
				h *= factor
				s.st.Steps++
				break
			}
			s.st.Rejected++
			rejected = true
			if math.IsNaN(en) {
				h *= minFactor
			} else {
				h *= math.Max(minFactor, safety*math.Pow(en, -1.0/5))
			}
			if !(h >= minStep) {
				return fmt.Errorf("%w at t=%g", ErrStepTooSmall, t)
			}
		}
	}
	return nil
}
