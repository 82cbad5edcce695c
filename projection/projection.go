// Package projection draws the slicing vectors v of sliced score matching
// (vᵀ∇x(vᵀs) + ½(vᵀs)², docs/design.md "Losses"), for the trainer and the
// evaluator alike, so that one seed gives the same vectors in training and
// in evaluation.
//
// Every kind has E[vvᵀ] = I. A row of d values takes a fixed number of draws
// from the source in a fixed order, so rows drawn one after another do not
// depend on how a caller batches them.
package projection

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Kind is the distribution of v.
type Kind string

// The kinds.
const (
	Rademacher Kind = "rademacher" // ±1 per coordinate, one Uint64 each
	Gaussian   Kind = "gaussian"   // N(0, I), one NormFloat64 each
	Sphere     Kind = "sphere"     // uniform on the sphere of radius √d: a Gaussian row rescaled
)

// Kinds lists the kinds Validate accepts.
var Kinds = []Kind{Rademacher, Gaussian, Sphere}

// Validate refuses an unknown kind.
func (k Kind) Validate() error {
	switch k {
	case Rademacher, Gaussian, Sphere:
		return nil
	}
	return fmt.Errorf("projection: unknown kind %q (want rademacher, gaussian or sphere)", string(k))
}

// Row fills v, one vector of len(v) coordinates, from r. An unknown kind
// panics: callers validate settings first.
func Row(v []float32, k Kind, r *rand.Rand) {
	switch k {
	case Rademacher:
		for j := range v {
			if r.Uint64()&1 == 0 {
				v[j] = 1
			} else {
				v[j] = -1
			}
		}
	case Gaussian:
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
	case Sphere:
		var ss float64
		for j := range v {
			g := float32(r.NormFloat64())
			v[j] = g
			ss += float64(g) * float64(g)
		}
		c := float32(math.Sqrt(float64(len(v)) / ss))
		for j := range v {
			v[j] *= c
		}
	default:
		panic(fmt.Sprintf("projection: unknown kind %q", string(k)))
	}
}

// Fill fills v with consecutive rows of d coordinates (len(v)/d of them),
// each drawn by Row.
func Fill(v []float32, d int, k Kind, r *rand.Rand) {
	for i := 0; i+d <= len(v); i += d {
		Row(v[i:i+d], k, r)
	}
}
