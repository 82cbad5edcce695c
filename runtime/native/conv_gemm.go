package native

import (
	"math"
	"sync/atomic"
)

// Conv as one implicit GEMM per group: C[m, (sample, pixel)] = Σ_r W[m, r]·
// patch[r, (sample, pixel)], r = (channel, kernel row, kernel column). The
// weights are the A operand, packed once at Prepare into the micro-kernel's
// strips of gemmMR rows (packConvA); the patches are never laid out as an
// im2col matrix: packConvB gathers them from the input straight into the
// packed panels the micro-kernel reads. Columns run over the pixels of
// several samples at once, so small images still make wide products, and
// workers take blocks of columns from a shared counter.
//
// A column of C depends only on its own column of patches and on W, summed
// in the same order whatever the block, so a sample's output does not depend
// on the batch it is in. The epilogue (bias, activation) works on segments
// of an output plane that start at a multiple of convAlign pixels, which
// keeps the vector activations' split into vector and scalar parts the same
// for any blocking.

const (
	convBlockCols = 256 // columns of C per block, at most
	convMinCols   = 64  // blocks shrink to this to give every worker some
	convAlign     = 16  // block boundaries inside a plane: multiples of this
)

// convEpi is what a Conv's epilogue applies after the bias.
type convEpi struct {
	a     act  // sigmoid or SiLU, by applyAct
	relu  bool // max(v, 0)
	elu   bool // v < 0: alpha·(e^v − 1)
	alpha float64
}

func (e convEpi) none() bool { return e.a == actNone && !e.relu && !e.elu }

// convA is a Conv's weights packed as A operands, one per group: for each
// block of gemmKC reduction steps, strips of gemmMR output channels, each
// kc steps of gemmMR values, zero-padded to mpad rows.
type convA struct {
	group, mg, kk, mpad int
	data                []float32
}

// packConvA packs w ([group·mg, kk], row-major) into dst, which it grows.
func packConvA(dst *convA, w []float32, group, mg, kk int) {
	mpad := padTo(mg, gemmMR)
	*dst = convA{group: group, mg: mg, kk: kk, mpad: mpad, data: growSlice(dst.data, group*kk*mpad)}
	for gi := 0; gi < group; gi++ {
		wg := w[gi*mg*kk : (gi+1)*mg*kk]
		base := dst.data[gi*kk*mpad : (gi+1)*kk*mpad]
		for pc := 0; pc < kk; pc += gemmKC {
			kc := min(gemmKC, kk-pc)
			blk := base[pc*mpad : pc*mpad+kc*mpad]
			for ir := 0; ir < mpad; ir += gemmMR {
				d := blk[ir*kc : (ir+gemmMR)*kc]
				for i := 0; i < gemmMR; i++ {
					if ir+i >= mg {
						for p := 0; p < kc; p++ {
							d[p*gemmMR+i] = 0
						}
						continue
					}
					row := wg[(ir+i)*kk+pc : (ir+i)*kk+pc+kc]
					for p, v := range row {
						d[p*gemmMR+i] = v
					}
				}
			}
		}
	}
}

// group returns group gi's packed weights.
func (a *convA) groupData(gi int) []float32 {
	return a.data[gi*a.kk*a.mpad : (gi+1)*a.kk*a.mpad]
}

// convGemm is one run of a Conv: the task its workers share.
type convGemm struct {
	g         geom
	group     int
	cg, mg    int
	kk, khw   int
	x, y      []float32
	bias      []float32 // nil or one per output channel
	epi       convEpi
	a         *convA
	impl      gemmImpl
	nr        int
	cols      int // block width
	blocksPer int // blocks per group
	next      int64
	work      *convWork
}

// convWork is a session's scratch for convGemm: one pair of buffers per worker.
type convWork struct {
	a       convA // weights packed per run when they are not constant
	workers []convWorker
}

type convWorker struct {
	b []float32 // packed patches: gemmKC × cols
	c []float32 // C block: mpad × cols
}

// convImpl is the micro-kernel the conv path runs on this CPU: the plain-Go
// one where there is no assembly, so the fallback is batch-invariant too.
func convImpl(impl gemmImpl) gemmImpl {
	if impl == implAuto && !haveAVX2 {
		return implGo
	}
	return impl.resolve()
}

// setup fills the block geometry for threads workers and grows the scratch.
func (t *convGemm) setup(threads int) {
	t.impl = convImpl(t.impl)
	t.nr = t.impl.nr()
	ohw := t.g.oh * t.g.ow
	if t.g.n*t.mg*t.kk*ohw < gemmSerialWork {
		threads = 1
	}
	t.cols = convBlockCols
	for t.cols > convMinCols && t.group*t.blockCount(t.cols) < 2*threads {
		t.cols /= 2
	}
	t.blocksPer = t.blockCount(t.cols)
	t.next = 0
	w := t.work
	cpad := padTo(t.cols, t.nr)
	for len(w.workers) < threads {
		w.workers = append(w.workers, convWorker{})
	}
	for i := range w.workers[:threads] {
		wk := &w.workers[i]
		wk.b = growSlice(wk.b, min(gemmKC, t.kk)*cpad)
		wk.c = growSlice(wk.c, t.a.mpad*cpad)
	}
}

// blockCount is the number of column blocks of one group for blocks of at
// most cols columns: whole samples per block when a plane fits, else each
// sample split into pieces of cols pixels.
func (t *convGemm) blockCount(cols int) int {
	ohw := t.g.oh * t.g.ow
	if ohw <= cols {
		per := cols / ohw
		return (t.g.n + per - 1) / per
	}
	return t.g.n * ((ohw + cols - 1) / cols)
}

// block returns the samples [n0, n1) and pixels [p0, p1) of each of them
// that block b covers.
func (t *convGemm) block(b int) (n0, n1, p0, p1 int) {
	ohw := t.g.oh * t.g.ow
	if ohw <= t.cols {
		per := t.cols / ohw
		return b * per, min(t.g.n, (b+1)*per), 0, ohw
	}
	pieces := (ohw + t.cols - 1) / t.cols
	n0 = b / pieces
	p0 = b % pieces * t.cols
	return n0, n0 + 1, p0, min(ohw, p0+t.cols)
}

func (t *convGemm) run(p *pool) {
	threads := p.threads()
	t.setup(threads)
	if threads == 1 || len(t.work.workers) == 1 || t.group*t.blocksPer == 1 {
		t.worker(0)
		return
	}
	p.parallel(threads, 1, t)
}

func (t *convGemm) runRange(lo, hi int) {
	for wi := lo; wi < hi; wi++ {
		t.worker(wi)
	}
}

// worker computes blocks until none are left; wi picks its scratch.
func (t *convGemm) worker(wi int) {
	wk := &t.work.workers[wi]
	total := int64(t.group * t.blocksPer)
	for {
		b := atomic.AddInt64(&t.next, 1) - 1
		if b >= total {
			return
		}
		t.computeBlock(wk, int(b)/t.blocksPer, int(b)%t.blocksPer)
	}
}

// computeBlock computes block b of group gi and writes it to the output.
func (t *convGemm) computeBlock(wk *convWorker, gi, b int) {
	n0, n1, p0, p1 := t.block(b)
	ncols := (n1 - n0) * (p1 - p0)
	cpad := padTo(ncols, t.nr)
	mpad := t.a.mpad
	a := t.a.groupData(gi)
	c := wk.c[:mpad*cpad]
	for pc := 0; pc < t.kk; pc += gemmKC {
		kc := min(gemmKC, t.kk-pc)
		bp := wk.b[:kc*cpad]
		t.packB(bp, gi, pc, kc, n0, n1, p0, p1)
		ap := a[pc*mpad:]
		for jr := 0; jr < cpad; jr += t.nr {
			bs := bp[jr*kc : (jr+t.nr)*kc]
			for ir := 0; ir < mpad; ir += gemmMR {
				microPacked(t.impl, kc, ap[ir*kc:(ir+gemmMR)*kc], bs, c[ir*cpad+jr:], cpad, pc > 0)
			}
		}
	}
	t.epilogue(c, cpad, gi, n0, n1, p0, p1)
}

// packB gathers reduction steps [pc, pc+kc) of the patches of block (n0,
// n1, p0, p1) into dst as strips of nr columns, each kc steps of nr values:
// column col of step p at (col/nr)·kc·nr + p·nr + col%nr.
func (t *convGemm) packB(dst []float32, gi, pc, kc, n0, n1, p0, p1 int) {
	g := &t.g
	nr := t.nr
	hw := g.h * g.w
	ncols := (n1 - n0) * (p1 - p0)
	for p := 0; p < kc; p++ {
		r := pc + p
		ch, off := r/t.khw, r%t.khw
		i, j := off/g.kw, off%g.kw
		col := 0
		for n := n0; n < n1; n++ {
			plane := t.x[((n*g.c)+gi*t.cg+ch)*hw:][:hw]
			for pix := p0; pix < p1; {
				oy, ox := pix/g.ow, pix%g.ow
				run := min(g.ow-ox, p1-pix)
				for run > 0 {
					jj := col % nr
					seg := min(run, nr-jj)
					d := dst[(col/nr)*kc*nr+p*nr+jj:][:seg]
					patchRow(d, plane, g, oy, ox, i, j)
					col += seg
					pix += seg
					ox += seg
					run -= seg
				}
			}
		}
		if jj := ncols % nr; jj != 0 {
			clear(dst[(ncols/nr)*kc*nr+p*nr+jj:][:nr-jj])
		}
	}
}

// patchRow writes, for output pixels (oy, ox…ox+len(d)−1), the input value
// that kernel offset (i, j) reads: zero in the padding.
func patchRow(d, plane []float32, g *geom, oy, ox, i, j int) {
	iy := oy*g.sh - g.ph + i*g.dh
	if iy < 0 || iy >= g.h {
		clear(d)
		return
	}
	src := plane[iy*g.w : (iy+1)*g.w]
	ix := ox*g.sw - g.pw + j*g.dw
	if g.sw == 1 {
		lo := min(max(0, -ix), len(d))
		hi := max(lo, min(len(d), g.w-ix))
		clear(d[:lo])
		if hi > lo {
			copy(d[lo:hi], src[ix+lo:ix+hi])
		}
		clear(d[hi:])
		return
	}
	for k := range d {
		if ix >= 0 && ix < g.w {
			d[k] = src[ix]
		} else {
			d[k] = 0
		}
		ix += g.sw
	}
}

// epilogue writes rows of C (mg output channels of group gi) to the NCHW
// output, adding the bias and applying the activation.
func (t *convGemm) epilogue(c []float32, ldc, gi, n0, n1, p0, p1 int) {
	ohw := t.g.oh * t.g.ow
	span := p1 - p0
	for m := 0; m < t.mg; m++ {
		oc := gi*t.mg + m
		var bv float32
		if t.bias != nil {
			bv = t.bias[oc]
		}
		row := c[m*ldc:]
		for n := n0; n < n1; n++ {
			src := row[(n-n0)*span : (n-n0+1)*span]
			dst := t.y[(n*t.g.m+oc)*ohw+p0:][:span]
			t.epi.apply(dst, src, bv)
		}
	}
}

// apply sets d = f(s + bias) elementwise.
func (e convEpi) apply(d, s []float32, bias float32) {
	s = s[:len(d)]
	switch {
	case e.relu:
		for k, v := range s {
			d[k] = max(v+bias, 0)
		}
	case e.elu:
		for k, v := range s {
			v += bias
			if v < 0 {
				v = float32(e.alpha * math.Expm1(float64(v)))
			}
			d[k] = v
		}
	default:
		if bias != 0 {
			for k, v := range s {
				d[k] = v + bias
			}
			s = d
		}
		if e.a != actNone {
			applyAct(e.a, d, s, nil)
		} else if bias == 0 {
			copy(d, s)
		}
	}
}

// convDirectRef is Conv in plain Go with float64 sums, the reference the packed
// path is tested against: y[n, m, oy, ox] = f(bias[m] + Σ w·x).
func convDirectRef(y, x, w, bias []float32, g *geom, group int, epi convEpi) {
	cg, mg := g.c/group, g.m/group
	for n := 0; n < g.n; n++ {
		for m := 0; m < g.m; m++ {
			gi := m / mg
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					var s float64
					for ch := 0; ch < cg; ch++ {
						for i := 0; i < g.kh; i++ {
							iy := oy*g.sh - g.ph + i*g.dh
							if iy < 0 || iy >= g.h {
								continue
							}
							for j := 0; j < g.kw; j++ {
								ix := ox*g.sw - g.pw + j*g.dw
								if ix < 0 || ix >= g.w {
									continue
								}
								s += float64(w[((m*cg+ch)*g.kh+i)*g.kw+j]) * float64(x[((n*g.c+gi*cg+ch)*g.h+iy)*g.w+ix])
							}
						}
					}
					var bv float32
					if bias != nil {
						bv = bias[m]
					}
					v := float32(s)
					out := y[((n*g.m+m)*g.oh+oy)*g.ow+ox:][:1]
					epiRef(epi, out, v+bv)
				}
			}
		}
	}
}

func epiRef(e convEpi, d []float32, v float32) {
	switch {
	case e.relu:
		v = max(v, 0)
	case e.elu:
		if v < 0 {
			v = float32(e.alpha * math.Expm1(float64(v)))
		}
	case e.a != actNone:
		applyActRef(e.a, d, []float32{v}, nil)
		return
	}
	d[0] = v
}
