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

// TestAvgPoolFlatMatchesSeparable: the stride-1 path's sums of shifted
// planes give avgPoolPlane's bits, for odd and asymmetric paddings, with
// and without the padding counted, and on planes holding −0.
func TestAvgPoolFlatMatchesSeparable(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 9))
	for _, c := range []struct{ h, w, kh, kw, ph, pw, phe, pwe int }{
		{16, 16, 5, 5, 2, 2, 2, 2}, {9, 7, 3, 3, 1, 1, 1, 1}, {8, 11, 3, 5, 0, 2, 1, 0}, {5, 5, 5, 5, 0, 0, 0, 0}, {32, 32, 5, 5, 2, 2, 2, 2}, {3, 4, 3, 3, 2, 2, 2, 2},
	} {
		g := geom{n: 1, c: 3, h: c.h, w: c.w, kh: c.kh, kw: c.kw, sh: 1, sw: 1, dh: 1, dw: 1, ph: c.ph, pw: c.pw, phe: c.phe, pwe: c.pwe, spatial: 2}
		g.oh, g.ow = c.h+c.ph+c.phe-c.kh+1, c.w+c.pw+c.pwe-c.kw+1
		if !avgPoolFlat(&g) {
			t.Fatalf("%+v: not taken by the flat path", c)
		}
		x := randVec(r, 3*c.h*c.w)
		for i := 0; i < c.h*c.w; i++ {
			x[c.h*c.w+i] = float32(math.Copysign(0, -1)) // a plane of −0
		}
		for _, incl := range []bool{false, true} {
			k := &poolKernel{includePad: incl}
			got := make([]float32, 3*g.oh*g.ow)
			avgPoolFlatRange(&poolTask{k: k, g: g, X: x, Y: got}, 0, 3)
			ohw := g.oh * g.ow
			for p := 0; p < 3; p++ {
				want := make([]float32, ohw)
				avgPoolPlane(want, x[p*c.h*c.w:(p+1)*c.h*c.w], &g, incl)
				for i := range want {
					if math.Float32bits(got[p*ohw+i]) != math.Float32bits(want[i]) {
						t.Fatalf("%+v include_pad=%v plane %d: out[%d] = %g, avgPoolPlane gives %g", c, incl, p, i, got[p*ohw+i], want[i])
					}
				}
			}
		}
	}
}

// TestAvgPool2x2MatchesGeneral: the written-out 2×2 stride-2 average gives
// the general loop's bits, on even and odd planes, with −0 inputs.
func TestAvgPool2x2MatchesGeneral(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(10, 10))
	for _, c := range []struct{ h, w int }{{16, 16}, {8, 6}, {7, 9}, {2, 2}} {
		g := geom{n: 1, c: 2, h: c.h, w: c.w, kh: 2, kw: 2, sh: 2, sw: 2, dh: 1, dw: 1, spatial: 2, oh: c.h / 2, ow: c.w / 2}
		if !avgPool2x2(&g) {
			t.Fatalf("%+v: not taken", c)
		}
		x := randVec(r, 2*c.h*c.w)
		x[0], x[1] = float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))
		for _, incl := range []bool{false, true} {
			k := &poolKernel{includePad: incl}
			got := make([]float32, 2*g.oh*g.ow)
			want := make([]float32, len(got))
			avgPool2x2Range(&poolTask{k: k, g: g, X: x, Y: got}, 0, 2)
			(&poolTask{k: k, g: g, X: x, Y: want}).generalRange(0, 2)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v include_pad=%v: out[%d] = %g, the general loop gives %g", c, incl, i, got[i], want[i])
				}
			}
		}
	}
}

// TestMaxPoolSeparableMatchesGeneral: the separable maximum gives the
// general loop's bits — strides, paddings, windows wholly in the padding,
// ties of +0 and −0, NaN first in a window or later in it.
func TestMaxPoolSeparableMatchesGeneral(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(14, 15))
	nan, negz := float32(math.NaN()), float32(math.Copysign(0, -1))
	for _, c := range []struct{ h, w, kh, kw, sh, sw, ph, pw int }{
		{16, 16, 5, 5, 1, 1, 2, 2}, {9, 7, 3, 3, 2, 2, 1, 1}, {8, 11, 3, 5, 1, 2, 0, 2}, {6, 6, 2, 2, 2, 2, 0, 0}, {4, 4, 3, 3, 1, 1, 3, 3},
	} {
		g := geom{n: 1, c: 2, h: c.h, w: c.w, kh: c.kh, kw: c.kw, sh: c.sh, sw: c.sw, dh: 1, dw: 1, ph: c.ph, pw: c.pw, phe: c.ph, pwe: c.pw, spatial: 2}
		g.oh, g.ow = (c.h+2*c.ph-c.kh)/c.sh+1, (c.w+2*c.pw-c.kw)/c.sw+1
		if !maxPoolSeparable(&g) {
			t.Fatalf("%+v: not taken", c)
		}
		x := randVec(r, 2*c.h*c.w)
		for i := range x {
			switch r.IntN(12) {
			case 0:
				x[i] = nan
			case 1:
				x[i] = negz
			case 2:
				x[i] = 0
			}
		}
		// plane 0 without NaN (the flat path where the stride is 1), plane 1 with
		for i := 0; i < c.h*c.w; i++ {
			if x[i] != x[i] {
				x[i] = 1.5
			}
		}
		k := &poolKernel{max: true}
		got := make([]float32, 2*g.oh*g.ow)
		want := make([]float32, len(got))
		sep := make([]float32, len(got))
		(&poolTask{k: k, g: g, X: x, Y: got}).runRange(0, 2)
		(&poolTask{k: k, g: g, X: x, Y: want}).generalRange(0, 2)
		ohw := g.oh * g.ow
		for p := 0; p < 2; p++ {
			maxPoolPlane(sep[p*ohw:(p+1)*ohw], x[p*c.h*c.w:(p+1)*c.h*c.w], &g)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: out[%d] = %g, the general loop gives %g", c, i, got[i], want[i])
			}
			if math.Float32bits(sep[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: maxPoolPlane out[%d] = %g, the general loop gives %g", c, i, sep[i], want[i])
			}
		}
	}
}
