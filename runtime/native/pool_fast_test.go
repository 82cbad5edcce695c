package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// poolTol bounds the difference of the separable average from the direct
// one: both sum a few dozen float32 values, in different orders.
const poolTol = 1e-6

// TestAvgPoolSeparable checks the separable average against the general
// loop, with and without the padding counted.
func TestAvgPoolSeparable(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(8, 8))
	for _, c := range []struct{ h, w, k, s, p int }{{16, 16, 5, 1, 2}, {9, 7, 3, 1, 1}, {8, 8, 3, 2, 1}, {10, 11, 5, 2, 0}} {
		g := geom{n: 1, c: 2, h: c.h, w: c.w, kh: c.k, kw: c.k, sh: c.s, sw: c.s, dh: 1, dw: 1, ph: c.p, pw: c.p, phe: c.p, pwe: c.p, spatial: 2}
		g.oh, g.ow = (c.h+2*c.p-c.k)/c.s+1, (c.w+2*c.p-c.k)/c.s+1
		x := randVec(r, 2*c.h*c.w)
		for _, incl := range []bool{false, true} {
			k := &poolKernel{includePad: incl}
			sep := make([]float32, 2*g.oh*g.ow)
			(&poolTask{k: k, g: g, X: x, Y: sep}).runRange(0, 2)
			want := make([]float32, len(sep))
			tk := &poolTask{k: k, g: g, X: x, Y: want}
			tk.generalRange(0, 2)
			for i := range sep {
				if math.Abs(float64(sep[i]-want[i])) > poolTol*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%v include_pad=%v: out[%d] = %g, want %g", fmt.Sprint(c), incl, i, sep[i], want[i])
				}
			}
		}
	}
}
