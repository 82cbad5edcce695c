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
	xp        []float32 // x, or its padded copy
	hp, wp    int       // padded input size
	vw        int       // columns per output row: the padded width or ow
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
	a       convA     // weights packed per run when they are not constant
	xpad    []float32 // the input with its zero border
	rowOff  []int     // offset of each reduction step from a column's first tap
	workers []convWorker
}

type convWorker struct {
	b    []float32 // packed patches: gemmKC × cols
	c    []float32 // C block: mpad × cols
	cols []int     // each column's offset in the padded input
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
	g := &t.g
	if g.n*t.mg*t.kk*g.oh*g.ow < gemmSerialWork {
		threads = 1
	}
	t.padInput()
	t.cols = convBlockCols
	for t.cols > convMinCols && t.group*t.blockCount(t.cols) < 2*threads {
		t.cols /= 2
	}
	t.blocksPer = t.blockCount(t.cols)
	t.next = 0
	w := t.work
	// a block is at most t.cols wide, or one output row when that is wider
	cpad := padTo(max(t.cols, t.vw), t.nr)
	for len(w.workers) < threads {
		w.workers = append(w.workers, convWorker{})
	}
	for i := range w.workers[:threads] {
		wk := &w.workers[i]
		wk.b = growSlice(wk.b, min(gemmKC, t.kk)*cpad)
		wk.c = growSlice(wk.c, t.a.mpad*cpad)
		if cap(wk.cols) < cpad {
			wk.cols = make([]int, 0, cpad)
		}
	}
	t.rowOffsets()
}

// blockCount is the number of column blocks of one group for blocks of
// about cols columns: whole samples per block when a sample fits, else each
// sample split into pieces of whole output rows.
func (t *convGemm) blockCount(cols int) int {
	per := t.g.oh * t.vw
	if per <= cols {
		spb := cols / per
		return (t.g.n + spb - 1) / spb
	}
	rows := max(1, cols/t.vw)
	return t.g.n * ((t.g.oh + rows - 1) / rows)
}

// block returns the samples [n0, n1) and output rows [y0, y1) of each of
// them that block b covers.
func (t *convGemm) block(b int) (n0, n1, y0, y1 int) {
	per := t.g.oh * t.vw
	if per <= t.cols {
		spb := t.cols / per
		return b * spb, min(t.g.n, (b+1)*spb), 0, t.g.oh
	}
	rows := max(1, t.cols/t.vw)
	pieces := (t.g.oh + rows - 1) / rows
	n0 = b / pieces
	y0 = b % pieces * rows
	return n0, n0 + 1, y0, min(t.g.oh, y0+rows)
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
	n0, n1, y0, y1 := t.block(b)
	wk.cols = t.colOffsets(wk.cols, gi, n0, n1, y0, y1)
	cpad := len(wk.cols)
	mpad := t.a.mpad
	a := t.a.groupData(gi)
	c := wk.c[:mpad*cpad]
	for pc := 0; pc < t.kk; pc += gemmKC {
		kc := min(gemmKC, t.kk-pc)
		bp := wk.b[:kc*cpad]
		t.packB(bp, wk.cols, pc, kc)
		ap := a[pc*mpad:]
		for jr := 0; jr < cpad; jr += t.nr {
			bs := bp[jr*kc : (jr+t.nr)*kc]
			for ir := 0; ir < mpad; ir += gemmMR {
				microPacked(t.impl, kc, ap[ir*kc:(ir+gemmMR)*kc], bs, c[ir*cpad+jr:], cpad, pc > 0)
			}
		}
	}
	t.epilogue(c, cpad, gi, n0, n1, y0, y1)
}

// packB gathers reduction steps [pc, pc+kc) of the patches of the block
// whose columns start at the offsets cols (into the padded input) into dst
// as strips of nr columns, each kc steps of nr values: column col of step p
// at (col/nr)·kc·nr + p·nr + col%nr. A strip whose columns are consecutive
// in the input (stride 1, one sample) is a copy per step; others gather.
// Every offset is inside the padded input, so neither needs bounds tests.
func (t *convGemm) packB(dst []float32, cols []int, pc, kc int) {
	nr := t.nr
	xs := t.xp
	rows := t.work.rowOff[pc : pc+kc]
	for s := 0; s < len(cols); s += nr {
		cs := cols[s : s+nr]
		strip := dst[s*kc : (s+nr)*kc]
		if cs[nr-1]-cs[0] == nr-1 && t.g.sw == 1 {
			c0 := cs[0]
			for p, r := range rows {
				copy(strip[p*nr:p*nr+nr], xs[c0+r:c0+r+nr])
			}
			continue
		}
		for p, r := range rows {
			d := strip[p*nr : p*nr+nr]
			d = d[:len(cs)]
			for jj, c := range cs {
				d[jj] = xs[c+r]
			}
		}
	}
}

// colOffsets writes, for each column of block (n0, n1, y0, y1) of group gi,
// the offset in the padded input of its patch's first tap, and pads the
// list to whole strips of nr. With stride 1 along the rows the columns of a
// row run over the padded width (t.vw): the ones past the output's width
// compute values nobody reads, and in exchange a row of patches is a
// contiguous slice of the input.
func (t *convGemm) colOffsets(cols []int, gi, n0, n1, y0, y1 int) []int {
	g := &t.g
	plane := t.hp * t.wp
	cols = cols[:0]
	for n := n0; n < n1; n++ {
		base := (n*g.c + gi*t.cg) * plane
		for oy := y0; oy < y1; oy++ {
			row := base + oy*g.sh*t.wp
			for vx := 0; vx < t.vw; vx++ {
				cols = append(cols, row+vx*g.sw)
			}
		}
	}
	for len(cols)%t.nr != 0 {
		cols = append(cols, cols[0])
	}
	return cols
}

// padInput sets xp to the input with the zero border the pads ask for, and
// vw, the columns per output row. With stride 1 along the rows, vw is the
// padded width and xp has room after its end for the taps of the spare
// columns; x itself serves when there is no border to add and no spare
// column (a 1×1 convolution). The copy is exact, so it changes no result.
func (t *convGemm) padInput() {
	g := &t.g
	t.hp, t.wp = g.h+g.ph+g.phe, g.w+g.pw+g.pwe
	t.vw = g.ow
	if g.sw == 1 {
		t.vw = t.wp
	}
	if g.ph+g.phe+g.pw+g.pwe == 0 && t.vw == g.ow {
		t.xp = t.x
		return
	}
	w := t.work
	plane := t.hp * t.wp
	slack := t.vw + (g.kw-1)*g.dw + 1
	w.xpad = growSlice(w.xpad, g.n*g.c*plane+slack)
	t.xp = w.xpad
	for pl := 0; pl < g.n*g.c; pl++ {
		dst := t.xp[pl*plane : (pl+1)*plane]
		src := t.x[pl*g.h*g.w : (pl+1)*g.h*g.w]
		clear(dst[:g.ph*t.wp])
		for y := 0; y < g.h; y++ {
			row := dst[(g.ph+y)*t.wp : (g.ph+y+1)*t.wp]
			clear(row[:g.pw])
			copy(row[g.pw:g.pw+g.w], src[y*g.w:(y+1)*g.w])
			clear(row[g.pw+g.w:])
		}
		clear(dst[(g.ph+g.h)*t.wp:])
	}
	clear(t.xp[g.n*g.c*plane:])
}

// rowOffsets fills the offset of each reduction step (channel, kernel row,
// kernel column) relative to a column's first tap.
func (t *convGemm) rowOffsets() {
	g := &t.g
	w := t.work
	w.rowOff = growSlice(w.rowOff, t.kk)
	plane := t.hp * t.wp
	r := 0
	for ch := 0; ch < t.cg; ch++ {
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				w.rowOff[r] = ch*plane + i*g.dh*t.wp + j*g.dw
				r++
			}
		}
	}
}

// epilogue writes rows of C (mg output channels of group gi) to the NCHW
// output, adding the bias and applying the activation one output row at a
// time, whatever the block, so that no result depends on the blocking.
func (t *convGemm) epilogue(c []float32, ldc, gi, n0, n1, y0, y1 int) {
	g := &t.g
	ohw := g.oh * g.ow
	span := (y1 - y0) * t.vw
	for m := 0; m < t.mg; m++ {
		oc := gi*t.mg + m
		var bv float32
		if t.bias != nil {
			bv = t.bias[oc]
		}
		row := c[m*ldc:]
		for n := n0; n < n1; n++ {
			src := row[(n-n0)*span:]
			dst := t.y[(n*g.m+oc)*ohw:]
			for oy := y0; oy < y1; oy++ {
				t.epi.apply(dst[oy*g.ow:(oy+1)*g.ow], src[(oy-y0)*t.vw:], bv)
			}
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
