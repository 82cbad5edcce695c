package native

import "github.com/ebmrun/ebmrun/graph"

// resize2D is the Resize of images: rank 4, the batch and channel axes
// kept, each output pixel from the taps of its own plane. It computes what
// the general loop of resizeKernel.run does — the same float64 weights,
// multiplied and summed in the same order — plane by plane on the workers,
// without the per-element walk over axes and tap combinations. It reports
// false, computing nothing, for any other case (extrapolation included).
func resize2D(p *pool, st *resizeState, t, y *graph.Tensor, sh []int64, base []int) bool {
	const K = graph.MaxResizeTaps
	if len(sh) != 4 || sh[0] != t.Shape[0] || sh[1] != t.Shape[1] {
		return false
	}
	for ax := 0; ax < 2; ax++ {
		for o := 0; o < int(sh[ax]); o++ {
			j := base[ax] + o
			if st.n[j] != 1 || st.idx[K*j] != int64(o) || st.w[K*j] != 1 {
				return false
			}
		}
	}
	maxX := 0 // the most taps of any output column
	for ax := 2; ax < 4; ax++ {
		for o := 0; o < int(sh[ax]); o++ {
			n := st.n[base[ax]+o]
			if n == 0 {
				return false
			}
			if ax == 3 {
				maxX = max(maxX, int(n))
			}
		}
	}
	tk := &st.task
	*tk = resizeTask{st: st, x: t.F32, y: y.F32, h: int(t.Shape[2]), w: int(t.Shape[3]),
		oh: int(sh[2]), ow: int(sh[3]), by: base[2], bx: base[3], maxX: maxX}
	if maxX <= 2 {
		tk.cols = st.cols[:0]
		for ox := 0; ox < tk.ow; ox++ {
			jx := tk.bx + ox
			c := resizeCol{i0: st.idx[K*jx], i1: st.idx[K*jx], one: st.n[jx] == 1}
			if !c.one {
				c.i1 = st.idx[K*jx+1]
			}
			tk.cols = append(tk.cols, c)
		}
		st.cols = tk.cols
		// the products wy·wx of every output pixel's (up to) four taps,
		// computed once for all planes: the general loop multiplies the
		// weights before the value, so the bits are its own
		tk.wt = growSlice(st.wt[:0], 4*tk.oh*tk.ow)
		st.wt = tk.wt
		for oy := 0; oy < tk.oh; oy++ {
			jy := tk.by + oy
			wy0, wy1 := st.w[K*jy], 0.0
			if st.n[jy] > 1 {
				wy1 = st.w[K*jy+1]
			}
			for ox := 0; ox < tk.ow; ox++ {
				jx := tk.bx + ox
				wx0, wx1 := st.w[K*jx], 0.0
				if st.n[jx] > 1 {
					wx1 = st.w[K*jx+1]
				}
				q := tk.wt[4*(oy*tk.ow+ox):][:4]
				q[0], q[1], q[2], q[3] = wy0*wx0, wy0*wx1, wy1*wx0, wy1*wx1
			}
		}
	}
	p.parallel(int(sh[0]*sh[1]), max(1, normGrain/(tk.oh*tk.ow+1)), tk)
	return true
}

type resizeTask struct {
	st           *resizeState
	x, y         []float32
	wt           []float64   // weight products per output pixel (maxX ≤ 2)
	cols         []resizeCol // each output column's taps (maxX ≤ 2)
	h, w, oh, ow int
	by, bx       int // where the tables of axes 2 and 3 start
	maxX         int // the most taps of any output column (rows1, rows2 need ≤ 1, ≤ 2)
}

func (t *resizeTask) runRange(lo, hi int) {
	const K = graph.MaxResizeTaps
	st := t.st
	for pl := lo; pl < hi; pl++ {
		src := t.x[pl*t.h*t.w : (pl+1)*t.h*t.w]
		dst := t.y[pl*t.oh*t.ow : (pl+1)*t.oh*t.ow]
		for oy := 0; oy < t.oh; oy++ {
			jy := t.by + oy
			ny := st.n[jy]
			wy, iy := st.w[K*jy:K*jy+K], st.idx[K*jy:K*jy+K]
			row := dst[oy*t.ow : (oy+1)*t.ow]
			if ny == 1 && t.maxX == 1 {
				t.rows1(row, src[int(iy[0])*t.w:(int(iy[0])+1)*t.w], wy[0])
				continue
			}
			if ny == 1 && t.maxX <= 2 {
				// a clamped edge row of a bilinear resize: one row's taps
				t.rows1x(row, src[int(iy[0])*t.w:(int(iy[0])+1)*t.w], t.wt[4*oy*t.ow:4*(oy+1)*t.ow])
				continue
			}
			if ny == 2 && t.maxX <= 2 {
				// Bilinear rows, written out for two taps in y: the same
				// products and sums, in the same order, as the loop below.
				r0, r1 := src[int(iy[0])*t.w:(int(iy[0])+1)*t.w], src[int(iy[1])*t.w:(int(iy[1])+1)*t.w]
				t.rows2(row, r0, r1, t.wt[4*oy*t.ow:4*(oy+1)*t.ow])
				continue
			}
			for ox := range row {
				jx := t.bx + ox
				nx := st.n[jx]
				wx, ix := st.w[K*jx:K*jx+K], st.idx[K*jx:K*jx+K]
				// as the general loop: single-tap weights first, in axis
				// order, then every combination of the others, x fastest
				w0 := 1.0
				ty, tx := 1, 1
				if ny == 1 {
					w0 *= wy[0]
				} else {
					ty = ny
				}
				if nx == 1 {
					w0 *= wx[0]
				} else {
					tx = nx
				}
				v := 0.0
				for a := 0; a < ty; a++ {
					srow := src[int(iy[a])*t.w:]
					for b := 0; b < tx; b++ {
						w := w0
						if ny > 1 {
							w *= wy[a]
						}
						if nx > 1 {
							w *= wx[b]
						}
						v += w * float64(srow[ix[b]])
					}
				}
				row[ox] = float32(v)
			}
		}
	}
}

// rows2 fills an output row from two input rows when every output column
// has one or two taps in x (linear, with the edges clamped to one tap; the
// caller checks this through maxX). Each value is 0 + (wy0·wx0)·s00 + (wy0·wx1)·s01 + (wy1·wx0)·s10 + (wy1·wx1)·s11
// in float64 (one-tap columns: the first and third terms), the general
// loop's order: its leading 1·w factors are exact and a product of two
// weights is the same in either order.
func (t *resizeTask) rows2(row, r0, r1 []float32, wt []float64) {
	cols := t.cols[:len(row)]
	wt = wt[:4*len(row)]
	for ox, c := range cols {
		q := wt[4*ox : 4*ox+4 : 4*ox+4]
		v := 0.0
		if c.one {
			v += q[0] * float64(r0[c.i0])
			v += q[2] * float64(r1[c.i0])
		} else {
			v += q[0] * float64(r0[c.i0])
			v += q[1] * float64(r0[c.i1])
			v += q[2] * float64(r1[c.i0])
			v += q[3] * float64(r1[c.i1])
		}
		row[ox] = float32(v)
	}
}

// rows1x fills an output row from one input row with one or two taps per
// column: 0 + (wy·wx0)·s0 (+ (wy·wx1)·s1), the general loop's order.
func (t *resizeTask) rows1x(row, r0 []float32, wt []float64) {
	const K = graph.MaxResizeTaps
	st := t.st
	wt = wt[:4*len(row)]
	for ox := range row {
		jx := t.bx + ox
		q := wt[4*ox : 4*ox+2 : 4*ox+2]
		v := 0.0
		v += q[0] * float64(r0[st.idx[K*jx]])
		if st.n[jx] > 1 {
			v += q[1] * float64(r0[st.idx[K*jx+1]])
		}
		row[ox] = float32(v)
	}
}

// rows1 fills an output row from one input row when every output column
// has one tap (nearest, or linear on a grid point; see maxX): 0 + (wy·wx)·s in
// float64, the general loop's value (the caller has checked the taps).
func (t *resizeTask) rows1(row, r0 []float32, wy float64) {
	const K = graph.MaxResizeTaps
	st := t.st
	for ox := range row {
		jx := t.bx + ox
		v := 0.0
		v += wy * st.w[K*jx] * float64(r0[st.idx[K*jx]])
		row[ox] = float32(v)
	}
}

// resizeCol is one output column's taps in x, gathered for the row loops.
type resizeCol struct {
	i0, i1 int64
	one    bool // a single tap (i0)
}
