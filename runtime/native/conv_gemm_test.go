package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convTol is how far the packed conv may stray from the float64 reference,
// relative to the sum of |w·x| over the window (float32 sums of a few
// hundred terms).
const convTol = 1e-5

// convCases are geometries of score networks and the awkward cases around
// them: 1×1, strides, dilation, groups, pads, 1-D, sizes that leave partial
// strips and blocks.
var convCases = []struct {
	name                          string
	n, c, h, w, m, kh, kw         int
	sh, sw, dh, dw, ph, pw, group int
}{
	{"3x3", 2, 3, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},
	{"3x3_wide", 3, 16, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1},
	{"3x3_deep", 2, 40, 8, 8, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1},
	{"1x1", 5, 32, 16, 16, 13, 1, 1, 1, 1, 1, 1, 0, 0, 1},
	{"stride2", 3, 8, 15, 15, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1},
	{"dilated", 2, 8, 16, 16, 8, 3, 3, 1, 1, 2, 2, 2, 2, 1},
	{"dilated4", 2, 4, 9, 9, 7, 3, 3, 1, 1, 4, 4, 4, 4, 1},
	{"groups", 2, 8, 10, 10, 12, 3, 3, 1, 1, 1, 1, 1, 1, 4},
	{"depthwise", 2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6},
	{"rect", 2, 3, 11, 5, 5, 3, 2, 2, 1, 1, 1, 0, 1, 1},
	{"oned", 4, 5, 1, 37, 9, 1, 5, 1, 2, 1, 1, 0, 2, 1},
	{"big_plane", 1, 2, 64, 64, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1},
}

func convCaseGeom(i int) (geom, int) {
	c := convCases[i]
	g := geom{n: c.n, c: c.c, h: c.h, w: c.w, m: c.m, kh: c.kh, kw: c.kw, sh: c.sh, sw: c.sw, dh: c.dh, dw: c.dw,
		ph: c.ph, pw: c.pw, phe: c.ph, pwe: c.pw, spatial: 2}
	g.oh = (c.h+2*c.ph-c.dh*(c.kh-1)-1)/c.sh + 1
	g.ow = (c.w+2*c.pw-c.dw*(c.kw-1)-1)/c.sw + 1
	return g, c.group
}

// runConvGemm runs the packed path with micro-kernel impl on threads
// goroutines and returns the output.
func runConvGemm(g geom, group int, impl gemmImpl, threads int, x, w, bias []float32, epi convEpi, work *convWork) []float32 {
	y := make([]float32, g.n*g.m*g.oh*g.ow)
	t := &convGemm{g: g, group: group, cg: g.c / group, mg: g.m / group, khw: g.kh * g.kw, x: x, y: y, bias: bias, epi: epi,
		impl: impl, work: work}
	t.kk = t.cg * t.khw
	a := new(convA)
	packConvA(a, w, group, t.mg, t.kk, convMR(convImpl(impl), t.mg))
	t.a = a
	p := newPool(threads)
	defer p.close()
	t.run(p)
	return y
}

func convImpls() []gemmImpl {
	impls := []gemmImpl{implGo}
	if haveAVX2 {
		impls = append(impls, implAVX2)
	}
	if haveAVX512 {
		impls = append(impls, implAVX512)
	}
	return impls
}

var convEpis = []struct {
	name string
	epi  convEpi
}{
	{"none", convEpi{}},
	{"relu", convEpi{relu: true}},
	{"elu", convEpi{elu: true, alpha: 0.7}},
	{"silu", convEpi{a: actSiLU}},
	{"sigmoid", convEpi{a: actSigmoid}},
}

// TestConvGemmAgainstReference checks the packed conv, on every micro-kernel
// and with every epilogue, against the direct float64 convolution.
func TestConvGemmAgainstReference(t *testing.T) {
	t.Parallel()
	for i, c := range convCases {
		g, group := convCaseGeom(i)
		r := rand.New(rand.NewPCG(uint64(i), 3))
		x := randVec(r, g.n*g.c*g.h*g.w)
		w := randVec(r, g.m*(g.c/group)*g.kh*g.kw)
		bias := randVec(r, g.m)
		// scale bounds the rounding: the reference run on |x|, |w|.
		ax, aw := absVec(x), absVec(w)
		scale := make([]float32, g.n*g.m*g.oh*g.ow)
		convDirectRef(scale, ax, aw, nil, &g, group, convEpi{})
		for _, e := range convEpis {
			want := make([]float32, len(scale))
			convDirectRef(want, x, w, bias, &g, group, e.epi)
			for _, impl := range convImpls() {
				for _, threads := range []int{1, 2} {
					got := runConvGemm(g, group, impl, threads, x, w, bias, e.epi, new(convWork))
					for k := range got {
						// the activations' slope is at most 1.1, and their own error is a few ulp
						tol := convTol*float64(scale[k]+1) + 1e-6*math.Abs(float64(want[k]))
						if d := math.Abs(float64(got[k] - want[k])); !(d <= tol) {
							t.Fatalf("%s %s impl %d threads %d: y[%d] = %g, want %g", c.name, e.name, impl, threads, k, got[k], want[k])
						}
					}
				}
			}
		}
	}
}

func absVec(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(math.Abs(float64(x)))
	}
	return out
}

// TestConvGemmBatchInvariance: every sample's output is bit-identical
// whether it is computed alone or in a batch, on any number of threads.
func TestConvGemmBatchInvariance(t *testing.T) {
	t.Parallel()
	for i, c := range convCases {
		g, group := convCaseGeom(i)
		g.n = 9
		r := rand.New(rand.NewPCG(uint64(i), 5))
		x := randVec(r, g.n*g.c*g.h*g.w)
		w := randVec(r, g.m*(g.c/group)*g.kh*g.kw)
		bias := randVec(r, g.m)
		for _, e := range convEpis {
			for _, impl := range convImpls() {
				whole := runConvGemm(g, group, impl, 2, x, w, bias, e.epi, new(convWork))
				per := g.m * g.oh * g.ow
				for _, chunk := range []int{1, 2, 4} {
					for _, threads := range []int{1, 2} {
						for s := 0; s < g.n; s += chunk {
							gs := g
							gs.n = min(chunk, g.n-s)
							in := x[s*g.c*g.h*g.w : (s+gs.n)*g.c*g.h*g.w]
							got := runConvGemm(gs, group, impl, threads, in, w, bias, e.epi, new(convWork))
							for k, v := range got {
								if want := whole[s*per+k]; math.Float32bits(v) != math.Float32bits(want) {
									t.Fatalf("%s %s impl %d: sample %d differs in a batch of %d on %d threads: %v vs %v",
										c.name, e.name, impl, s+k/per, chunk, threads, v, want)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestConvGemmNoAllocs: once its scratch has grown, a run allocates nothing.
func TestConvGemmNoAllocs(t *testing.T) {
	g, group := convCaseGeom(1)
	r := rand.New(rand.NewPCG(1, 1))
	x := randVec(r, g.n*g.c*g.h*g.w)
	w := randVec(r, g.m*(g.c/group)*g.kh*g.kw)
	y := make([]float32, g.n*g.m*g.oh*g.ow)
	a := new(convA)
	packConvA(a, w, group, g.m/group, g.c/group*g.kh*g.kw, convMR(implAuto, g.m/group))
	p := newPool(2)
	defer p.close()
	work := new(convWork)
	t1 := &convGemm{}
	run := func() {
		*t1 = convGemm{g: g, group: group, cg: g.c / group, mg: g.m / group, khw: g.kh * g.kw, kk: g.c / group * g.kh * g.kw,
			x: x, y: y, epi: convEpi{a: actSiLU}, a: a, work: work}
		t1.run(p)
	}
	run()
	if n := testing.AllocsPerRun(10, run); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

func BenchmarkConvGemm(b *testing.B) {
	for _, i := range []int{1, 3} {
		g, group := convCaseGeom(i)
		g.n = 16
		r := rand.New(rand.NewPCG(1, 1))
		x := randVec(r, g.n*g.c*g.h*g.w)
		w := randVec(r, g.m*(g.c/group)*g.kh*g.kw)
		a := new(convA)
		packConvA(a, w, group, g.m/group, g.c/group*g.kh*g.kw, convMR(implAuto, g.m/group))
		y := make([]float32, g.n*g.m*g.oh*g.ow)
		work := new(convWork)
		b.Run(fmt.Sprintf("%s_n%d", convCases[i].name, g.n), func(b *testing.B) {
			b.ReportAllocs()
			t := &convGemm{}
			for range b.N {
				*t = convGemm{g: g, group: group, cg: g.c / group, mg: g.m / group, khw: g.kh * g.kw, kk: g.c / group * g.kh * g.kw,
					x: x, y: y, a: a, work: work}
				t.run(nil)
			}
			flops := 2 * float64(g.n*g.m*g.oh*g.ow*g.c/group*g.kh*g.kw)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestPackRowsAgainstReference checks the assembly strip copy against the
// plain-Go one.
func TestPackRowsAgainstReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(2, 2))
	xs := randVec(r, 5000)
	for _, nr := range []int{16, 32} {
		for _, n := range []int{0, 1, 7, 256} {
			rows := make([]int, n)
			for i := range rows {
				rows[i] = i*13 + i%3
			}
			for _, impl := range convImpls() {
				got, want := make([]float32, n*nr), make([]float32, n*nr)
				packRows(impl, got, xs, 11, rows, nr)
				packRowsRef(want, xs, 11, rows, nr)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("nr %d, %d rows, impl %d: dst[%d] = %v, want %v", nr, n, impl, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// meanVarTol bounds the relative difference of the one-pass variance from
// the two-pass one on data whose mean is a few deviations from zero.
const meanVarTol = 1e-9

// TestMeanVar4 checks the four-sum mean and variance against the plain one.
func TestMeanVar4(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 3, 4, 5, 64, 783} {
		v := randVec(r, n)
		for i := range v {
			v[i] = 3 + v[i]
		}
		m, s := meanVar4(v)
		wm, ws := meanVar(v)
		if math.Abs(m-wm) > 1e-12*math.Abs(wm) || math.Abs(s-ws) > meanVarTol*ws {
			t.Fatalf("n %d: meanVar4 = %v, %v, want %v, %v", n, m, s, wm, ws)
		}
	}
}

// TestMicroIndirectMatchesPacked: the indirect micro-kernel, reading B's
// rows through offsets, gives the packed kernel's bits on the packed copy
// of the same rows, with and without accumulation; and the 8-row AVX-512
// kernels give the 6-row ones' bits on the rows both compute.
func TestMicroIndirectMatchesPacked(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2: the conv path packs every strip")
	}
	r := rand.New(rand.NewPCG(11, 12))
	pack := func(rowsA []float32, mr, kc int) []float32 { // [mr, kc] row-major → a[p·mr+i]
		a := make([]float32, mr*kc)
		for i := 0; i < mr; i++ {
			for p := 0; p < kc; p++ {
				a[p*mr+i] = rowsA[i*kc+p]
			}
		}
		return a
	}
	for _, impl := range []gemmImpl{implAVX2, implAVX512} {
		if impl == implAVX512 && !haveAVX512 {
			continue
		}
		nr := impl.nr()
		for _, kc := range []int{1, 2, 9, 72, 144} {
			xs := randVec(r, 4000)
			rows := make([]int, kc)
			for p := range rows {
				rows[p] = p*23 + p%5 // ascending, irregular
			}
			rowsA := randVec(r, 8*kc)
			a := pack(rowsA, gemmMR, kc)
			b := make([]float32, kc*nr)
			packRowsRef(b, xs, 17, rows, nr)
			ldc := nr + 8
			for _, acc := range []bool{false, true} {
				start := randVec(rand.New(rand.NewPCG(1, uint64(kc))), 8*ldc)
				want := append([]float32(nil), start...)
				got := append([]float32(nil), start...)
				microPacked(impl, kc, a, b, want, ldc, acc)
				microIndirect(impl, gemmMR, kc, a, xs, 17, rows, got, ldc, acc)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("impl %v kc %d acc %v: c[%d] = %g, packed %g", impl, kc, acc, i, got[i], want[i])
					}
				}
				if impl != implAVX512 {
					continue
				}
				a8 := pack(rowsA, 8, kc)
				for _, ind := range []bool{false, true} {
					got8 := append([]float32(nil), start...)
					if ind {
						microIndirect(impl, 8, kc, a8, xs, 17, rows, got8, ldc, acc)
					} else {
						microPacked8(kc, a8, b, got8, ldc, acc)
					}
					for i := 0; i < 6*ldc; i++ { // the rows the 6-row kernel computed
						if i%ldc < nr && math.Float32bits(got8[i]) != math.Float32bits(want[i]) {
							t.Fatalf("8 rows (indirect %v) kc %d acc %v: c[%d] = %g, 6 rows %g", ind, kc, acc, i, got8[i], want[i])
						}
					}
				}
			}
		}
	}
}
