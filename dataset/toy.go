package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// ToyDist is a two-dimensional toy distribution of the kind score-based and
// flow models are first tried on. The definitions follow the ones the
// literature's code uses (FFJORD's toy_data.py, sklearn's make_swiss_roll
// and make_moons), with every point drawn independently: where those
// generators place points on a fixed grid of angles, these draw the angle.
type ToyDist struct {
	// Name is the registry key (see ToyNames).
	Name string
	// Doc describes the distribution and its natural scale in one line.
	Doc string
	// Box is the natural scale: nearly all the mass (at least 99.9%) lies in
	// [-Box, Box]², which is what a sampler's starting noise or a plot's
	// axes should cover.
	Box float64
	// GMM is the distribution as a Gaussian mixture, with exact log-density
	// and score at every σ, for the toys that are mixtures; nil otherwise.
	GMM *GMM

	sample func(dst []float64, r *rand.Rand) // one point into dst[0:2]
}

// ToyDim is the dimension of every toy distribution.
const ToyDim = 2

// Sample draws n points into dst (n×2 values, row-major), allocating when
// dst is too short, and returns it. Randomness comes from r only, so a seed
// fixes the points.
func (t *ToyDist) Sample(dst []float64, n int, r *rand.Rand) []float64 {
	if t.GMM != nil {
		return t.GMM.Sample(dst, n, r)
	}
	if len(dst) < n*ToyDim {
		dst = make([]float64, n*ToyDim)
	}
	dst = dst[:n*ToyDim]
	for i := 0; i < n; i++ {
		t.sample(dst[i*ToyDim:(i+1)*ToyDim], r)
	}
	return dst
}

// Tensor draws n points as a float32 [n, 2] tensor, the layout samplers,
// trainers and .npy files use.
func (t *ToyDist) Tensor(n int, r *rand.Rand) *graph.Tensor {
	x := t.Sample(nil, n, r)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return graph.NewFloat32([]int64{int64(n), ToyDim}, out)
}

var toys = map[string]func() *ToyDist{
	"swissroll":    swissRoll,
	"8gaussians":   eightGaussians,
	"25gaussians":  twentyFiveGaussians,
	"checkerboard": checkerboard,
	"moons":        moons,
	"rings":        rings,
	"pinwheel":     pinwheel,
	"ring8":        ring8Toy,
}

// ToyNames lists the registered toy distributions, sorted.
func ToyNames() []string {
	names := make([]string, 0, len(toys))
	for n := range toys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Toy returns the toy distribution registered under name (see ToyNames).
// Each call builds a fresh value, so callers may keep and share it.
func Toy(name string) (*ToyDist, error) {
	mk, ok := toys[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("dataset: no toy distribution %q (have %s)", name, strings.Join(ToyNames(), ", "))
	}
	return mk(), nil
}

// Swiss roll (sklearn make_swiss_roll with noise 1, coordinates x and z,
// divided by 5 as FFJORD does): t ~ U[1.5π, 4.5π], point (t cos t, t sin t)/5
// plus N(0, 0.2²) noise in each coordinate. Extent about ±2.8.
func swissRoll() *ToyDist {
	return &ToyDist{
		Name: "swissroll",
		Doc:  "swiss roll: t~U[1.5π,4.5π], (t·cos t, t·sin t)/5 + N(0, 0.2²I); within about ±3.5",
		Box:  3.5,
		sample: func(p []float64, r *rand.Rand) {
			t := 1.5 * math.Pi * (1 + 2*r.Float64())
			p[0] = (t*math.Cos(t) + r.NormFloat64()) / 5
			p[1] = (t*math.Sin(t) + r.NormFloat64()) / 5
		},
	}
}

// 8 Gaussians (FFJORD): equal-weight modes at radius 4/√2 ≈ 2.83, angles
// kπ/4, standard deviation 0.5/√2 ≈ 0.354.
func eightGaussians() *ToyDist {
	const radius, std = 4 / math.Sqrt2, 0.5 / math.Sqrt2
	means := make([][]float64, 8)
	for k := range means {
		a := 2 * math.Pi * float64(k) / 8
		means[k] = []float64{radius * math.Cos(a), radius * math.Sin(a)}
	}
	return &ToyDist{
		Name: "8gaussians",
		Doc:  "8 equal Gaussians on a circle of radius 2√2, std 0.354; within ±4.3",
		Box:  4.5,
		GMM:  mustGMM(equal(8), means, fill(8, std)),
	}
}

// 25 Gaussians (FFJORD, after WGAN-GP): a 5×5 grid of equal-weight modes at
// (i, j)/√2 for i, j ∈ {−2, …, 2}, standard deviation 0.05/2.828 ≈ 0.0177.
func twentyFiveGaussians() *ToyDist {
	const spacing, std = 2 / 2.828, 0.05 / 2.828
	var means [][]float64
	for i := -2; i <= 2; i++ {
		for j := -2; j <= 2; j++ {
			means = append(means, []float64{spacing * float64(i), spacing * float64(j)})
		}
	}
	return &ToyDist{
		Name: "25gaussians",
		Doc:  "5×5 grid of equal Gaussians, spacing 0.707 (modes within ±1.41), std 0.0177; within ±1.5",
		Box:  1.5,
		GMM:  mustGMM(equal(25), means, fill(25, std)),
	}
}

// Checkerboard (FFJORD): uniform on the 8 "black" 2×2 squares of a 4×4
// board covering [−4, 4]², so the density is 1/32 on them and 0 elsewhere.
func checkerboard() *ToyDist {
	return &ToyDist{
		Name: "checkerboard",
		Doc:  "uniform on the 8 black squares (side 2) of a checkerboard on [-4,4]²",
		Box:  4,
		sample: func(p []float64, r *rand.Rand) {
			x1 := 4*r.Float64() - 2
			x2 := r.Float64() - 2*float64(r.IntN(2))
			x2 += float64(int(math.Floor(x1)) & 1)
			p[0], p[1] = 2*x1, 2*x2
		},
	}
}

// Two moons (sklearn make_moons, noise 0.1, then ×2 and shifted by
// (−1, −0.2) as FFJORD does): the upper half circle (cos θ, sin θ) and the
// lower one (1 − cos θ, 0.5 − sin θ), θ ~ U[0, π], each picked with
// probability ½, plus N(0, 0.1²) noise before scaling.
func moons() *ToyDist {
	return &ToyDist{
		Name: "moons",
		Doc:  "two interleaved half circles, noise 0.1, scaled ×2 and shifted; x within about [-3.5,3.5], y within [-2,2.5]",
		Box:  3.5,
		sample: func(p []float64, r *rand.Rand) {
			th := math.Pi * r.Float64()
			x, y := math.Cos(th), math.Sin(th)
			if r.IntN(2) == 1 {
				x, y = 1-x, 0.5-y
			}
			p[0] = 2*(x+0.1*r.NormFloat64()) - 1
			p[1] = 2*(y+0.1*r.NormFloat64()) - 0.2
		},
	}
}

// RingRadii are the radii of the concentric rings toy (FFJORD's 1.2, 0.9,
// 0.55, 0.25, times 3).
var RingRadii = []float64{3.6, 2.7, 1.65, 0.75}

// Concentric rings (FFJORD): a ring picked uniformly from RingRadii, a
// uniform angle, plus N(0, 0.08²) noise in each coordinate.
func rings() *ToyDist {
	return &ToyDist{
		Name: "rings",
		Doc:  "4 concentric rings of radii 3.6, 2.7, 1.65, 0.75 with N(0, 0.08²I) noise; within ±4",
		Box:  4,
		sample: func(p []float64, r *rand.Rand) {
			rad := RingRadii[r.IntN(len(RingRadii))]
			a := 2 * math.Pi * r.Float64()
			p[0] = rad*math.Cos(a) + 0.08*r.NormFloat64()
			p[1] = rad*math.Sin(a) + 0.08*r.NormFloat64()
		},
	}
}

// Pinwheel (FFJORD, after Johnson et al. 2016): 5 arms; a point
// f = (1 + 0.3 z₁, 0.1 z₂) is rotated by the arm's angle 2πk/5 plus
// 0.25·exp(f₁), then doubled.
func pinwheel() *ToyDist {
	const arms, radialStd, tangentialStd, rate = 5, 0.3, 0.1, 0.25
	return &ToyDist{
		Name: "pinwheel",
		Doc:  "5-armed pinwheel (radial std 0.3, tangential 0.1, rate 0.25), scaled ×2; within ±4",
		Box:  4,
		sample: func(p []float64, r *rand.Rand) {
			f0 := 1 + radialStd*r.NormFloat64()
			f1 := tangentialStd * r.NormFloat64()
			a := 2*math.Pi*float64(r.IntN(arms))/arms + rate*math.Exp(f0)
			c, s := math.Cos(a), math.Sin(a)
			p[0] = 2 * (f0*c + f1*s)
			p[1] = 2 * (-f0*s + f1*c)
		},
	}
}

// ring8Toy is the samplers' test mixture Ring8 in the registry.
func ring8Toy() *ToyDist {
	return &ToyDist{
		Name: "ring8",
		Doc:  "8 Gaussians on a circle of radius 2, std 0.1, weights ∝ 1…8 (the samplers' test mixture); within ±2.5",
		Box:  2.5,
		GMM:  Ring8(),
	}
}

func mustGMM(w []float64, means [][]float64, stds []float64) *GMM {
	g, err := NewGMM(w, means, stds)
	if err != nil {
		panic(err) // the constants of this file are valid
	}
	return g
}

func equal(k int) []float64 { return fill(k, 1) }

func fill(k int, v float64) []float64 {
	s := make([]float64, k)
	for i := range s {
		s[i] = v
	}
	return s
}
