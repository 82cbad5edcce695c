package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/dataset"
)

const (
	refTol = 1e-9 // fast path against the plain reference, on values of order 1

	testN     = 500 // points a set in the statistical tests
	testPerms = 100 // permutations there: p-values down to 1/101

	// One distribution, testN points a set: the unbiased MMD² and energy
	// distance are centred on 0 with a spread of order 1/n.
	nullMMDTol    = 0.005
	nullEnergyTol = 0.02
	nullSW1Tol    = 0.2  // SW1 of two testN-point samples of one 2-D toy
	nullMinP      = 0.05 // a p-value below this for one distribution fails

	altMaxP = 0.01 // a p-value above this for clearly different ones fails
	altZ    = 3    // and the metric must exceed this many standard errors

	w1N = 5000 // points a set in the 1-D shift test
)

// w1ShiftTol bounds |SW1 − δ| for 1-D Gaussians, w1N points a set: four
// standard errors of the difference of the two sample means, which
// dominates the error.
var w1ShiftTol = 4 * math.Sqrt(2.0/w1N)

func toy(t *testing.T, name string, n int, seed uint64) []float32 {
	t.Helper()
	d, err := dataset.Toy(name)
	if err != nil {
		t.Fatal(err)
	}
	return d.Tensor(n, rand.New(rand.NewPCG(seed, seed))).F32
}

func gauss(n, d int, shift, scale float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 99))
	x := make([]float64, n*d)
	for i := range x {
		x[i] = shift + scale*r.NormFloat64()
	}
	return x
}

func TestSameDistribution(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"8gaussians", "moons"} {
		x, y := toy(t, name, testN, 1), toy(t, name, testN, 2)
		r, err := Compare(x, y, 2, Options{Seed: 3, Permutations: testPerms})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: MMD² %.5f (p %.3f)  energy %.5f ± %.5f (p %.3f)  SW1 %.4f ± %.4f",
			name, r.MMD2.Value, r.MMD2.PValue, r.Energy.Value, r.Energy.StdErr, r.Energy.PValue, r.SW1.Value, r.SW1.StdErr)
		if math.Abs(r.MMD2.Value) > nullMMDTol || r.MMD2.PValue < nullMinP {
			t.Errorf("%s: MMD² %v with p %v; want |MMD²| ≤ %v and p ≥ %v", name, r.MMD2.Value, r.MMD2.PValue, nullMMDTol, nullMinP)
		}
		if math.Abs(r.Energy.Value) > nullEnergyTol || r.Energy.PValue < nullMinP {
			t.Errorf("%s: energy %v with p %v; want |E| ≤ %v and p ≥ %v", name, r.Energy.Value, r.Energy.PValue, nullEnergyTol, nullMinP)
		}
		if r.SW1.Value > nullSW1Tol {
			t.Errorf("%s: SW1 %v, want ≤ %v", name, r.SW1.Value, nullSW1Tol)
		}
	}
}

func TestDifferentDistributions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		x, y []float64
		d    int
	}{
		{"8gaussians vs rings", f64(toy(t, "8gaussians", testN, 1)), f64(toy(t, "rings", testN, 2)), 2},
		{"N(0,I) vs N(0.4,I) in 3-D", gauss(testN, 3, 0, 1, 1), gauss(testN, 3, 0.4, 1, 2), 3},
		{"N(0,1) vs N(0,2²)", gauss(testN, 1, 0, 1, 1), gauss(testN, 1, 0, 2, 2), 1},
	}
	for _, c := range cases {
		r, err := Compare(c.x, c.y, c.d, Options{Seed: 3, Permutations: testPerms})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: MMD² %.5f ± %.5f (p %.3f)  energy %.5f ± %.5f (p %.3f)  SW1 %.4f ± %.4f", c.name,
			r.MMD2.Value, r.MMD2.StdErr, r.MMD2.PValue, r.Energy.Value, r.Energy.StdErr, r.Energy.PValue, r.SW1.Value, r.SW1.StdErr)
		for _, m := range []struct {
			name string
			e    Estimate
		}{{"MMD²", r.MMD2}, {"energy", r.Energy}} {
			if m.e.PValue > altMaxP || m.e.Value < altZ*m.e.StdErr || !(m.e.StdErr > 0) {
				t.Errorf("%s: %s %v ± %v with p %v; want > %v standard errors and p ≤ %v", c.name, m.name, m.e.Value, m.e.StdErr, m.e.PValue, altZ, altMaxP)
			}
		}
		if r.SW1.Value < altZ*r.SW1.StdErr || r.SW1.Value < nullSW1Tol/2 {
			t.Errorf("%s: SW1 %v ± %v is not clearly positive", c.name, r.SW1.Value, r.SW1.StdErr)
		}
	}
}

func TestSlicedWassersteinShift1D(t *testing.T) {
	t.Parallel()
	for _, delta := range []float64{0, 0.25, 1, 3} {
		x, y := gauss(w1N, 1, 0, 1, 1), gauss(w1N, 1, delta, 1, 2)
		e, err := SlicedWasserstein1(x, y, 1, Options{Seed: 1, Projections: 4})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(e.Value-delta) > w1ShiftTol {
			t.Errorf("δ = %v: SW1 = %v, want δ ± %v", delta, e.Value, w1ShiftTol)
		}
		if e.StdErr > refTol { // every direction is ±1 in 1-D
			t.Errorf("δ = %v: stderr %v over directions that are all ±1", delta, e.StdErr)
		}
	}
}

func TestW1Sorted(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	a, b := make([]float64, 101), make([]float64, 101)
	for i := range a {
		a[i], b[i] = r.NormFloat64(), 2*r.NormFloat64()
	}
	slices.Sort(a)
	slices.Sort(b)
	var want float64
	for i := range a {
		want += math.Abs(a[i]-b[i]) / float64(len(a))
	}
	if got := w1Sorted(a, b); math.Abs(got-want) > refTol {
		t.Errorf("equal sizes: %v, want the mean gap of order statistics %v", got, want)
	}
	// F_a jumps to 1 at 0; F_b is ½ on [0, 1): the area between is ½.
	if got := w1Sorted([]float64{0}, []float64{0, 1}); math.Abs(got-0.5) > refTol {
		t.Errorf("unequal sizes: %v, want 0.5", got)
	}
	if got := w1Sorted([]float64{1, 1}, []float64{1}); got != 0 {
		t.Errorf("ties: %v, want 0", got)
	}
}

// reference computes MMD² per bandwidth, the mixture MMD² and the energy
// distance the plain way, pair by pair, for small sets.
func reference(x, y []float64, d int) (mix float64, per []float64, energy float64) {
	m, n := len(x)/d, len(y)/d
	z := append(slices.Clone(x), y...)
	dist := func(i, j int) float64 {
		var s float64
		for k := 0; k < d; k++ {
			t := z[i*d+k] - z[j*d+k]
			s += t * t
		}
		return math.Sqrt(s)
	}
	var all []float64
	for i := 0; i < m+n; i++ {
		for j := i + 1; j < m+n; j++ {
			all = append(all, dist(i, j))
		}
	}
	slices.Sort(all)
	med := all[len(all)/2]
	mean := func(f func(a, b float64) float64) (xx, yy, xy float64) {
		for i := 0; i < m+n; i++ {
			for j := 0; j < m+n; j++ {
				if i == j {
					continue
				}
				v := f(dist(i, j), med)
				switch {
				case i < m && j < m:
					xx += v / float64(m*(m-1))
				case i >= m && j >= m:
					yy += v / float64(n*(n-1))
				case i < m:
					xy += v / float64(m*n)
				}
			}
		}
		return
	}
	for _, f := range BandwidthFactors {
		xx, yy, xy := mean(func(r, med float64) float64 { return math.Exp(-r * r / (2 * f * f * med * med)) })
		per = append(per, xx+yy-2*xy)
		mix += (xx + yy - 2*xy) / float64(len(BandwidthFactors))
	}
	xx, yy, xy := mean(func(r, _ float64) float64 { return r })
	return mix, per, 2*xy - xx - yy
}

func TestAgainstReference(t *testing.T) {
	t.Parallel()
	x, y := gauss(40, 3, 0, 1, 5), gauss(31, 3, 0.5, 1.2, 6)
	mix, per, energy := reference(x, y, 3)
	r, err := Compare(x, y, 3, Options{Seed: 1, Permutations: 50})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.MMD2.Value-mix) > refTol || math.Abs(r.Energy.Value-energy) > refTol {
		t.Errorf("MMD² %v, energy %v; reference %v, %v", r.MMD2.Value, r.Energy.Value, mix, energy)
	}
	for k := range per {
		if math.Abs(r.MMD2PerBandwidth[k]-per[k]) > refTol {
			t.Errorf("bandwidth %v: MMD² %v, reference %v", r.Bandwidths[k], r.MMD2PerBandwidth[k], per[k])
		}
	}
	mmd, err := MMD2(x, y, 3, Options{Seed: 1, Permutations: 50})
	if err != nil || mmd != r.MMD2 {
		t.Errorf("MMD2 alone %+v (%v), in Compare %+v", mmd, err, r.MMD2)
	}
	en, err := EnergyDistance(x, y, 3, Options{Seed: 1, Permutations: 50})
	if err != nil || en != r.Energy {
		t.Errorf("EnergyDistance alone %+v (%v), in Compare %+v", en, err, r.Energy)
	}
}

func TestSeeds(t *testing.T) {
	t.Parallel()
	x, y := gauss(300, 2, 0, 1, 1), gauss(400, 2, 0.1, 1, 2)
	o := Options{Seed: 7, MaxSamples: 200, Permutations: 100, Projections: 16}
	a, _ := Compare(x, y, 2, o)
	b, _ := Compare(x, y, 2, o)
	if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", b) { // %v, as NaN ≠ NaN
		t.Errorf("one seed, two reports:\n%+v\n%+v", a, b)
	}
	o.Seed = 8
	c, _ := Compare(x, y, 2, o)
	if c.MMD2.Value == a.MMD2.Value || c.SW1.Value == a.SW1.Value {
		t.Errorf("seeds 7 and 8 chose the same subsets and directions")
	}
	if a.UsedX != 200 || a.UsedY != 200 || a.NX != 300 || a.NY != 400 || a.Dim != 2 {
		t.Errorf("sizes: %+v", a)
	}
	o.Permutations = -1
	if e, _ := MMD2(x, y, 2, o); !math.IsNaN(e.PValue) || math.IsNaN(e.Value) {
		t.Errorf("no permutations: %+v, want a value and a NaN p-value", e)
	}
}

func TestRefusesBadInput(t *testing.T) {
	t.Parallel()
	ok := []float64{0, 1, 2, 3}
	cases := []struct {
		x, y []float64
		d    int
		o    Options
		want string
	}{
		{ok, ok, 0, Options{}, "dimension 0"},
		{ok, ok[:3], 2, Options{}, "y has 3 values, not a whole number of 2-dimensional points"},
		{ok[:2], ok, 2, Options{}, "x has 1 points"},
		{ok, []float64{0, math.NaN(), 1, 2}, 2, Options{}, "y point 0 has a non-finite value NaN"},
		{ok, ok, 2, Options{MaxSamples: 1}, "MaxSamples is 1"},
		{ok, ok, 2, Options{Projections: -2}, "Projections is -2"},
	}
	for _, c := range cases {
		_, err1 := Compare(c.x, c.y, c.d, c.o)
		_, err2 := SlicedWasserstein1(c.x, c.y, c.d, c.o)
		for _, err := range []error{err1, err2} {
			if err == nil || !strings.HasPrefix(err.Error(), "eval: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		}
	}
}

// TestLargeSetsStayFast compares two sets of 10 000 points with the
// defaults: the kernel metrics subsample, so this takes well under a second
// on two cores.
func TestLargeSetsStayFast(t *testing.T) {
	x, y := toy(t, "pinwheel", 10000, 1), toy(t, "pinwheel", 10000, 2)
	start := time.Now()
	r, err := Compare(x, y, 2, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10 000 × 10 000 points, 2-D: %v (MMD² %.5f p %.3f, energy %.5f p %.3f, SW1 %.4f)",
		time.Since(start), r.MMD2.Value, r.MMD2.PValue, r.Energy.Value, r.Energy.PValue, r.SW1.Value)
	if r.UsedX != DefaultMaxSamples || r.UsedY != DefaultMaxSamples || r.NX != 10000 {
		t.Errorf("used %d and %d of %d points, want the cap %d", r.UsedX, r.UsedY, r.NX, DefaultMaxSamples)
	}
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func ExampleCompare() {
	g := dataset.Ring8()
	x := g.Sample(nil, 5000, rand.New(rand.NewPCG(1, 1)))
	y := g.Sample(nil, 5000, rand.New(rand.NewPCG(2, 2)))
	shifted := slices.Clone(y)
	for i := range shifted {
		shifted[i] += 0.5
	}
	o := Options{Seed: 1, MaxSamples: 500, Permutations: 100}
	same, _ := Compare(x, y, 2, o)
	diff, _ := Compare(x, shifted, 2, o)
	fmt.Println("one distribution, MMD² test rejects:", same.MMD2.PValue < 0.01)
	fmt.Println("shifted by (0.5, 0.5), MMD² test rejects:", diff.MMD2.PValue < 0.01)
	// A shift by a vector of length δ moves SW1 by δ·E|θ₁| = δ·2/π in 2-D.
	fmt.Printf("SW1 grows by %.1f\n", diff.SW1.Value-same.SW1.Value)
	// Output:
	// one distribution, MMD² test rejects: false
	// shifted by (0.5, 0.5), MMD² test rejects: true
	// SW1 grows by 0.4
}
