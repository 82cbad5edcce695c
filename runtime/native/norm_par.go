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
		affineF32(dst[:len(src)], src, scale, shift)
	}
}

// meanVar4 is meanVar in one pass with running sums of x and of x² in
// float64 (eight of each with AVX2, four without), which the processor adds
// in parallel: a fixed order for a given length, so results stay the same
// for any batch. E[x²] − E[x]² in float64 loses digits only when |mean|
// exceeds the deviation by about 10⁶, far from what activations between
// norms look like.
func meanVar4(v []float32) (mean, variance float64) {
	if len(v) == 0 {
		return 0, 0
	}
	var s, q [4]float64
	i := 0
	if haveAVX2 {
		i = len(v) &^ 7
		if i > 0 {
			s[0], q[0] = sumSq16AVX2(v[:i])
		}
	}
	n4 := i + (len(v)-i)&^3
	for ; i < n4; i += 4 {
		w := v[i : i+4 : i+4]
		a, b, c, d := float64(w[0]), float64(w[1]), float64(w[2]), float64(w[3])
		s[0] += a
		s[1] += b
		s[2] += c
		s[3] += d
		q[0] += float64(a * a) // rounded apart, as the vector loop does
		q[1] += float64(b * b)
		q[2] += float64(c * c)
		q[3] += float64(d * d)
	}
	for _, x := range v[n4:] {
		a := float64(x)
		s[0] += a
		q[0] += float64(a * a)
	}
	n := float64(len(v))
	mean = (s[0] + s[1] + s[2] + s[3]) / n
	variance = max(0, (q[0]+q[1]+q[2]+q[3])/n-mean*mean)
	return mean, variance
}

// affineF32 is d[i] = s[i]·a + b, the product and the sum rounded apart.
func affineF32(d, s []float32, a, b float32) {
	s = s[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			affineAVX2(d[:n], s[:n], a, b)
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = float32(s[i]*a) + b // the conversion keeps Go from fusing into an FMA
	}
}

// affine2F32 is d[i] = (s[i]·a + b)·c + e, each step rounded apart.
func affine2F32(d, s []float32, a, b, c, e float32) {
	s = s[:len(d)]
	n := 0
	if haveAVX2 {
		n = len(d) &^ 7
		if n > 0 {
			affine2AVX2(d[:n], s[:n], a, b, c, e)
		}
	}
	for i := n; i < len(d); i++ {
		d[i] = float32(float32(float32(s[i]*a)+b)*c) + e
	}
}
