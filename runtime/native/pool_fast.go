package native

import "math"

// avgPoolRows bounds the scratch of avgPoolPlane (window sums of every
// input row), which lives on the stack.
const avgPoolRows = 4096

// avgPoolSeparable reports whether avgPoolPlane handles geometry g: a 2-D
// window of at least 3×3 (where summing rows first saves work) whose row
// sums fit the scratch.
func avgPoolSeparable(g *geom) bool {
	return g.kh >= 3 && g.kw >= 3 && g.dh == 1 && g.dw == 1 && g.h*g.ow <= avgPoolRows
}

// avgPoolPlane is AveragePool of one plane summed separably: first each
// input row over the window's columns, then those sums over the window's
// rows — kh + kw additions per output instead of kh·kw. The divisor is the
// general loop's.
func avgPoolPlane(y, x []float32, g *geom, includePad bool) {
	var buf [avgPoolRows]float32
	rs := buf[:g.h*g.ow]
	for iy := 0; iy < g.h; iy++ {
		row := x[iy*g.w : (iy+1)*g.w]
		out := rs[iy*g.ow : (iy+1)*g.ow]
		for ox := range out {
			x0 := ox*g.sw - g.pw
			var s float32
			for xx := max(x0, 0); xx < min(x0+g.kw, g.w); xx++ {
				s += row[xx]
			}
			out[ox] = s
		}
	}
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy*g.sh - g.ph
		ylo, yhi := max(y0, 0), min(y0+g.kh, g.h)
		dst := y[oy*g.ow : (oy+1)*g.ow]
		for ox := range dst {
			x0 := ox*g.sw - g.pw
			var s float32
			for yy := ylo; yy < yhi; yy++ {
				s += rs[yy*g.ow+ox]
			}
			cnt := (yhi - ylo) * (min(x0+g.kw, g.w) - max(x0, 0))
			if includePad {
				cnt = (min(y0+g.kh, g.h+g.phe) - y0) * (min(x0+g.kw, g.w+g.pwe) - x0)
			}
			dst[ox] = s / float32(max(cnt, 1))
		}
	}
}

// avgPoolFlatCap bounds each of avgPoolFlatRange's four scratch planes,
// which live on the stack (a 32×32 plane with a 5×5 window fits, 64×64
// does not and takes avgPoolPlane).
const avgPoolFlatCap = 4096

// avgPoolFlat reports whether avgPoolFlatRange handles geometry g: stride
// and dilation 1, where every window sum is a sum of shifted copies of the
// zero-padded plane.
func avgPoolFlat(g *geom) bool {
	hp, wp := g.h+g.ph+g.phe, g.w+g.pw+g.pwe
	return g.spatial == 2 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.kh >= 2 && g.kw >= 2 &&
		g.oh == hp-g.kh+1 && g.ow == wp-g.kw+1 && hp*wp+g.kw <= avgPoolFlatCap && g.oh*g.ow <= avgPoolFlatCap
}

// avgPoolFlatRange is avgPoolPlane for stride 1, over planes [lo, hi), with
// whole-plane vector additions instead of a loop per window: the plane is
// copied into a zero-padded one of width wp; the row sums are kw additions
// of that plane shifted by one column each, read flat (the last kw−1
// columns of each row mix two rows and are never used); the window sums are
// kh additions of the row sums shifted by one row. A window's taps are added
// in avgPoolPlane's order, with zeros where it skips the padding, so the
// results are its bits.
func avgPoolFlatRange(t *poolTask, lo, hi int) {
	g := &t.g
	hp, wp := g.h+g.ph+g.phe, g.w+g.pw+g.pwe
	var pb, rb, sb, db [avgPoolFlatCap]float32
	pad := pb[:hp*wp+g.kw] // the padded plane and zeros for the flat reads past its end
	rows := rb[:hp*wp]     // row sums; the padding rows stay zero
	sums := sb[:g.oh*wp]   // window sums
	div := db[:g.oh*g.ow]  // avgPoolPlane's divisors
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy - g.ph
		for ox := 0; ox < g.ow; ox++ {
			x0 := ox - g.pw
			cnt := (min(y0+g.kh, g.h) - max(y0, 0)) * (min(x0+g.kw, g.w) - max(x0, 0))
			if t.k.includePad {
				cnt = (min(y0+g.kh, g.h+g.phe) - y0) * (min(x0+g.kw, g.w+g.pwe) - x0)
			}
			div[oy*g.ow+ox] = float32(max(cnt, 1))
		}
	}
	hw, ohw := g.h*g.w, g.oh*g.ow
	mid := rows[g.ph*wp : (g.ph+g.h)*wp]
	src := pad[g.ph*wp:]
	for p := lo; p < hi; p++ {
		x := t.X[p*hw : (p+1)*hw]
		for iy := 0; iy < g.h; iy++ {
			copy(pad[(g.ph+iy)*wp+g.pw:], x[iy*g.w:(iy+1)*g.w])
		}
		// 0 + the first tap, as avgPoolPlane starts its sums at 0 (a −0
		// input becomes +0 there too)
		addScalarF32(mid, src[:len(mid)], 0)
		for j := 1; j < g.kw; j++ {
			addF32(mid, mid, src[j:j+len(mid)])
		}
		copy(sums, rows)
		for i := 1; i < g.kh; i++ {
			addF32(sums, sums, rows[i*wp:i*wp+len(sums)])
		}
		y := t.Y[p*ohw : (p+1)*ohw]
		for oy := 0; oy < g.oh; oy++ {
			copy(y[oy*g.ow:(oy+1)*g.ow], sums[oy*wp:])
		}
		divF32(y, y, div)
	}
}

// avgPool2x2 reports whether avgPool2x2Range handles geometry g: the 2×2,
// stride-2 average of downsampling layers, every window inside the plane.
func avgPool2x2(g *geom) bool {
	return g.spatial == 2 && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 &&
		g.ph+g.pw+g.phe+g.pwe == 0 && 2*g.oh <= g.h && 2*g.ow <= g.w
}

// avgPool2x2Range is the general loop's average for avgPool2x2's geometry,
// written out: the four taps summed from 0 in its order, divided by 4.
func avgPool2x2Range(t *poolTask, lo, hi int) {
	g := &t.g
	hw, ohw := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		x := t.X[p*hw : (p+1)*hw]
		y := t.Y[p*ohw : (p+1)*ohw]
		for oy := 0; oy < g.oh; oy++ {
			r0 := x[2*oy*g.w : (2*oy+1)*g.w]
			r1 := x[(2*oy+1)*g.w : (2*oy+2)*g.w]
			out := y[oy*g.ow : (oy+1)*g.ow]
			r0, r1 = r0[:2*len(out)], r1[:2*len(out)]
			for ox := range out {
				var s float32
				s += r0[2*ox]
				s += r0[2*ox+1]
				s += r1[2*ox]
				s += r1[2*ox+1]
				out[ox] = s / 4
			}
		}
	}
}

// maxPoolSeparable reports whether maxPoolPlane handles geometry g (no
// Indices output: the caller checks that).
func maxPoolSeparable(g *geom) bool {
	return g.spatial == 2 && g.kh >= 2 && g.kw >= 2 && g.dh == 1 && g.dw == 1 && g.h*g.ow <= avgPoolRows
}

// maxPoolPlane is MaxPool of one plane taken separably: each input row's
// maximum over the window's columns, then those over the window's rows. It
// gives the general loop's result, whose rule is "the first tap, then any
// strictly greater": NaN (that tap's own bits) when the window's first tap
// is NaN; otherwise the maximum of the other taps, NaN ones never winning,
// the first of equal ones in row-major order. So the row pass keeps each
// row's first tap apart and its maximum over the taps that are not NaN
// (−Inf when there are none, which never wins), and the column pass takes
// the first row's first tap when it is NaN.
func maxPoolPlane(y, x []float32, g *geom) {
	var mb, fb [avgPoolRows]float32
	rs := mb[:g.h*g.ow] // per input row and output column: the maximum
	rf := fb[:g.h*g.ow] // and the first tap
	inf := float32(math.Inf(-1))
	for iy := 0; iy < g.h; iy++ {
		row := x[iy*g.w : (iy+1)*g.w]
		out, first := rs[iy*g.ow:(iy+1)*g.ow], rf[iy*g.ow:(iy+1)*g.ow]
		for ox := range out {
			x0 := ox*g.sw - g.pw
			lo, hi := max(x0, 0), min(x0+g.kw, g.w)
			best, f := inf, inf
			if lo < hi {
				f = row[lo]
				seen := false
				for _, v := range row[lo:hi] {
					if v == v && (!seen || v > best) {
						best, seen = v, true
					}
				}
			}
			out[ox], first[ox] = best, f
		}
	}
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy*g.sh - g.ph
		ylo, yhi := max(y0, 0), min(y0+g.kh, g.h)
		dst := y[oy*g.ow : (oy+1)*g.ow]
		if ylo >= yhi {
			for ox := range dst {
				dst[ox] = inf
			}
			continue
		}
		copy(dst, rs[ylo*g.ow:(ylo+1)*g.ow])
		for yy := ylo + 1; yy < yhi; yy++ {
			for ox, v := range rs[yy*g.ow : (yy+1)*g.ow] {
				if v > dst[ox] {
					dst[ox] = v
				}
			}
		}
		for ox, f := range rf[ylo*g.ow : (ylo+1)*g.ow] {
			if f != f {
				dst[ox] = f
			}
		}
	}
}

// maxIntoF32 sets d[i] = a[i] if a[i] > b[i], else b[i]: with b the running
// maximum and a a later tap, the later tap wins only when strictly
// greater, and a NaN tap never does.
func maxIntoF32(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			maxVVAVX2(d[:n], a[:n], b[:n])
		}
	}
	for i := n; i < len(d); i++ {
		if a[i] > b[i] {
			d[i] = a[i]
		} else {
			d[i] = b[i]
		}
	}
}

// maxPoolFlatRange is MaxPool for avgPoolFlat's geometry (stride 1) over
// planes [lo, hi): like avgPoolFlatRange, whole-plane passes over a plane
// padded with −Inf, each tap taking over only where strictly greater — for
// a plane without NaN exactly the general loop's rule (the maximum, the
// first of equal ones in row-major order; a −Inf border never wins over a
// tap and ties only with −Inf). A plane holding a NaN takes maxPoolPlane,
// where a window's first tap decides.
func maxPoolFlatRange(t *poolTask, lo, hi int) {
	g := &t.g
	hp, wp := g.h+g.ph+g.phe, g.w+g.pw+g.pwe
	var pb, rb, sb [avgPoolFlatCap]float32
	inf := float32(math.Inf(-1))
	pad := pb[:hp*wp+g.kw]
	rows := rb[:hp*wp]
	sums := sb[:g.oh*wp]
	for i := range pad {
		pad[i] = inf
	}
	for i := range rows {
		rows[i] = inf
	}
	hw, ohw := g.h*g.w, g.oh*g.ow
	mid := rows[g.ph*wp : (g.ph+g.h)*wp]
	src := pad[g.ph*wp:]
	for p := lo; p < hi; p++ {
		x := t.X[p*hw : (p+1)*hw]
		y := t.Y[p*ohw : (p+1)*ohw]
		if hasNaN(x) {
			maxPoolPlane(y, x, g)
			continue
		}
		for iy := 0; iy < g.h; iy++ {
			copy(pad[(g.ph+iy)*wp+g.pw:], x[iy*g.w:(iy+1)*g.w])
		}
		copy(mid, src[:len(mid)])
		for j := 1; j < g.kw; j++ {
			maxIntoF32(mid, src[j:j+len(mid)], mid)
		}
		copy(sums, rows)
		for i := 1; i < g.kh; i++ {
			maxIntoF32(sums, rows[i*wp:i*wp+len(sums)], sums)
		}
		for oy := 0; oy < g.oh; oy++ {
			copy(y[oy*g.ow:(oy+1)*g.ow], sums[oy*wp:])
		}
	}
}

func hasNaN(x []float32) bool {
	for _, v := range x {
		if v != v {
			return true
		}
	}
	return false
}
