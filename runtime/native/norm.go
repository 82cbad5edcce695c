package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// meanVar returns the mean and the biased variance of v, in float64.
func meanVar(v []float32) (mean, variance float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		variance += d * d
	}
	return mean, variance / float64(len(v))
}

func checkF32(ts ...*graph.Tensor) error {
	for _, t := range ts {
		if t != nil && t.DType != graph.Float32 {
			return fmt.Errorf("only float32 is supported, got %s", t.DType)
		}
	}
	return nil
}

// instanceNorm normalises each (sample, channel) plane, or each group of
// channels (GroupNormalization), then scales and shifts per channel.
type instanceNorm struct {
	eps      float32
	groups   int64 // 0: InstanceNormalization
	perGroup bool  // GroupNormalization before opset 21: scale and bias per group
}

func (k *instanceNorm) infer(in, out []*graph.Tensor) error {
	x, s, b := in[0], in[1], in[2]
	if err := checkF32(x, s, b); err != nil {
		return err
	}
	if len(x.Shape) < 2 {
		return fmt.Errorf("input %v has no channel dimension", x.Shape)
	}
	c := x.Shape[1]
	want := c
	if k.groups > 0 {
		if c%k.groups != 0 {
			return fmt.Errorf("%d channels in %d groups", c, k.groups)
		}
		if k.perGroup {
			want = k.groups
		}
	}
	if prod(s.Shape) != want || prod(b.Shape) != want {
		return fmt.Errorf("scale %v and bias %v, want %d values", s.Shape, b.Shape, want)
	}
	setShape(out[0], graph.Float32, x.Shape)
	return nil
}

func (k *instanceNorm) run(x *exec, in, out []*graph.Tensor) error {
	t := x.state.(*normTask)
	*t = normTask{k: k, x: in[0].F32, s: in[1].F32, b: in[2].F32, y: out[0].F32}
	t.n, t.c = int(in[0].Shape[0]), int(in[0].Shape[1])
	t.plane = int(prod(in[0].Shape[2:]))
	t.g = t.c
	if k.groups > 0 {
		t.g = int(k.groups)
	}
	t.cpg = t.c / t.g
	// each (sample, group) alone, so a sample's result does not depend
	// on the batch or on which worker takes it
	x.pool.parallel(t.n*t.g, max(1, normGrain/(t.cpg*t.plane+1)), t)
	return nil
}

func compileGroupNorm(c *compileCtx) (kernel, error) {
	g := c.node.AttrInt("num_groups", 0)
	if g < 1 {
		return nil, fmt.Errorf("num_groups is required")
	}
	return &instanceNorm{eps: c.node.AttrFloat("epsilon", 1e-5), groups: g, perGroup: c.opset < 21}, nil
}

// layerNorm normalises over the dimensions from axis on.
type layerNorm struct {
	axis int64
	eps  float32
}

func (k *layerNorm) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if err := checkF32(x, in[1], arg(in, 2)); err != nil {
		return err
	}
	ax, err := normAxis(k.axis, len(x.Shape))
	if err != nil {
		return err
	}
	norm := x.Shape[ax:]
	for _, t := range []*graph.Tensor{in[1], arg(in, 2)} {
		if t == nil {
			continue
		}
		var sh dims
		r, err := broadcastShapes(&sh, norm, t.Shape)
		if err != nil || !sameShape(sh[:r], norm) {
			return fmt.Errorf("scale or bias %v does not broadcast to %v", t.Shape, norm)
		}
	}
	setShape(out[0], graph.Float32, x.Shape)
	var st dims
	copy(st[:], x.Shape)
	for i := ax; i < len(x.Shape); i++ {
		st[i] = 1
	}
	for _, o := range out[1:] {
		if o != nil {
			setShape(o, graph.Float32, st[:len(x.Shape)])
		}
	}
	return nil
}

type layerNormState struct{ scale, bias []float32 }

func (*layerNorm) newState() any { return new(layerNormState) }

func (k *layerNorm) run(x *exec, in, out []*graph.Tensor) error {
	t := in[0]
	ax, _ := normAxis(k.axis, len(t.Shape))
	norm := t.Shape[ax:]
	inner := int(prod(norm))
	st := x.state.(*layerNormState)
	st.scale = growSlice(st.scale, inner)
	broadcastCopy(st.scale, norm, in[1].F32, in[1].Shape)
	var bias []float32
	if b := arg(in, 2); b != nil {
		st.bias = growSlice(st.bias, inner)
		broadcastCopy(st.bias, norm, b.F32, b.Shape)
		bias = st.bias
	}
	y := out[0].F32
	for r := 0; r*inner < len(t.F32) && inner > 0; r++ {
		src := t.F32[r*inner : (r+1)*inner]
		dst := y[r*inner : (r+1)*inner]
		mean, v := meanVar(src)
		inv := 1 / math.Sqrt(v+float64(k.eps))
		for j, v := range src {
			o := float32((float64(v)-mean)*inv) * st.scale[j]
			if bias != nil {
				o += bias[j]
			}
			dst[j] = o
		}
		if len(out) > 1 && out[1] != nil {
			out[1].F32[r] = float32(mean)
		}
		if len(out) > 2 && out[2] != nil {
			out[2].F32[r] = float32(inv)
		}
	}
	return nil
}

// batchNorm is BatchNormalization in inference mode.
type batchNorm struct{ eps float32 }

func compileBatchNorm(c *compileCtx) (kernel, error) {
	if c.node.AttrInt("training_mode", 0) != 0 {
		return nil, unsupported("BatchNormalization in training mode")
	}
	if len(c.node.Outputs) > 1 {
		for _, o := range c.node.Outputs[1:] {
			if o != "" {
				return nil, unsupported("BatchNormalization with running statistics outputs")
			}
		}
	}
	return &batchNorm{eps: c.node.AttrFloat("epsilon", 1e-5)}, nil
}

func (k *batchNorm) infer(in, out []*graph.Tensor) error {
	if len(in) != 5 {
		return fmt.Errorf("expected 5 inputs")
	}
	if err := checkF32(in...); err != nil {
		return err
	}
	x := in[0]
	if len(x.Shape) < 2 {
		return fmt.Errorf("input %v has no channel dimension", x.Shape)
	}
	for _, t := range in[1:] {
		if prod(t.Shape) != x.Shape[1] {
			return fmt.Errorf("parameter of shape %v for %d channels", t.Shape, x.Shape[1])
		}
	}
	setShape(out[0], graph.Float32, x.Shape)
	return nil
}

func (k *batchNorm) run(_ *exec, in, out []*graph.Tensor) error {
	x, s, b, mean, v := in[0], in[1].F32, in[2].F32, in[3].F32, in[4].F32
	n, c := int(x.Shape[0]), int(x.Shape[1])
	plane := int(prod(x.Shape[2:]))
	y := out[0].F32
	for ch := 0; ch < c; ch++ {
		scale := s[ch] / float32(math.Sqrt(float64(v[ch])+float64(k.eps)))
		shift := b[ch] - mean[ch]*scale
		for i := 0; i < n; i++ {
			o := (i*c + ch) * plane
			src, dst := x.F32[o:o+plane], y[o:o+plane]
			for j, v := range src {
				dst[j] = v*scale + shift
			}
		}
	}
	return nil
}

// softmax is Softmax and LogSoftmax. Before opset 13 the input is viewed as
// a matrix split at axis; from 13 it runs along one axis.
type softmax struct {
	axis    int64
	log     bool
	flatten bool
}

func compileSoftmax(log bool) opFunc {
	return func(c *compileCtx) (kernel, error) {
		if c.opset < 13 {
			return &softmax{axis: c.node.AttrInt("axis", 1), log: log, flatten: true}, nil
		}
		return &softmax{axis: c.node.AttrInt("axis", -1), log: log}, nil
	}
}

func (k *softmax) infer(in, out []*graph.Tensor) error {
	if err := checkF32(in[0]); err != nil {
		return err
	}
	if len(in[0].Shape) == 0 {
		return fmt.Errorf("input is a scalar")
	}
	if _, err := normAxis(k.axis, len(in[0].Shape)); err != nil {
		return err
	}
	setShape(out[0], graph.Float32, in[0].Shape)
	return nil
}

func (k *softmax) run(x *exec, in, out []*graph.Tensor) error {
	sh := in[0].Shape
	ax, _ := normAxis(k.axis, len(sh))
	outer, n, inner := int(prod(sh[:ax])), int(sh[ax]), int(prod(sh[ax+1:]))
	if k.flatten {
		n, inner = int(prod(sh[ax:])), 1
	}
	t := x.state.(*softmaxTask)
	*t = softmaxTask{k: k, x: in[0].F32, y: out[0].F32, n: n, inner: inner}
	rows := outer * inner
	if x.pool == nil {
		t.runRange(0, rows)
		return nil
	}
	// Rows are independent: any split gives the same bits.
	x.pool.parallel(rows, max(1, elementsPerTask/max(n, 1)), t)
	return nil
}

func (*softmax) newState() any { return new(softmaxTask) }

// softmaxRow is one contiguous row's softmax. The sum of the exponentials
// is kept in float64 partial sums (sumF64: sixteen with AVX2, four
// without), added at the end, so the additions do not wait on each other.
func softmaxRow(y, x []float32) {
	m := rowMax(x)
	y = y[:len(x)]
	expSubInto(y, x, m)
	inv := float32(1 / sumF64(y))
	mulScalarF32(y, y, inv)
}

// rowMax is the largest element of x, NaN when one is, −Inf when x is empty.
func rowMax(x []float32) float32 {
	m := float32(math.Inf(-1))
	n := 0
	if haveAVX2 && len(x) >= 32 {
		n = len(x) &^ 31
		var nan bool
		if m, nan = maxNaNAVX2(x[:n]); nan {
			return float32(math.NaN())
		}
	}
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}

// sumF64 is the sum of x in float64, in an order fixed by its length: with
// AVX2, sixteen partial sums over whole blocks of 16 and the rest added
// after; without, four partial sums (element j in j mod 4).
func sumF64(x []float32) float64 {
	if haveAVX2 {
		n := len(x) &^ 15
		var s float64
		if n > 0 {
			s = sum16AVX2(x[:n])
		}
		for _, v := range x[n:] {
			s += float64(v)
		}
		return s
	}
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		s0, s1, s2, s3 = s0+float64(x[j]), s1+float64(x[j+1]), s2+float64(x[j+2]), s3+float64(x[j+3])
	}
	for ; j < len(x); j++ {
		s0 += float64(x[j])
	}
	return (s0 + s1) + (s2 + s3)
}

// expSubInto sets d[i] = e^(s[i] − m). With AVX2 every element goes through
// the vector kernel, the last partial vector through a padded copy, so an
// element's bits do not depend on its place in the row.
func expSubInto(d, s []float32, m float32) {
	s = s[:len(d)]
	if !haveAVX2 {
		for i, v := range s {
			d[i] = expf(v - m)
		}
		return
	}
	w := 8
	if haveAVX512 {
		w = 16
	}
	n := len(d) &^ (w - 1)
	if n > 0 {
		expSubVec(d[:n], s[:n], m)
	}
	if n < len(d) {
		var buf [16]float32
		k := copy(buf[:], s[n:])
		expSubVec(buf[:w], buf[:w], m)
		copy(d[n:], buf[:k])
	}
}

func expSubVec(d, s []float32, m float32) {
	if haveAVX512 {
		expSubAVX512(d, s, m)
	} else {
		expSubAVX2(d, s, m)
	}
}

// softmaxTask normalises rows lo…hi−1, row r being outer index r / inner
// and inner index r % inner, its n values inner apart.
type softmaxTask struct {
	k        *softmax
	x, y     []float32
	n, inner int
}

func (t *softmaxTask) runRange(lo, hi int) {
	x, y, n, inner := t.x, t.y, t.n, t.inner
	if inner == 1 && !t.k.log {
		for r := lo; r < hi; r++ {
			softmaxRow(y[r*n:(r+1)*n], x[r*n:(r+1)*n])
		}
		return
	}
	for r := lo; r < hi; r++ {
		o, i := r/inner, r%inner
		base := o*n*inner + i
		m := float32(math.Inf(-1))
		for j := 0; j < n; j++ {
			m = max(m, x[base+j*inner])
		}
		var s float64
		for j := 0; j < n; j++ {
			e := expf(x[base+j*inner] - m)
			if !t.k.log {
				y[base+j*inner] = e
			}
			s += float64(e)
		}
		if t.k.log {
			ls := float32(math.Log(s))
			for j := 0; j < n; j++ {
				y[base+j*inner] = x[base+j*inner] - m - ls
			}
			continue
		}
		inv := float32(1 / s)
		for j := 0; j < n; j++ {
			y[base+j*inner] *= inv
		}
	}
}

func init() {
	register("InstanceNormalization", func(c *compileCtx) (kernel, error) {
		return &instanceNorm{eps: c.node.AttrFloat("epsilon", 1e-5)}, nil
	})
	register("GroupNormalization", compileGroupNorm)
	register("LayerNormalization", func(c *compileCtx) (kernel, error) {
		return &layerNorm{axis: c.node.AttrInt("axis", -1), eps: c.node.AttrFloat("epsilon", 1e-5)}, nil
	})
	register("BatchNormalization", compileBatchNorm)
	register("Softmax", compileSoftmax(false))
	register("LogSoftmax", compileSoftmax(true))
}
