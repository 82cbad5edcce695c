package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const (
	toyDraws     = 100_000 // points per moment check
	momentZ      = 5.0     // |empirical − exact| moment, in standard errors
	boxOutsideOK = 0.001   // fraction of mass a toy's Box may leave out
)

// toyMoments are the exact mean and E‖x‖² of the toys that are not
// mixtures (mixtures get theirs from their GMM); derivations in comments.
var toyMoments = map[string]struct {
	mean [2]float64
	sq   float64
}{
	// t ~ U[1.5π, 4.5π]: E[t cos t] = 2, E[t sin t] = 2/(3π), E t² = 9.75π²;
	// coordinates divided by 5, noise N(0, 1) before dividing.
	"swissroll": {[2]float64{0.4, 2 / (15 * math.Pi)}, (9.75*math.Pi*math.Pi + 2) / 25},
	// Uniform on half of [−4, 4]², symmetric: each coordinate has E x² = 16/3.
	"checkerboard": {[2]float64{0, 0}, 32.0 / 3},
	// Raw x: E = ½, E x² = 1.01; raw y: E = ¼, E y² = 0.635 − 1/π; then
	// x' = 2x − 1, y' = 2y − 0.2.
	"moons": {[2]float64{0, 0.3}, 5.42 - 4/math.Pi},
	// Mean of the squared radii plus the noise variance of both coordinates.
	"rings": {[2]float64{0, 0}, (3.6*3.6+2.7*2.7+1.65*1.65+0.75*0.75)/4 + 2*0.08*0.08},
	// 5-fold symmetric; ‖x‖² = 4(f₀² + f₁²), E f₀² = 1 + 0.3², E f₁² = 0.1².
	"pinwheel": {[2]float64{0, 0}, 4 * (1 + 0.09 + 0.01)},
}

func exactMoments(t *testing.T, d *ToyDist) (mean [2]float64, sq float64) {
	if d.GMM == nil {
		m, ok := toyMoments[d.Name]
		if !ok {
			t.Fatalf("%s: no exact moments in the test table", d.Name)
		}
		return m.mean, m.sq
	}
	g := d.GMM
	for k, w := range g.Weights {
		for j := range mean {
			mean[j] += w * g.Means[k][j]
		}
		sq += w * (sqDist(g.Means[k], []float64{0, 0}) + 2*g.Stds[k]*g.Stds[k])
	}
	return mean, sq
}

func TestToyRegistry(t *testing.T) {
	t.Parallel()
	want := []string{"25gaussians", "8gaussians", "checkerboard", "moons", "pinwheel", "ring8", "rings", "swissroll"}
	if got := ToyNames(); !slices.Equal(got, want) {
		t.Fatalf("ToyNames() = %v, want %v", got, want)
	}
	for _, name := range want {
		d, err := Toy(strings.ToUpper(name))
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != name || d.Doc == "" || !(d.Box > 0) {
			t.Errorf("%s: incomplete: name %q, doc %q, box %v", name, d.Name, d.Doc, d.Box)
		}
		if isMixture := strings.Contains(name, "gaussians") || name == "ring8"; isMixture != (d.GMM != nil) {
			t.Errorf("%s: GMM exposed = %v, want %v", name, d.GMM != nil, isMixture)
		}
	}
	_, err := Toy("spiral")
	if err == nil || !strings.Contains(err.Error(), `"spiral"`) || !strings.Contains(err.Error(), "swissroll") {
		t.Errorf("unknown name: error %v should name it and list the known ones", err)
	}
}

func TestToyShapesAndDeterminism(t *testing.T) {
	t.Parallel()
	for _, name := range ToyNames() {
		d, _ := Toy(name)
		a := d.Sample(nil, 500, rand.New(rand.NewPCG(7, 1)))
		b := d.Sample(make([]float64, 3000), 500, rand.New(rand.NewPCG(7, 1)))
		c := d.Sample(nil, 500, rand.New(rand.NewPCG(8, 1)))
		if len(a) != 1000 || len(b) != 1000 {
			t.Errorf("%s: %d and %d values for 500 points, want 1000", name, len(a), len(b))
		}
		if !slices.Equal(a, b) {
			t.Errorf("%s: one seed gave two different samples", name)
		}
		if slices.Equal(a, c) {
			t.Errorf("%s: two seeds gave the same sample", name)
		}
		for i, v := range a {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s: value %d is %v", name, i, v)
			}
		}
		x := d.Tensor(500, rand.New(rand.NewPCG(7, 1)))
		if !slices.Equal(x.Shape, []int64{500, 2}) || len(x.F32) != 1000 || x.F32[3] != float32(a[3]) {
			t.Errorf("%s: Tensor shape %v with %d values, want [500 2] matching Sample", name, x.Shape, len(x.F32))
		}
	}
}

func TestToyMomentsAndScale(t *testing.T) {
	t.Parallel()
	for _, name := range ToyNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, _ := Toy(name)
			x := d.Sample(nil, toyDraws, rand.New(rand.NewPCG(3, 4)))
			wantMean, wantSq := exactMoments(t, d)
			var sum, sumSq [2]float64
			var sq, sqSq float64
			outside := 0
			for i := 0; i < toyDraws; i++ {
				p := x[2*i : 2*i+2]
				for j := range p {
					sum[j] += p[j]
					sumSq[j] += p[j] * p[j]
				}
				r2 := p[0]*p[0] + p[1]*p[1]
				sq += r2
				sqSq += r2 * r2
				if math.Abs(p[0]) > d.Box || math.Abs(p[1]) > d.Box {
					outside++
				}
			}
			n := float64(toyDraws)
			for j := range sum {
				m := sum[j] / n
				se := math.Sqrt((sumSq[j]/n - m*m) / n)
				if math.Abs(m-wantMean[j]) > momentZ*se {
					t.Errorf("mean[%d] = %.4f, exact %.4f (±%.4f)", j, m, wantMean[j], se)
				}
			}
			m := sq / n
			if se := math.Sqrt((sqSq/n - m*m) / n); math.Abs(m-wantSq) > momentZ*se {
				t.Errorf("E‖x‖² = %.4f, exact %.4f (±%.4f)", m, wantSq, se)
			}
			if f := float64(outside) / n; f > boxOutsideOK {
				t.Errorf("%.4f of the points lie outside the documented box ±%v", f, d.Box)
			}
		})
	}
}

func TestCheckerboardOnBlackSquares(t *testing.T) {
	t.Parallel()
	d, _ := Toy("checkerboard")
	x := d.Sample(nil, 10_000, rand.New(rand.NewPCG(5, 6)))
	for i := 0; i < len(x); i += 2 {
		cell := int(math.Floor(x[i]/2)) + int(math.Floor(x[i+1]/2))
		if cell&1 != 0 || math.Abs(x[i]) > 4 || math.Abs(x[i+1]) > 4 {
			t.Fatalf("point (%v, %v) is off the black squares", x[i], x[i+1])
		}
	}
}

func ExampleToy() {
	d, err := Toy("8gaussians")
	if err != nil {
		panic(err)
	}
	x := d.Tensor(1000, rand.New(rand.NewPCG(1, 2)))
	s := d.GMM.Score(nil, []float64{0, 0}, 0.5) // exact score of p_σ at the origin
	fmt.Println(x.Shape, d.Box, math.Abs(s[0]) < 1e-12)
	// Output: [1000 2] 4.5 true
}
