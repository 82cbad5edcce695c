package sampler

import (
	"context"
	"math"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
)

// The probability-flow ODE, adaptive and at fixed Heun steps, recovers
// Ring8's weights from N(0, σ_max²I) deterministically.
func TestODERecoversModeWeights(t *testing.T) {
	t.Parallel()
	for _, o := range []*ODE{
		{Sigmas: []float64{10, DefaultSigmaMin}, RTol: 1e-4, ATol: 1e-4},
		{Sigmas: []float64{10, DefaultSigmaMin}, Method: MethodHeun, Steps: 60},
	} {
		x, st, err := Collect(context.Background(), o, ring8Source(), Config{N: statSamples / 4, Dim: 2, Seed: 5, Init: Gaussian{Std: 10}})
		if err != nil {
			t.Fatal(err)
		}
		tv, spread := modeStats(dataset.Ring8(), x)
		t.Logf("ode %s: mode TV %.4f, spread %.5f, %d evaluations per sample", o.Method, tv, spread, st.Evals/int64(st.End-st.Start))
		// A quarter of the samples: twice the frequencies' noise.
		if tv > 2*modeTV {
			t.Errorf("%s: mode TV %.4f, want ≤ %v", o.Method, tv, 2*modeTV)
		}
		if want := ring8Spread(DefaultSigmaMin); math.Abs(spread/want-1) > spreadRelTol {
			t.Errorf("%s: spread %.5f, want %.5f", o.Method, spread, want)
		}
		perSample := float64(st.Evals) / float64(st.End-st.Start)
		if o.Steps > 0 && perSample != float64(o.Evals()) || o.Steps == 0 && (perSample < 20 || perSample > 2000) {
			t.Errorf("%s: %v evaluations per sample reported (Evals() %d)", o.Method, perSample, o.Evals())
		}
	}
}

func TestEMRecoversModeWeights(t *testing.T) {
	t.Parallel()
	tv, spread := sampleRing8(t, &EM{Sigmas: []float64{5, DefaultSigmaMin}, Steps: 100}, Gaussian{Std: 5}, 6)
	checkRing8(t, tv, spread, DefaultSigmaMin)
}

// vpGauss is the exact score of N(μ, c²I) diffused by a VP schedule: at
// √(1−ᾱ) = σ, x_t ~ N(√ᾱ·μ, (ᾱc² + σ²)I).
type vpGauss struct{ mu, c float64 }

func (g vpGauss) Score(dst, x []float32, n int, nz Noise) error {
	s2 := float64(nz.Sigma) * float64(nz.Sigma)
	ab := 1 - s2
	v := ab*g.c*g.c + s2
	for i, xi := range x {
		dst[i] = float32(-(float64(xi) - math.Sqrt(ab)*g.mu) / v)
	}
	return nil
}

// moments are the mean and variance of all values.
func moments(x []float32) (m, v float64) {
	for _, a := range x {
		m += float64(a)
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (float64(a) - m) * (float64(a) - m)
	}
	return m, v / float64(len(x)-1)
}

// DDIM (η = 0 and 1, any stride) and strided DDPM sample a Gaussian's
// moments from N(0, I) with its exact VP score.
func TestDDIMAndStridedDDPMGaussian(t *testing.T) {
	t.Parallel()
	g := vpGauss{mu: 1.5, c: 0.5}
	src := func() (Scorer, error) { return g, nil }
	for _, smp := range []Sampler{
		&DDIM{Steps: 50},
		&DDIM{Steps: 200, Eta: 1},
		&DDIM{Times: quadratic(1000, 40)},
		&DDPM{Steps: 100},
	} {
		x, st, err := Collect(context.Background(), smp, src, Config{N: 4000, Dim: 2, Seed: 8})
		if err != nil {
			t.Fatal(err)
		}
		m, v := moments(x)
		// The mean's s.e. is 0.5/√8000 ≈ 0.006; the coarse strides add
		// discretisation error of order 1/K.
		if math.Abs(m-g.mu) > 0.03 || math.Abs(v/(g.c*g.c)-1) > 0.1 {
			t.Errorf("%s %+v: mean %.4f, variance %.4f; want %v, %v", smp.Name(), smp, m, v, g.mu, g.c*g.c)
		}
		if st.Evals != int64(4000*smp.Evals()) {
			t.Errorf("%s: %d evaluations, want %d per sample", smp.Name(), st.Evals, smp.Evals())
		}
	}
	// η = 0 is deterministic: the same starts give the same samples for any seed of the noise.
	a, _, _ := Collect(context.Background(), &DDIM{Steps: 10}, src, Config{N: 10, Dim: 2, Seed: 1, Init: Uniform{-1, 1}})
	b, _, _ := Collect(context.Background(), &DDIM{Steps: 10}, src, Config{N: 10, Dim: 2, Seed: 1, Init: Uniform{-1, 1}})
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("DDIM η = 0 is not reproducible")
		}
	}
}

// quadratic is K steps spaced quadratically over 0 … T−1 (DDIM's other
// sub-sequence, denser at low noise).
func quadratic(T, K int) []int {
	var out []int
	for i := 0; i < K; i++ {
		t := int(float64(T-1) * float64(i*i) / float64((K-1)*(K-1)))
		if len(out) == 0 || t > out[len(out)-1] {
			out = append(out, t)
		}
	}
	return out
}

func TestStrided(t *testing.T) {
	got := Strided(1000, 4)
	if len(got) != 4 || got[0] != 0 || got[1] != 250 || got[3] != 750 {
		t.Errorf("Strided(1000, 4) = %v", got)
	}
	if len(Strided(10, 0)) != 10 || len(Strided(10, 20)) != 10 {
		t.Error("K = 0 or K ≥ T must give every step")
	}
}

func TestFlowSamplersRefuse(t *testing.T) {
	for _, s := range []Sampler{
		&ODE{Sigmas: []float64{1}},
		&ODE{Method: "euler"},
		&ODE{Method: MethodHeun},
		&EM{Steps: -1},
		&DDIM{Eta: -1},
		&DDIM{Times: []int{5, 3}},
		&DDPM{Steps: -2},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s %+v accepted", s.Name(), s)
		}
	}
}
