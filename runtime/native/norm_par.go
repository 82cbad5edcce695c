package native

import "math"

// normGrain is about the number of elements below which a worker is not
// worth waking for instance and group norms.
const normGrain = 1 << 14

func (*instanceNorm) newState() any { return new(normTask) }

// normTask is one run of an instance or group norm, split over (sample,
// group) pairs.
type normTask struct {
	k                   *instanceNorm
	x, s, b, y          []float32
	n, c, g, cpg, plane int
}

func (t *normTask) runRange(lo, hi int) {
	for q := lo; q < hi; q++ {
		t.group(q/t.g, q%t.g)
	}
}

// group normalises group gi of sample i.
func (t *normTask) group(i, gi int) {
	lo := (i*t.c + gi*t.cpg) * t.plane
	hi := lo + t.cpg*t.plane
	mean, v := meanVar4(t.x[lo:hi])
	inv := 1 / math.Sqrt(v+float64(t.k.eps))
	for ch := gi * t.cpg; ch < (gi+1)*t.cpg; ch++ {
		si := ch
		if t.k.perGroup {
			si = gi
		}
		scale := float32(inv) * t.s[si]
		shift := t.b[si] - float32(mean)*scale
		src := t.x[(i*t.c+ch)*t.plane : (i*t.c+ch+1)*t.plane]
		dst := t.y[(i*t.c+ch)*t.plane : (i*t.c+ch+1)*t.plane]
		dst = dst[:len(src)]
		for j, v := range src {
			dst[j] = v*scale + shift
		}
	}
}

// meanVar4 is meanVar in one pass with four running sums of x and of x²
// in float64, which the processor adds in parallel: a fixed order for a
// given length, so results stay the same for any batch. E[x²] − E[x]² in
// float64 loses digits only when |mean| exceeds the deviation by about
// 10⁶, far from what activations between norms look like.
func meanVar4(v []float32) (mean, variance float64) {
	if len(v) == 0 {
		return 0, 0
	}
	var s, q [4]float64
	n4 := len(v) &^ 3
	for i := 0; i < n4; i += 4 {
		w := v[i : i+4 : i+4]
		a, b, c, d := float64(w[0]), float64(w[1]), float64(w[2]), float64(w[3])
		s[0] += a
		s[1] += b
		s[2] += c
		s[3] += d
		q[0] += a * a
		q[1] += b * b
		q[2] += c * c
		q[3] += d * d
	}
	for _, x := range v[n4:] {
		a := float64(x)
		s[0] += a
		q[0] += a * a
	}
	n := float64(len(v))
	mean = (s[0] + s[1] + s[2] + s[3]) / n
	variance = max(0, (q[0]+q[1]+q[2]+q[3])/n-mean*mean)
	return mean, variance
}
