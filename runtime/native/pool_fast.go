package native

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
