package native

// reduceSumFast computes ReduceSum (and the sums of ReduceMean and
// ReduceSumSquare when sq) for the layouts the autodiff's gradients
// produce, after merging neighbouring axes that are both reduced or both
// kept: [K, R] (a sum per contiguous row), [R, K] and [K₁, R, K₂] (rows
// added into the output), [R₁, K, R₂] (bias gradients: every sample's
// rows). It reports false, touching nothing, for other layouts, which the
// general walk handles. Sums run in float32 in a fixed order for a given
// shape.
func reduceSumFast(d, x []float32, shape []int64, m *[maxRank]bool, sq bool) bool {
	ext, red, g := mergeAxes(shape, m)
	if len(x) == 0 {
		return false
	}
	switch {
	case g == 0: // one element
		d[0] = sqIf(x[0], sq)
	case g == 1 && red[0]: // everything
		d[0] = rowSum(x, sq)
	case g == 1: // nothing reduced
		for i, v := range x {
			d[i] = sqIf(v, sq)
		}
	case g == 2 && !red[0]: // [K, R]
		r := ext[1]
		for k := range d[:ext[0]] {
			d[k] = rowSum(x[k*r:(k+1)*r], sq)
		}
	case g == 2: // [R, K]
		addRows(d[:ext[1]], x, ext[0], sq)
	case g == 3 && !red[0]: // [K1, R, K2]
		k2 := ext[2]
		for k1 := 0; k1 < ext[0]; k1++ {
			addRows(d[k1*k2:(k1+1)*k2], x[k1*ext[1]*k2:(k1+1)*ext[1]*k2], ext[1], sq)
		}
	case g == 3: // [R1, K, R2]
		k, r2 := ext[1], ext[2]
		clear(d[:k])
		for r1 := 0; r1 < ext[0]; r1++ {
			blk := x[r1*k*r2 : (r1+1)*k*r2]
			for j := range d[:k] {
				d[j] += rowSum(blk[j*r2:(j+1)*r2], sq)
			}
		}
	default:
		return false
	}
	return true
}

// mergeAxes merges neighbouring axes that are both reduced or both kept
// (dropping unit axes): g groups of ext elements, red[i] for reduced ones.
func mergeAxes(shape []int64, m *[maxRank]bool) (ext [maxRank]int, red [maxRank]bool, g int) {
	for i, s := range shape {
		if s == 1 {
			continue // a unit axis is neither: it changes no index
		}
		if g > 0 && red[g-1] == m[i] {
			ext[g-1] *= int(s)
			continue
		}
		ext[g], red[g] = int(s), m[i]
		g++
	}
	return ext, red, g
}

// reduceTask is reduceSumFast's [K, R] and [R1, K, R2] sums split over the
// workers by output element: each output's sum is the serial one, the same
// rowSum calls added in the same order.
type reduceTask struct {
	d, x      []float32
	r1, k, r2 int
	kr        bool // [K, R]: d[j] is one row's sum, not added to 0
}

func (t *reduceTask) runRange(lo, hi int) {
	for j := lo; j < hi; j++ {
		if t.kr {
			t.d[j] = rowSum(t.x[j*t.r2:(j+1)*t.r2], false)
			continue
		}
		var acc float32
		for r1 := 0; r1 < t.r1; r1++ {
			acc += rowSum(t.x[(r1*t.k+j)*t.r2:(r1*t.k+j+1)*t.r2], false)
		}
		t.d[j] = acc
	}
}

// reduceSumPar is reduceSumFast on the pool's workers for the layouts whose
// outputs are independent sums of rows ([K, R] and [R1, K, R2], the bias
// gradients); false, touching nothing, for the others.
func reduceSumPar(p *pool, t *reduceTask, d, x []float32, shape []int64, m *[maxRank]bool) bool {
	ext, red, g := mergeAxes(shape, m)
	switch {
	case g == 2 && !red[0] && red[1]:
		*t = reduceTask{d: d, x: x, r1: 1, k: ext[0], r2: ext[1], kr: true}
	case g == 3 && red[0] && !red[1] && red[2]:
		*t = reduceTask{d: d, x: x, r1: ext[0], k: ext[1], r2: ext[2]}
	default:
		return false
	}
	p.parallel(t.k, max(1, elementsPerTask/(t.r1*t.r2+1)), t)
	return true
}

func sqIf(v float32, sq bool) float32 {
	if sq {
		return v * v
	}
	return v
}

// addRows sets d = Σ over the rows of x (rows × len(d)).
func addRows(d, x []float32, rows int, sq bool) {
	n := len(d)
	clear(d)
	for r := 0; r < rows; r++ {
		row := x[r*n : (r+1)*n]
		row = row[:len(d)]
		if sq {
			for j, v := range row {
				d[j] += v * v
			}
			continue
		}
		for j, v := range row {
			d[j] += v
		}
	}
}

// rowSum is Σ v (or Σ v²) with four running sums.
func rowSum(v []float32, sq bool) float32 {
	var s0, s1, s2, s3 float32
	n4 := len(v) &^ 3
	if sq {
		for i := 0; i < n4; i += 4 {
			q := v[i : i+4 : i+4]
			s0 += q[0] * q[0]
			s1 += q[1] * q[1]
			s2 += q[2] * q[2]
			s3 += q[3] * q[3]
		}
		for _, x := range v[n4:] {
			s0 += x * x
		}
	} else {
		for i := 0; i < n4; i += 4 {
			q := v[i : i+4 : i+4]
			s0 += q[0]
			s1 += q[1]
			s2 += q[2]
			s3 += q[3]
		}
		for _, x := range v[n4:] {
			s0 += x
		}
	}
	return (s0 + s1) + (s2 + s3)
}
