package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// gemmTol is the relative tolerance of float32 products against gemmRef's
// float64 accumulation (K up to a few hundred).
const gemmTol = 1e-4

// packedSizes are [m, n, k] around the register block (6×16), the cache
// blocks (120 rows, 256 steps) and the tile splitting, with K of 0 and 1.
var packedSizes = [][3]int{
	{16, 1, 1}, {16, 16, 0}, {17, 15, 1}, {18, 16, 2}, {23, 17, 3}, {16, 33, 7},
	{31, 2, 128}, {64, 128, 128}, {100, 129, 3}, {121, 47, 255}, {127, 64, 256},
	{130, 200, 257}, {241, 31, 513}, {300, 5, 64}, {1000, 128, 128}, {37, 1100, 9},
}

func TestPackedGemmAgainstReference(t *testing.T) {
	t.Parallel()
	kernels := availableImpls()
	r := rand.New(rand.NewPCG(7, 7))
	p := newPool(2)
	defer p.close()
	var w gemmWork
	for _, impl := range kernels {
		for _, sz := range packedSizes {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {1.5, 0.5}, {1.5, 0}} {
					alpha, beta := ab[0], ab[1]
					for _, pl := range []*pool{nil, p} {
						m, n, k := sz[0], sz[1], sz[2]
						tA, tB := tr[0], tr[1]
						name := fmt.Sprintf("impl %d %v tA=%v tB=%v alpha=%g beta=%g threads=%d", impl, sz, tA, tB, alpha, beta, pl.threads())
						// Leading dimensions wider than the matrices, and C
						// with a trailing column that must stay untouched.
						lda, ldb, ldc := k+3, n+1, n+1
						if tA {
							lda = m + 2
						}
						if tB {
							ldb = k + 5
						}
						ra, rb := m, k
						if tA {
							ra = k
						}
						if tB {
							rb = n
						}
						a, b := randVec(r, max(ra*lda, 1)), randVec(r, max(rb*ldb, 1))
						c1 := randVec(r, m*ldc)
						c2 := append([]float32(nil), c1...)
						g := gemm{tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
							beta: beta, c: c1, ldc: ldc, w: &w, impl: impl}
						if !g.usePacked() && k > 0 {
							t.Fatalf("%s: packed path not taken", name)
						}
						g.run(pl)
						gemmRef(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc)
						for i := 0; i < m; i++ {
							for j := 0; j < ldc; j++ {
								got, want := c1[i*ldc+j], c2[i*ldc+j]
								if math.Abs(float64(got-want)) > gemmTol*(1+math.Abs(float64(want))) {
									t.Fatalf("%s: c[%d,%d] = %g, want %g", name, i, j, got, want)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestGemmEpilogue(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(8, 8))
	p := newPool(2)
	defer p.close()
	for _, sz := range [][3]int{{1, 5, 3}, {7, 130, 20}, {300, 128, 128}, {40, 33, 0}} {
		for _, a := range []act{actNone, actSigmoid, actSiLU} {
			m, n, k := sz[0], sz[1], sz[2]
			av, bv, bias := randVec(r, m*k), randVec(r, k*n), randVec(r, n)
			c1, c2 := make([]float32, m*n), make([]float32, m*n)
			g := gemm{m: m, n: n, k: k, alpha: 1, a: av, lda: k, b: bv, ldb: n, c: c1, ldc: n, bias: bias, act: a}
			g.run(p)
			gemmRef(false, false, m, n, k, 1, av, k, bv, n, 0, c2, n)
			for i := range c2 {
				v := float64(c2[i]) + float64(bias[i%n])
				switch a {
				case actSigmoid:
					v = 1 / (1 + math.Exp(-v))
				case actSiLU:
					v /= 1 + math.Exp(-v)
				}
				if math.Abs(float64(c1[i])-v) > gemmTol*(1+math.Abs(v)) {
					t.Fatalf("%v act %d: c[%d] = %g, want %g", sz, a, i, c1[i], v)
				}
			}
		}
	}
}

// availableImpls lists the micro-kernels this CPU runs.
func availableImpls() []gemmImpl {
	impls := []gemmImpl{implGo}
	if haveAVX2 {
		impls = append(impls, implAVX2)
	}
	if haveAVX512 {
		impls = append(impls, implAVX512)
	}
	return impls
}

// goTile is the reference micro-kernel widened to nr columns: one
// gemmNR-column call per slice of the packed B strip.
func goTile(kc, nr int, a, b, c []float32, ldc int, acc bool) {
	for j0 := 0; j0 < nr; j0 += gemmNR {
		bj := make([]float32, kc*gemmNR)
		for p := 0; p < kc; p++ {
			copy(bj[p*gemmNR:p*gemmNR+gemmNR], b[p*nr+j0:])
		}
		sgemmKernGo(kc, a, bj, c[j0:], ldc, acc)
	}
}

func TestMicroKernelsMatchGo(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 9))
	for _, impl := range availableImpls()[1:] {
		for _, kc := range []int{0, 1, 2, 3, 7, 64, 255, 256} {
			for _, acc := range []bool{false, true} {
				g := gemm{impl: impl, nr: gemmNR}
				if impl == implAVX512 {
					g.nr = gemmNRMax
				}
				a, b := randVec(r, max(kc*gemmMR, 1)), randVec(r, max(kc*g.nr, 1))
				ldc := g.nr + 3
				c1 := randVec(r, gemmMR*ldc)
				c2 := append([]float32(nil), c1...)
				g.micro(kc, a, b, c1, ldc, acc)
				goTile(kc, g.nr, a, b, c2, ldc, acc)
				// The same strip, row-major with lda = kc+1.
				lda := kc + 1
				rows := make([]float32, (gemmMR-1)*lda+kc)
				for p := 0; p < kc; p++ {
					for i := 0; i < gemmMR; i++ {
						rows[i*lda+p] = a[p*gemmMR+i]
					}
				}
				c3 := randVec(r, len(c1))
				c4 := append([]float32(nil), c3...)
				g.microStrided(kc, rows, lda, b, c3, ldc, acc)
				goTile(kc, g.nr, a, b, c4, ldc, acc)
				for i := range c1 {
					if math.Abs(float64(c1[i]-c2[i])) > gemmTol*(1+math.Abs(float64(c2[i]))) {
						t.Fatalf("impl %d kc=%d acc=%v: c[%d] = %g, want %g", impl, kc, acc, i, c1[i], c2[i])
					}
					if math.Abs(float64(c3[i]-c4[i])) > gemmTol*(1+math.Abs(float64(c4[i]))) {
						t.Fatalf("impl %d strided kc=%d acc=%v: c[%d] = %g, want %g", impl, kc, acc, i, c3[i], c4[i])
					}
				}
			}
		}
	}
}

func TestGemmAllocatesNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	p := newPool(2)
	defer p.close()
	var w gemmWork
	m, n, k := 500, 128, 128
	a, b, c := randVec(r, m*k), randVec(r, k*n), make([]float32, m*n)
	var g gemm
	f := func() {
		g = gemm{m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, c: c, ldc: n, act: actSiLU, w: &w}
		g.run(p)
	}
	f()
	if allocs := testing.AllocsPerRun(20, f); allocs != 0 {
		t.Errorf("gemm allocates %v times per call", allocs)
	}
}

func BenchmarkGemm(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 11))
	for _, sz := range [][3]int{{10000, 128, 128}, {1000, 128, 128}, {256, 256, 256}} {
		for _, impl := range append([]gemmImpl{implAuto}, availableImpls()[1:]...) {
			packed := impl != implAuto
			name := [...]string{implAuto: "gonum", implGo: "go", implAVX2: "avx2", implAVX512: "avx512"}[impl]
			b.Run(fmt.Sprintf("%dx%dx%d/%s", sz[0], sz[1], sz[2], name), func(b *testing.B) {
				m, n, k := sz[0], sz[1], sz[2]
				p := newPool(2)
				defer p.close()
				var w gemmWork
				av, bv, c := randVec(r, m*k), randVec(r, k*n), make([]float32, m*n)
				var g gemm
				for b.Loop() {
					g = gemm{m: m, n: n, k: k, alpha: 1, a: av, lda: k, b: bv, ldb: n, c: c, ldc: n, w: &w, impl: impl}
					if packed {
						g.runPacked(p)
					} else {
						g.packed = false
						g.runGonum(p)
					}
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestPrepackedMatchesPerRun: a product whose B was packed at Prepare gives
// the same bits as one that packs B on the run, for every kernel.
func TestPrepackedMatchesPerRun(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(12, 12))
	p := newPool(2)
	defer p.close()
	var w1, w2 gemmWork
	for _, impl := range availableImpls() {
		for _, sz := range packedSizes {
			for _, tB := range []bool{false, true} {
				for _, pl := range []*pool{nil, p} {
					m, n, k := sz[0], sz[1], sz[2]
					ldb := n + 1
					if tB {
						ldb = k + 5
					}
					rb := k
					if tB {
						rb = n
					}
					a, b, bias := randVec(r, max(m*k, 1)), randVec(r, max(rb*ldb, 1)), randVec(r, n)
					c1 := randVec(r, m*n)
					c2 := append([]float32(nil), c1...)
					pre := prepackBFor(impl, b, ldb, tB, k, n)
					g := gemm{tB: tB, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: ldb,
						beta: 1, c: c1, ldc: n, bias: bias, act: actSiLU, w: &w1, impl: impl}
					g.run(pl)
					g = gemm{tB: tB, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: ldb,
						beta: 1, c: c2, ldc: n, bias: bias, act: actSiLU, w: &w2, impl: impl, pre: pre}
					g.run(pl)
					if k > 0 && &g.bp[0] != &pre.data[0] {
						t.Fatalf("impl %d %v tB=%v: the pre-packed B was not used", impl, sz, tB)
					}
					for i := range c1 {
						if math.Float32bits(c1[i]) != math.Float32bits(c2[i]) {
							t.Fatalf("impl %d %v tB=%v threads=%d: c[%d] = %v pre-packed, %v packed per run",
								impl, sz, tB, pl.threads(), i, c2[i], c1[i])
						}
					}
				}
			}
		}
	}
}

// TestGemmKSplitMatchesSerial: a small product with a long reduction, its
// K blocks computed on two workers and added in order, gives the serial
// product's bits — whole and partial tiles, A transposed or scaled (packed)
// or read in place, with a bias and an activation after.
func TestGemmKSplitMatchesSerial(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2: products take gonum's path")
	}
	r := rand.New(rand.NewPCG(31, 32))
	p := newPool(2)
	defer p.close()
	for _, c := range []struct {
		m, n, k int
		tA      bool
		alpha   float32
		bias    bool
	}{
		{16, 16, 5000, false, 1, false},
		{7, 10, 1100, false, 1, true},
		{16, 8, 3000, true, 1, false},
		{12, 20, 1500, false, 0.5, true},
	} {
		a := randVec(r, c.m*c.k)
		b := randVec(r, c.k*c.n)
		bias := randVec(r, c.n)
		lda := c.k
		if c.tA {
			lda = c.m
		}
		run := func(pl *pool) []float32 {
			out := make([]float32, c.m*c.n)
			g := gemm{tA: c.tA, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: lda, b: b, ldb: c.n, c: out, ldc: c.n, w: new(gemmWork), act: actSiLU}
			if c.bias {
				g.bias = bias
			}
			g.run(pl)
			if pl != nil && !g.kSplittable() {
				t.Fatalf("%+v: not split along K", c)
			}
			return out
		}
		serial, split := run(nil), run(p)
		for i := range serial {
			if math.Float32bits(serial[i]) != math.Float32bits(split[i]) {
				t.Fatalf("%+v: c[%d] = %g split, %g serial", c, i, split[i], serial[i])
			}
		}
	}
}
