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

// meanVar4 is meanVar with four running sums, which the processor adds in
// parallel: a fixed order for a given length, so results stay the same for
// any batch.
func meanVar4(v []float32) (mean, variance float64) {
	if len(v) == 0 {
		return 0, 0
	}
	var s [4]float64
	n4 := len(v) &^ 3
	for i := 0; i < n4; i += 4 {
		q := v[i : i+4 : i+4]
		s[0] += float64(q[0])
		s[1] += float64(q[1])
		s[2] += float64(q[2])
		s[3] += float64(q[3])
	}
	for _, x := range v[n4:] {
		s[0] += float64(x)
	}
	mean = (s[0] + s[1] + s[2] + s[3]) / float64(len(v))
	s = [4]float64{}
	for i := 0; i < n4; i += 4 {
		q := v[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(q[0])-mean, float64(q[1])-mean, float64(q[2])-mean, float64(q[3])-mean
		s[0] += d0 * d0
		s[1] += d1 * d1
		s[2] += d2 * d2
		s[3] += d3 * d3
	}
	for _, x := range v[n4:] {
		d := float64(x) - mean
		s[0] += d * d
	}
	return mean, (s[0] + s[1] + s[2] + s[3]) / float64(len(v))
}
