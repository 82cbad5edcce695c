package native

import (
	"math"
	"sync/atomic"
	"unsafe"
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
// on the batch it is in. The epilogue (bias, activation) runs over whole
// rows of C, whose width is a multiple of the vector width, so every element
// goes through the vector kernels (or, without them, every one through the
// Go loops): an element's bits do not depend on where the blocking put it.

const (
	convBlockCols = 256 // columns of C per block, at most
	convMinCols   = 64  // blocks shrink to this to give every worker some
)

// convEpi is what a Conv's epilogue applies after the bias.
type convEpi struct {
	a     act  // sigmoid or SiLU, by applyAct
	relu  bool // max(v, 0)
	elu   bool // v < 0: alpha·(e^v − 1)
	alpha float32
}

func (e convEpi) none() bool { return e.a == actNone && !e.relu && !e.elu }

// convA is a Conv's weights packed as A operands, one per group: for each
// block of gemmKC reduction steps, strips of gemmMR output channels, each
// kc steps of gemmMR values, zero-padded to mpad rows.
type convA struct {
	group, mg, kk, mpad int
	mr                  int // rows per strip: convMR of the kernel that reads it
	kc                  int // reduction steps per block: kk split evenly, at most gemmKC
	data                []float32
}

// convKC splits kk reduction steps into even blocks of at most gemmKC: 288
// makes two of 144, not 256 and a short, inefficient 32.
func convKC(kk int) int {
	blocks := (kk + gemmKC - 1) / gemmKC
	return (kk + blocks - 1) / blocks
}

// convMR is the rows of the conv path's register block for micro-kernel
// impl: 8 with AVX-512 when the output channels are a multiple of 8 and
// not of 6 — 16 and 32 channels, which 6-row strips pad to 18 and 36 — and
// gemmMR otherwise. A row's sums are the same for any block height.
func convMR(impl gemmImpl, mg int) int {
	if impl.resolve() == implAVX512 && haveAVX512 && mg%8 == 0 && mg%6 != 0 {
		return 8
	}
	return gemmMR
}

// packConvA packs w ([group·mg, kk], row-major) into dst, reusing its
// memory, in strips of mr rows.
func packConvA(dst *convA, w []float32, group, mg, kk, mr int) {
	mpad := padTo(mg, mr)
	kcb := convKC(kk)
	*dst = convA{group: group, mg: mg, kk: kk, mpad: mpad, mr: mr, kc: kcb, data: growSlice(dst.data, group*kk*mpad)}
	for gi := 0; gi < group; gi++ {
		wg := w[gi*mg*kk : (gi+1)*mg*kk]
		base := dst.data[gi*kk*mpad : (gi+1)*kk*mpad]
		for pc := 0; pc < kk; pc += kcb {
			kc := min(kcb, kk-pc)
			blk := base[pc*mpad : pc*mpad+kc*mpad]
			for ir := 0; ir < mpad; ir += mr {
				d := blk[ir*kc : (ir+mr)*kc]
				for i := 0; i < mr; i++ {
					if ir+i >= mg {
						for p := 0; p < kc; p++ {
							d[p*mr+i] = 0
						}
						continue
					}
					row := wg[(ir+i)*kk+pc : (ir+i)*kk+pc+kc]
					for p, v := range row {
						d[p*mr+i] = v
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
	direct    bool      // patches read from x itself: no border to add, no spare columns
	wp        int       // padded input width
	vw        int       // columns per output row: the padded width or ow
	plane     int       // distance between channels where patches are read
	rowStride int       // distance between input rows there
	rowsIn    int       // input rows per channel of a worker's slab
	spb       int       // samples per block; 0: blocks are rows of one sample
	pitch     int       // columns per sample in a block of whole samples
	spare     bool      // columns past a sample's or block's last continue its run
	rows      int       // output rows per block when spb is 0
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
	rowOff  []int // offset of each reduction step from a column's first tap
	workers []convWorker
}

type convWorker struct {
	b    []float32 // packed patches: kc × cols
	c    []float32 // C block: mpad × cols
	slab []float32 // the block's input rows with their zero border
	cols []int     // each column's offset in the slab (or x)
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
	t.wp = g.w + g.pw + g.pwe
	t.vw = g.ow
	if g.sw == 1 {
		t.vw = t.wp
	}
	t.direct = g.ph+g.phe+g.pw+g.pwe == 0 && t.vw == g.ow
	// With stride 1 from a slab, each sample's columns (and a block's) are
	// rounded up to whole strips whose spare columns continue the run: every
	// strip is then one contiguous slice per reduction step, a copy instead
	// of a gather, for a few columns of work nobody reads. The slab's slack
	// covers the reads past its end.
	t.spare = !t.direct && g.sw == 1
	t.pitch = g.oh * t.vw
	if t.spare {
		t.pitch = padTo(t.pitch, t.nr)
	}
	t.cols = convBlockCols
	for t.cols > convMinCols && t.group*t.blockCount(t.cols) < 2*threads {
		t.cols /= 2
	}
	t.blocksPer = t.blockCount(t.cols)
	t.next = 0
	t.spb, t.rows = 0, max(1, t.cols/t.vw)
	if per := t.pitch; per <= t.cols {
		t.spb, t.rows = t.cols/per, g.oh
	}
	slab := 0
	if t.direct {
		t.plane, t.rowStride = g.h*g.w, g.w
	} else {
		t.rowsIn = (t.rows-1)*g.sh + (g.kh-1)*g.dh + 1
		t.plane, t.rowStride = t.rowsIn*t.wp, t.wp
		// the spare columns of the last row read up to a row's width
		// and the kernel's reach past the slab's end
		slab = max(1, t.spb)*t.cg*t.plane + t.vw + (g.kw-1)*g.dw + gemmNRMax
	}
	w := t.work
	// a block is at most t.cols wide, or one output row when that is wider
	cpad := padTo(max(t.cols, t.vw), t.nr)
	for len(w.workers) < threads {
		w.workers = append(w.workers, convWorker{})
	}
	for i := range w.workers[:threads] {
		wk := &w.workers[i]
		wk.b = growSlice(wk.b, t.a.kc*cpad)
		wk.c = growSlice(wk.c, t.a.mpad*cpad)
		wk.slab = growSlice(wk.slab, slab)
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
	per := t.pitch
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
	if t.spb > 0 {
		return b * t.spb, min(t.g.n, (b+1)*t.spb), 0, t.g.oh
	}
	pieces := (t.g.oh + t.rows - 1) / t.rows
	n0 = b / pieces
	y0 = b % pieces * t.rows
	return n0, n0 + 1, y0, min(t.g.oh, y0+t.rows)
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
	xs := t.x
	if !t.direct {
		xs = t.fillSlab(wk.slab, gi, n0, n1, y0)
	}
	wk.cols = t.colOffsets(wk.cols, gi, n0, n1, y0, y1)
	cpad := len(wk.cols)
	mpad := t.a.mpad
	a := t.a.groupData(gi)
	c := wk.c[:mpad*cpad]
	for pc := 0; pc < t.kk; pc += t.a.kc {
		kc := min(t.a.kc, t.kk-pc)
		rows := t.work.rowOff[pc : pc+kc]
		ap := a[pc*mpad:]
		for jr := 0; jr < cpad; jr += t.nr {
			cs := wk.cols[jr : jr+t.nr]
			mr := t.a.mr
			if t.indirect(xs, cs, rows) {
				// the strip's patches are rows of the slab: read in place
				for ir := 0; ir < mpad; ir += mr {
					microIndirect(t.impl, mr, kc, ap[ir*kc:(ir+mr)*kc], xs, cs[0], rows, c[ir*cpad+jr:], cpad, pc > 0)
				}
				continue
			}
			bs := wk.b[:kc*t.nr]
			t.packB(bs, xs, cs, pc, kc)
			for ir := 0; ir < mpad; ir += mr {
				if mr == 8 {
					microPacked8(kc, ap[ir*kc:(ir+mr)*kc], bs, c[ir*cpad+jr:], cpad, pc > 0)
					continue
				}
				microPacked(t.impl, kc, ap[ir*kc:(ir+mr)*kc], bs, c[ir*cpad+jr:], cpad, pc > 0)
			}
		}
	}
	t.epilogue(c, cpad, gi, n0, n1, y0, y1)
}

// indirect reports whether the strip of columns cs can be read in place by
// the indirect micro-kernel: consecutive columns (stride 1), an assembly
// kernel, and every row's read inside xs (the bounds the kernel relies on).
func (t *convGemm) indirect(xs []float32, cs []int, rows []int) bool {
	n := len(cs)
	return t.impl != implGo && t.g.sw == 1 && cs[n-1]-cs[0] == n-1 &&
		cs[0] >= 0 && rows[0] >= 0 && cs[0]+rows[len(rows)-1]+n <= len(xs)
}

// microIndirect is microPacked with B's row p the nr floats at
// xs[c0+rows[p]:]; the same products in the same order, so the same bits.
func microIndirect(impl gemmImpl, mr, kc int, a, xs []float32, c0 int, rows []int, c []float32, ldc int, acc bool) {
	_ = a[:mr*kc]
	_ = rows[:kc]
	_ = c[:(mr-1)*ldc+impl.nr()]
	if mr == 8 {
		sgemmKern8x32IndAVX512(kc, unsafe.SliceData(a), &xs[c0], unsafe.SliceData(rows), unsafe.SliceData(c), ldc, b2i(acc))
		return
	}
	if impl == implAVX512 {
		sgemmKern6x32IndAVX512(kc, unsafe.SliceData(a), &xs[c0], unsafe.SliceData(rows), unsafe.SliceData(c), ldc, b2i(acc))
		return
	}
	sgemmKern6x16IndAVX2(kc, unsafe.SliceData(a), &xs[c0], unsafe.SliceData(rows), unsafe.SliceData(c), ldc, b2i(acc))
}

// microPacked8 is microPacked with the 8-row AVX-512 kernel (convMR 8).
func microPacked8(kc int, a, b, c []float32, ldc int, acc bool) {
	_ = a[:8*kc]
	_ = b[:gemmNRMax*kc]
	_ = c[:7*ldc+gemmNRMax]
	sgemmKern8x32AVX512(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, b2i(acc))
}

// packB gathers reduction steps [pc, pc+kc) of the patches of the block
// whose columns start at the offsets cols (into xs, the slab) into dst
// as strips of nr columns, each kc steps of nr values: column col of step p
// at (col/nr)·kc·nr + p·nr + col%nr. A strip whose columns are consecutive
// in the input (stride 1, one sample) is a copy per step; others gather.
// Every offset is inside the padded input, so neither needs bounds tests.
func (t *convGemm) packB(dst, xs []float32, cols []int, pc, kc int) {
	nr := t.nr
	rows := t.work.rowOff[pc : pc+kc]
	for s := 0; s < len(cols); s += nr {
		cs := cols[s : s+nr]
		strip := dst[s*kc : (s+nr)*kc]
		if cs[nr-1]-cs[0] == nr-1 && t.g.sw == 1 {
			packRows(t.impl, strip, xs, cs[0], rows, nr)
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

// packRows sets dst[nr·i+j] = xs[c0+rows[i]+j] for i < len(rows), j < nr:
// one strip of consecutive columns. The assembly copies a strip per call;
// rows ascend (rowOffsets makes them so), so its first and last entries
// bound every read.
func packRows(impl gemmImpl, dst, xs []float32, c0 int, rows []int, nr int) {
	n := len(rows)
	if n == 0 {
		return
	}
	_ = dst[:n*nr]
	if impl != implGo && haveAVX2 && (nr == 16 || nr == 32) && c0 >= 0 && rows[0] >= 0 && c0+rows[n-1]+nr <= len(xs) {
		if nr == 32 {
			packRows32AVX2(unsafe.SliceData(dst), &xs[c0], unsafe.SliceData(rows), n)
		} else {
			packRows16AVX2(unsafe.SliceData(dst), &xs[c0], unsafe.SliceData(rows), n)
		}
		return
	}
	packRowsRef(dst, xs, c0, rows, nr)
}

// packRowsRef is packRows in plain Go, the reference for the assembly.
func packRowsRef(dst, xs []float32, c0 int, rows []int, nr int) {
	for p, r := range rows {
		copy(dst[p*nr:p*nr+nr], xs[c0+r:c0+r+nr])
	}
}

// colOffsets writes, for each column of block (n0, n1, y0, y1) of group gi,
// the offset of its patch's first tap in the slab (or in x when direct),
// and pads the list to whole strips of nr. With stride 1 along the rows
// the columns of a row run over the padded width (t.vw): the ones past the
// output's width compute values nobody reads, and in exchange a row of
// patches is a contiguous slice of the slab.
func (t *convGemm) colOffsets(cols []int, gi, n0, n1, y0, y1 int) []int {
	g := &t.g
	cols = cols[:0]
	for n := n0; n < n1; n++ {
		base := (n - n0) * t.cg * t.plane
		if t.direct {
			base = (n*g.c + gi*t.cg) * t.plane
		}
		for oy := y0; oy < y1; oy++ {
			row := base + (oy-y0)*g.sh*t.rowStride
			if t.direct {
				row = base + oy*g.sh*t.rowStride
			}
			for vx := 0; vx < t.vw; vx++ {
				cols = append(cols, row+vx*g.sw)
			}
		}
		if t.spare && t.spb > 0 {
			for last := cols[len(cols)-1]; len(cols)%t.pitch != 0; {
				last++
				cols = append(cols, last)
			}
		}
	}
	for last := cols[len(cols)-1]; len(cols)%t.nr != 0; {
		if t.spare {
			last++
			cols = append(cols, last)
		} else {
			cols = append(cols, cols[0])
		}
	}
	return cols
}

// fillSlab copies the input rows that output rows y0… of samples [n0, n1)
// of group gi read into slab, with the zero border the pads ask for: for
// each sample and channel, t.rowsIn rows of the padded width. The copy is
// exact, so it changes no result; done per block, it is fresh in cache for
// the packing and shared out among the workers.
func (t *convGemm) fillSlab(slab []float32, gi, n0, n1, y0 int) []float32 {
	g := &t.g
	used := (n1 - n0) * t.cg * t.plane
	iy0 := y0*g.sh - g.ph
	for n := n0; n < n1; n++ {
		for ch := 0; ch < t.cg; ch++ {
			src := t.x[(n*g.c+gi*t.cg+ch)*g.h*g.w:][:g.h*g.w]
			dst := slab[((n-n0)*t.cg+ch)*t.plane:][:t.plane]
			for r := 0; r < t.rowsIn; r++ {
				row := dst[r*t.wp : (r+1)*t.wp]
				iy := iy0 + r
				if iy < 0 || iy >= g.h {
					clear(row)
					continue
				}
				// the borders are a column or two: loops, not memclr calls
				for j := range row[:g.pw] {
					row[j] = 0
				}
				copy(row[g.pw:g.pw+g.w], src[iy*g.w:(iy+1)*g.w])
				for j := g.pw + g.w; j < len(row); j++ {
					row[j] = 0
				}
			}
		}
	}
	clear(slab[used:])
	return slab
}

// rowOffsets fills the offset of each reduction step (channel, kernel row,
// kernel column) relative to a column's first tap; they ascend.
func (t *convGemm) rowOffsets() {
	g := &t.g
	w := t.work
	w.rowOff = growSlice(w.rowOff, t.kk)
	r := 0
	for ch := 0; ch < t.cg; ch++ {
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				w.rowOff[r] = ch*t.plane + i*g.dh*t.rowStride + j*g.dw
				r++
			}
		}
	}
}

// epilogue adds the bias to rows of C (mg output channels of group gi) and
// applies the activation in place, a whole row of the block at a time —
// the spare columns too, which costs a little work and saves a call per
// output row — then copies the output rows to the NCHW output.
func (t *convGemm) epilogue(c []float32, ldc, gi, n0, n1, y0, y1 int) {
	g := &t.g
	ohw := g.oh * g.ow
	span := (y1 - y0) * t.vw
	if t.spb > 0 {
		span = t.pitch
	}
	for m := 0; m < t.mg; m++ {
		oc := gi*t.mg + m
		var bv float32
		if t.bias != nil {
			bv = t.bias[oc]
		}
		row := c[m*ldc : m*ldc+ldc]
		t.epi.apply(row, row, bv)
		for n := n0; n < n1; n++ {
			src := row[(n-n0)*span:]
			dst := t.y[(n*g.m+oc)*ohw:]
			if t.vw == g.ow {
				copy(dst[y0*g.ow:y1*g.ow], src)
				continue
			}
			for oy := y0; oy < y1; oy++ {
				copy(dst[oy*g.ow:(oy+1)*g.ow], src[(oy-y0)*t.vw:])
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
		addScalarF32(d, s, bias)
		eluInto(d, d, e.alpha)
	default:
		if bias != 0 {
			addScalarF32(d, s, bias)
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
			v = float32(float64(e.alpha) * math.Expm1(float64(v)))
		}
	case e.a != actNone:
		applyActRef(e.a, d, []float32{v}, nil)
		return
	}
	d[0] = v
}
