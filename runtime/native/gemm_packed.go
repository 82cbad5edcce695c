package native

import (
	"sync/atomic"
	"unsafe"
)

// The packed GEMM follows BLIS: op(B) is packed into column strips of nr (16 for AVX2, 32 for AVX-512), each block of A (gemmMC rows × gemmKC) into row
// strips of gemmMR, and a register-blocked micro-kernel computes one
// gemmMR×nr tile of C from a strip of each. Workers take (row block,
// column block) tiles of C from a shared counter, so a core slowed by
// other load takes fewer of them.
const (
	gemmMR    = 6
	gemmNR    = 16  // columns of the AVX2 and plain-Go kernels
	gemmNRMax = 32  // columns of the AVX-512 kernels
	gemmKC    = 256 // a B strip (gemmKC×nr) stays in L1
	gemmMC    = 120 // an A block (gemmMC×gemmKC) stays in L2
	gemmNC    = 1024
	// gemmPackedMinRows is the row count below which products go through
	// gonum. It is 1: every product takes the packed kernels, so a row's
	// result does not depend on how many rows share its batch (gonum's
	// kernel rounds differently), which the samplers' promise of identical
	// samples for any batch size rests on. A constant B is packed at
	// Prepare (prepackB), so small batches do not pay for packing it.
	gemmPackedMinRows = 1
)

// gemmImpl names a micro-kernel of the packed path.
type gemmImpl uint8

const (
	implAuto   gemmImpl = iota // the fastest this CPU runs
	implGo                     // plain Go, the reference (tests)
	implAVX2                   // 6×16, YMM
	implAVX512                 // 6×32, ZMM
)

// resolve returns the micro-kernel implAuto stands for on this CPU.
func (impl gemmImpl) resolve() gemmImpl {
	if impl != implAuto {
		return impl
	}
	if haveAVX512 {
		return implAVX512
	}
	return implAVX2
}

// nr is the number of columns of the micro-kernel, and so the width of the
// packed strips of B it reads.
func (impl gemmImpl) nr() int {
	if impl == implAVX512 {
		return gemmNRMax
	}
	return gemmNR
}

// packedB is a constant op(B) packed once, at Prepare, in the layout packB
// writes on every run for other operands. The plan holds it and every
// session reads it, so it is never written after packing.
type packedB struct {
	k, n, nr int
	data     []float32
}

// prepackB packs the constant k×n matrix op(b) for the micro-kernel products
// take on this CPU, or returns nil where they do not take the packed path.
func prepackB(b []float32, ldb int, tB bool, k, n int) *packedB {
	if !haveAVX2 {
		return nil
	}
	return prepackBFor(implAuto.resolve(), b, ldb, tB, k, n)
}

// prepackBFor packs op(b) for the micro-kernel impl.
func prepackBFor(impl gemmImpl, b []float32, ldb int, tB bool, k, n int) *packedB {
	if k <= 0 || n <= 0 {
		return nil
	}
	nr := impl.nr()
	pb := &packedB{k: k, n: n, nr: nr, data: make([]float32, k*padTo(n, nr))}
	packB(pb.data, b, ldb, tB, k, n, nr)
	return pb
}

// fits reports whether pb holds op(B) as a product of k×n with nr-column
// strips reads it.
func (pb *packedB) fits(k, n, nr int) bool {
	return pb != nil && pb.k == k && pb.n == n && pb.nr == nr
}

func padTo(n, m int) int { return (n + m - 1) / m * m }

// gemmWork is the scratch memory of packed products, kept by the session
// so that Run allocates nothing once it has grown.
type gemmWork struct {
	b       []float32 // packed op(B)
	workers []gemmWorker
	parts   []float32 // kSplit's partial products, one m×n block per K block
	split   kSplit
}

type gemmWorker struct {
	a    []float32 // packed block of op(A)·alpha
	tile [gemmMR * gemmNRMax]float32
}

func (w *gemmWork) grow(kn, threads int) {
	w.b = growSlice(w.b, kn)
	for len(w.workers) < threads {
		w.workers = append(w.workers, gemmWorker{a: make([]float32, gemmMC*gemmKC)})
	}
}

// usePacked reports whether the product goes through the packed kernels.
func (g *gemm) usePacked() bool {
	return (haveAVX2 || g.impl != implAuto) && g.m >= gemmPackedMinRows && g.k > 0
}

// runPacked computes the product with the packed kernels.
func (g *gemm) runPacked(p *pool) {
	if g.w == nil {
		g.w = new(gemmWork)
	}
	g.checkBounds()
	threads := p.threads()
	if g.m*g.n*g.k < gemmSerialWork {
		threads = 1
	}
	g.impl = g.impl.resolve()
	if g.impl == implAVX512 && g.n <= gemmNR && !g.pre.fits(g.k, g.n, gemmNRMax) {
		// a narrow B takes the 16-column kernel: the 32-column one would
		// spend half its work on zero columns (each element's sum is the
		// same either way)
		g.impl = implAVX2
	}
	g.nr = g.impl.nr()
	nr := g.nr
	g.npad = padTo(g.n, nr)
	if g.pre.fits(g.k, g.n, nr) {
		g.w.grow(0, threads)
		g.bp = g.pre.data
	} else if !g.tB && g.n == nr && g.ldb == nr {
		// B, row-major and exactly one strip wide, is its own packed form
		g.w.grow(0, threads)
		g.bp = g.b[:g.k*nr]
	} else {
		g.w.grow(g.k*g.npad, threads)
		g.bp = g.w.b
		packB(g.bp, g.b, g.ldb, g.tB, g.k, g.n, nr)
	}
	g.mc = min(gemmMC, (g.m+gemmMR-1)/gemmMR*gemmMR)
	g.tilesM = (g.m + g.mc - 1) / g.mc
	g.nc = min(gemmNC, g.npad)
	// Split columns only to give every worker tiles; one goroutine packs
	// or copies each strip of A once per row block and not once per tile.
	if want := 2 * threads; threads > 1 && g.tilesM < want {
		split := (want + g.tilesM - 1) / g.tilesM
		g.nc = max(nr, ((g.n+split-1)/split+nr-1)/nr*nr)
	}
	g.tilesN = (g.n + g.nc - 1) / g.nc
	g.next = 0
	g.packed = true
	if threads == 1 {
		g.runRange(0, 1)
		return
	}
	if g.kSplittable() {
		g.runKSplit(p, threads)
		return
	}
	p.parallel(threads, 1, g)
}

// kSplitMaxC bounds the C of a product split along K (its partial products
// take one C each).
const kSplitMaxC = 1 << 14

// kSplittable reports whether the product is one small tile with a long
// reduction — the autodiff's weight gradients, [C, N·P]·[N·P, M] — which the
// tiles cannot share out: its K blocks are then computed on the workers.
func (g *gemm) kSplittable() bool {
	return g.tilesM*g.tilesN == 1 && g.k >= 4*gemmKC && g.beta == 0 && g.m*g.n <= kSplitMaxC
}

// kSplit is runKSplit's task: K block b of the product into part b.
type kSplit struct {
	g    *gemm
	next int64
}

// runKSplit computes each K block's product (gemmKC steps, the blocks the
// serial tile walks in turn) on the workers into its own buffer, then adds
// them into C in block order: C = ((S₀ + S₁) + S₂) + …, the serial tile's own
// sums — the kernel there adds each block's sum to C the same way — so the
// bits do not depend on the split.
func (g *gemm) runKSplit(p *pool, threads int) {
	nkb := (g.k + gemmKC - 1) / gemmKC
	mn := g.m * g.n
	g.w.parts = growSlice(g.w.parts, nkb*mn)
	t := &g.w.split
	*t = kSplit{g: g}
	p.parallel(threads, 1, t)
	for b := 0; b < nkb; b++ {
		part := g.w.parts[b*mn : (b+1)*mn]
		for i := 0; i < g.m; i++ {
			dst := g.c[i*g.ldc : i*g.ldc+g.n]
			src := part[i*g.n : (i+1)*g.n]
			if b == 0 {
				copy(dst, src)
				continue
			}
			for j, v := range src {
				dst[j] += v
			}
		}
	}
	g.epilogue(0, g.m, 0, g.n)
}

func (t *kSplit) runRange(lo, hi int) {
	g := t.g
	nkb := (g.k + gemmKC - 1) / gemmKC
	mn := g.m * g.n
	for wi := lo; wi < hi; wi++ {
		ws := &g.w.workers[wi]
		for {
			b := int(atomic.AddInt64(&t.next, 1) - 1)
			if b >= nkb {
				break
			}
			pc := b * gemmKC
			sub := *g
			sub.k = min(gemmKC, g.k-pc)
			if g.tA {
				sub.a = g.a[pc*g.lda:]
			} else {
				sub.a = g.a[pc:]
			}
			sub.bp = g.bp[pc*g.npad:]
			sub.c, sub.ldc = g.w.parts[b*mn:(b+1)*mn], g.n
			sub.bias, sub.act = nil, actNone
			sub.packedTile(ws, 0, 0)
		}
	}
}

// checkBounds panics unless every tile the assembly writes lies inside c.
func (g *gemm) checkBounds() {
	if g.ldc < g.n || len(g.c) < (g.m-1)*g.ldc+g.n {
		panic("native: gemm: C is too short")
	}
}

// packedWorker computes tiles until none are left; wi picks its scratch.
func (g *gemm) packedWorker(wi int) {
	ws := &g.w.workers[wi]
	total := int64(g.tilesM * g.tilesN)
	for {
		t := atomic.AddInt64(&g.next, 1) - 1
		if t >= total {
			return
		}
		ti, tj := int(t)/g.tilesN, int(t)%g.tilesN
		g.packedTile(ws, ti*g.mc, tj*g.nc)
	}
}

// packedTile computes C[i0:i0+mc, j0:j0+nc] and applies the epilogue.
func (g *gemm) packedTile(ws *gemmWorker, i0, j0 int) {
	mc, nc := min(g.mc, g.m-i0), min(g.nc, g.n-j0)
	if g.beta != 0 && g.beta != 1 {
		for i := i0; i < i0+mc; i++ {
			row := g.c[i*g.ldc+j0 : i*g.ldc+j0+nc]
			for j := range row {
				row[j] *= g.beta
			}
		}
	}
	// Without a transpose or a scale, the strided kernel reads A in place;
	// a last strip of fewer than gemmMR rows is first copied into scratch,
	// row-major, or read with lda 0 when it is one row. A row of C depends
	// only on its own row of A, so what the kernel's spare rows read does
	// not matter.
	direct := !g.tA && g.alpha == 1
	full := mc / gemmMR * gemmMR // rows in whole strips
	for pc := 0; pc < g.k; pc += gemmKC {
		kc := min(gemmKC, g.k-pc)
		var tail []float32 // the last, partial strip of a direct A
		tailLda := kc
		switch {
		case !direct:
			g.packA(ws.a, i0, mc, pc, kc)
		case mc-full == 1:
			tail, tailLda = g.a[(i0+full)*g.lda+pc:], 0
		case mc > full:
			tail = ws.a
			for i := 0; i < mc-full; i++ {
				copy(tail[i*kc:i*kc+kc], g.a[(i0+full+i)*g.lda+pc:])
			}
		}
		acc := pc > 0 || g.beta != 0
		for jr := 0; jr < nc; jr += g.nr {
			j := j0 + jr
			bp := g.bp[pc*g.npad+j*kc:]
			nr := min(g.nr, g.n-j)
			for ir := 0; ir < mc; ir += gemmMR {
				mr := min(gemmMR, mc-ir)
				ci := (i0+ir)*g.ldc + j
				dst, ldc, tileAcc := g.c[ci:], g.ldc, acc
				if nr < g.nr || mr < gemmMR {
					dst, ldc, tileAcc = ws.tile[:], g.nr, false
				}
				switch {
				case !direct:
					g.micro(kc, ws.a[ir*kc:], bp, dst, ldc, tileAcc)
				case ir < full:
					g.microStrided(kc, g.a[(i0+ir)*g.lda+pc:], g.lda, bp, dst, ldc, tileAcc)
				default:
					g.microStrided(kc, tail, tailLda, bp, dst, ldc, tileAcc)
				}
				if nr == g.nr && mr == gemmMR {
					continue
				}
				for i := 0; i < mr; i++ {
					dst := g.c[ci+i*g.ldc : ci+i*g.ldc+nr]
					src := ws.tile[i*g.nr : i*g.nr+nr]
					if acc {
						for j, v := range src {
							dst[j] += v
						}
					} else {
						copy(dst, src)
					}
				}
			}
		}
	}
	g.epilogue(i0, i0+mc, j0, j0+nc)
}

// micro computes one gemmMR×g.nr tile: c = (c if acc) + a·b.
func (g *gemm) micro(kc int, a, b, c []float32, ldc int, acc bool) {
	microPacked(g.impl, kc, a, b, c, ldc, acc)
}

// microPacked computes one gemmMR×impl.nr() tile with micro-kernel impl
// (resolved): c = (c if acc) + a·b, a and b packed strips of kc steps.
func microPacked(impl gemmImpl, kc int, a, b, c []float32, ldc int, acc bool) {
	if impl == implGo {
		sgemmKernGo(kc, a, b, c, ldc, acc)
		return
	}
	nr := impl.nr()
	_ = a[:gemmMR*kc] // the bounds the assembly reads and writes
	_ = b[:nr*kc]
	_ = c[:(gemmMR-1)*ldc+nr]
	if impl == implAVX512 {
		sgemmKern6x32AVX512(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, b2i(acc))
		return
	}
	sgemmKern6x16AVX2(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, b2i(acc))
}

// microStrided is micro with A read in place: a[i·lda+p] for row i of the
// strip and step p.
func (g *gemm) microStrided(kc int, a []float32, lda int, b, c []float32, ldc int, acc bool) {
	if g.impl == implGo {
		sgemmKernStridedGo(kc, a, lda, b, c, ldc, acc)
		return
	}
	_ = a[:(gemmMR-1)*lda+kc]
	_ = b[:g.nr*kc]
	_ = c[:(gemmMR-1)*ldc+g.nr]
	if g.impl == implAVX512 {
		sgemmKern6x32StridedAVX512(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc, b2i(acc))
		return
	}
	sgemmKern6x16StridedAVX2(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc, b2i(acc))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sgemmKernGo is the micro-kernel in plain Go, the reference for the
// assembly and the kernel the packing is tested with.
func sgemmKernGo(kc int, a, b, c []float32, ldc int, acc bool) {
	var t [gemmMR * gemmNR]float32
	for p := 0; p < kc; p++ {
		bp := b[p*gemmNR : p*gemmNR+gemmNR]
		for i := 0; i < gemmMR; i++ {
			ai := a[p*gemmMR+i]
			row := t[i*gemmNR : i*gemmNR+gemmNR]
			for j, bv := range bp {
				row[j] += ai * bv
			}
		}
	}
	for i := 0; i < gemmMR; i++ {
		dst := c[i*ldc : i*ldc+gemmNR]
		src := t[i*gemmNR : i*gemmNR+gemmNR]
		if acc {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

// sgemmKernStridedGo is sgemmKernGo with A read in place.
func sgemmKernStridedGo(kc int, a []float32, lda int, b, c []float32, ldc int, acc bool) {
	var strip [gemmMR * gemmKC]float32
	for i := 0; i < gemmMR; i++ {
		for p, v := range a[i*lda : i*lda+kc] {
			strip[p*gemmMR+i] = v
		}
	}
	sgemmKernGo(kc, strip[:], b, c, ldc, acc)
}

// packA writes rows [i0, i0+mc) and columns [k0, k0+kc) of alpha·op(A) as
// strips of gemmMR rows, each kc steps of gemmMR values, zero-padded.
func (g *gemm) packA(dst []float32, i0, mc, k0, kc int) {
	alpha := g.alpha
	for ir := 0; ir < mc; ir += gemmMR {
		d := dst[ir*kc : ir*kc+gemmMR*kc]
		mr := min(gemmMR, mc-ir)
		if g.tA {
			for p := 0; p < kc; p++ {
				col := g.a[(k0+p)*g.lda+i0+ir:]
				col = col[:mr]
				dp := d[p*gemmMR : p*gemmMR+gemmMR]
				for i, v := range col {
					dp[i] = alpha * v
				}
				for i := mr; i < gemmMR; i++ {
					dp[i] = 0
				}
			}
			continue
		}
		if mr < gemmMR {
			clear(d)
		}
		for i := 0; i < mr; i++ {
			row := g.a[(i0+ir+i)*g.lda+k0:]
			row = row[:kc]
			for p, v := range row {
				d[p*gemmMR+i] = alpha * v
			}
		}
	}
}

// packB writes the k×n matrix op(b) into dst as, for each block of gemmKC
// rows, strips of nr columns, each kc steps of nr values, zero-padded to a
// multiple of nr columns.
func packB(dst, b []float32, ldb int, tB bool, k, n, nr int) {
	npad := padTo(n, nr)
	for pc := 0; pc < k; pc += gemmKC {
		kc := min(gemmKC, k-pc)
		base := dst[pc*npad : pc*npad+kc*npad]
		for j := 0; j < n; j += nr {
			d := base[j*kc : j*kc+nr*kc]
			w := min(nr, n-j)
			if tB {
				for jj := 0; jj < w; jj++ {
					src := b[(j+jj)*ldb+pc:]
					src = src[:kc]
					for p, v := range src {
						d[p*nr+jj] = v
					}
				}
				if w < nr {
					for p := 0; p < kc; p++ {
						clear(d[p*nr+w : p*nr+nr])
					}
				}
				continue
			}
			if w == nr {
				for p := 0; p < kc; p++ {
					copy(d[p*nr:p*nr+nr], b[(pc+p)*ldb+j:][:nr])
				}
				continue
			}
			// a partial strip (a narrow B): loops, not a memmove and a
			// memclr call per row
			for p := 0; p < kc; p++ {
				dp := d[p*nr : p*nr+nr]
				src := b[(pc+p)*ldb+j:][:w]
				for jj, v := range src {
					dp[jj] = v
				}
				for jj := w; jj < nr; jj++ {
					dp[jj] = 0
				}
			}
		}
	}
}
