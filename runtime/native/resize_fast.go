package native

import "github.com/ebmrun/ebmrun/graph"

// resize2D is the Resize of images: rank 4, the batch and channel axes
// kept, each output pixel from at most a 2×2 neighbourhood of its plane.
// It computes what the general loop of resizeKernel.run does — the same
// float64 weights, corners summed in the same order, a corner left out
// where the general loop leaves it out — plane by plane on the workers,
// without the per-element walk over axes. It reports false, computing
// nothing, for any other case.
func resize2D(p *pool, st *resizeState, t, y *graph.Tensor, sh []int64, base []int) bool {
	if len(sh) != 4 || sh[0] != t.Shape[0] || sh[1] != t.Shape[1] {
		return false
	}
	for ax := 0; ax < 2; ax++ {
		for o := 0; o < int(sh[ax]); o++ {
			j := base[ax] + o
			if st.i0[j] != o || st.i1[j] != o && st.w[j] != 0 {
				return false
			}
		}
	}
	for ax := 2; ax < 4; ax++ {
		for o := 0; o < int(sh[ax]); o++ {
			if st.i0[base[ax]+o] < 0 {
				return false // extrapolation
			}
		}
	}
	tk := &st.task
	*tk = resizeTask{st: st, x: t.F32, y: y.F32, h: int(t.Shape[2]), w: int(t.Shape[3]),
		oh: int(sh[2]), ow: int(sh[3]), by: base[2], bx: base[3]}
	planes := int(sh[0] * sh[1])
	p.parallel(planes, max(1, normGrain/(tk.oh*tk.ow+1)), tk)
	return true
}

type resizeTask struct {
	st           *resizeState
	x, y         []float32
	h, w, oh, ow int
	by, bx       int // where the tables of axes 2 and 3 start
}

func (t *resizeTask) runRange(lo, hi int) {
	st := t.st
	for pl := lo; pl < hi; pl++ {
		src := t.x[pl*t.h*t.w : (pl+1)*t.h*t.w]
		dst := t.y[pl*t.oh*t.ow : (pl+1)*t.oh*t.ow]
		for oy := 0; oy < t.oh; oy++ {
			jy := t.by + oy
			y0, y1, wy := st.i0[jy], st.i1[jy], st.w[jy]
			ay := wy != 0 && y1 != y0
			r0, r1 := src[y0*t.w:(y0+1)*t.w], src[y1*t.w:(y1+1)*t.w]
			row := dst[oy*t.ow : (oy+1)*t.ow]
			for ox := range row {
				jx := t.bx + ox
				x0, x1, wx := st.i0[jx], st.i1[jx], st.w[jx]
				ax := wx != 0 && x1 != x0
				var v float64
				switch {
				case ay && ax:
					v = (1-wy)*(1-wx)*float64(r0[x0]) + wy*(1-wx)*float64(r1[x0]) +
						(1-wy)*wx*float64(r0[x1]) + wy*wx*float64(r1[x1])
				case ay:
					v = (1-wy)*float64(r0[x0]) + wy*float64(r1[x0])
				case ax:
					v = (1-wx)*float64(r0[x0]) + wx*float64(r0[x1])
				default:
					v = float64(r0[x0])
				}
				row[ox] = float32(v)
			}
		}
	}
}
