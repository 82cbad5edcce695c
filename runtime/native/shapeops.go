package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// copyData copies all elements of s into d (same dtype and size).
func copyData(d, s *graph.Tensor) {
	switch s.DType {
	case graph.Float32:
		copy(d.F32, s.F32)
	case graph.Int64:
		copy(d.I64, s.I64)
	default:
		copy(d.B, s.B)
	}
}

// reshapeLike ops keep the data and change the shape; newShape computes the
// shape. They copy, unless the plan gave the output its input's buffer
// (assignBuffers, where the input dies at the reshape).
type reshapeLike struct {
	newShape func(in []*graph.Tensor, out *dims) (int, error)
}

func (k *reshapeLike) infer(in, out []*graph.Tensor) error {
	if !in[0].DType.Computable() {
		return fmt.Errorf("element type %s is not supported", in[0].DType)
	}
	// The shape is computed in the output's own shape slice: a dims on the
	// stack would escape through the newShape call and cost an
	// allocation on every run.
	o := out[0]
	if cap(o.Shape) < maxRank {
		o.Shape = make([]int64, maxRank)
	}
	sh := (*dims)(o.Shape[:maxRank])
	r, err := k.newShape(in, sh)
	if err != nil {
		return err
	}
	if prod(sh[:r]) != prod(in[0].Shape) {
		return fmt.Errorf("cannot reshape %v to %v", in[0].Shape, append([]int64(nil), sh[:r]...))
	}
	o.DType, o.Shape = in[0].DType, o.Shape[:r]
	return nil
}

func (k *reshapeLike) run(_ *exec, in, out []*graph.Tensor) error {
	if !sameData(out[0], in[0]) {
		copyData(out[0], in[0])
	}
	return nil
}

// sameData reports whether d and s start at the same memory (a reshape
// given its input's buffer by the plan).
func sameData(d, s *graph.Tensor) bool {
	switch {
	case len(d.F32) > 0 && len(s.F32) > 0:
		return &d.F32[0] == &s.F32[0]
	case len(d.I64) > 0 && len(s.I64) > 0:
		return &d.I64[0] == &s.I64[0]
	case len(d.B) > 0 && len(s.B) > 0:
		return &d.B[0] == &s.B[0]
	}
	return false
}

func compileReshape(c *compileCtx) (kernel, error) {
	allowZero := c.node.AttrInt("allowzero", 0) != 0
	return &reshapeLike{newShape: func(in []*graph.Tensor, out *dims) (int, error) {
		s := in[1]
		if s.DType != graph.Int64 || len(s.Shape) != 1 {
			return 0, fmt.Errorf("shape must be a 1-D int64 tensor, got %s %v", s.DType, s.Shape)
		}
		r := len(s.I64)
		if err := checkRank(r); err != nil {
			return 0, err
		}
		infer := -1
		known := int64(1)
		for i, v := range s.I64 {
			switch {
			case v == -1:
				if infer >= 0 {
					return 0, fmt.Errorf("shape %v has two -1 entries", append([]int64(nil), s.I64...))
				}
				infer = i
				continue
			case v == 0 && !allowZero:
				if i >= len(in[0].Shape) {
					return 0, fmt.Errorf("shape %v copies dimension %d of a rank-%d input", append([]int64(nil), s.I64...), i, len(in[0].Shape))
				}
				v = in[0].Shape[i]
			case v < 0:
				return 0, fmt.Errorf("invalid dimension %d in shape", v)
			}
			out[i] = v
			known *= v
		}
		if infer >= 0 {
			total := prod(in[0].Shape)
			if known == 0 || total%known != 0 {
				return 0, fmt.Errorf("cannot reshape %v to %v", in[0].Shape, append([]int64(nil), s.I64...))
			}
			out[infer] = total / known
		}
		return r, nil
	}}, nil
}

func compileFlatten(c *compileCtx) (kernel, error) {
	axis := c.node.AttrInt("axis", 1)
	return &reshapeLike{newShape: func(in []*graph.Tensor, out *dims) (int, error) {
		sh := in[0].Shape
		a := axis
		if a < 0 {
			a += int64(len(sh))
		}
		if a < 0 || a > int64(len(sh)) {
			return 0, fmt.Errorf("axis %d out of range for rank %d", axis, len(sh))
		}
		out[0], out[1] = prod(sh[:a]), prod(sh[a:])
		return 2, nil
	}}, nil
}

func compileSqueeze(c *compileCtx) (kernel, error) {
	axes := c.moved("axes", 1, 13)
	return &reshapeLike{newShape: func(in []*graph.Tensor, out *dims) (int, error) {
		sh := in[0].Shape
		ax, err := axes.get(in)
		if err != nil {
			return 0, err
		}
		mask, err := axisMask(ax, len(sh))
		if err != nil {
			return 0, err
		}
		r := 0
		for i, d := range sh {
			if len(ax) == 0 && d == 1 {
				continue
			}
			if mask[i] {
				if d != 1 {
					return 0, fmt.Errorf("cannot squeeze dimension %d of size %d", i, d)
				}
				continue
			}
			out[r] = d
			r++
		}
		return r, nil
	}}, nil
}

func compileUnsqueeze(c *compileCtx) (kernel, error) {
	axes := c.moved("axes", 1, 13)
	if !axes.given {
		return nil, fmt.Errorf("axes are required")
	}
	return &reshapeLike{newShape: func(in []*graph.Tensor, out *dims) (int, error) {
		sh := in[0].Shape
		ax, err := axes.get(in)
		if err != nil {
			return 0, err
		}
		r := len(sh) + len(ax)
		if err := checkRank(r); err != nil {
			return 0, err
		}
		mask, err := axisMask(ax, r)
		if err != nil {
			return 0, err
		}
		j := 0
		for i := 0; i < r; i++ {
			if mask[i] {
				out[i] = 1
			} else {
				out[i] = sh[j]
				j++
			}
		}
		return r, nil
	}}, nil
}

// concatKernel joins inputs along an axis.
type concatKernel struct{ axis int64 }

func (k *concatKernel) infer(in, out []*graph.Tensor) error {
	var ref *graph.Tensor
	for _, t := range in {
		if t != nil {
			ref = t
			break
		}
	}
	if ref == nil {
		return fmt.Errorf("no inputs")
	}
	r := len(ref.Shape)
	ax, err := normAxis(k.axis, r)
	if err != nil {
		return err
	}
	var sh dims
	copy(sh[:], ref.Shape)
	sh[ax] = 0
	for _, t := range in {
		if t == nil {
			continue
		}
		if t.DType != ref.DType || len(t.Shape) != r {
			return fmt.Errorf("inputs %s %v and %s %v do not concatenate", ref.DType, ref.Shape, t.DType, t.Shape)
		}
		for i, d := range t.Shape {
			if i != ax && d != ref.Shape[i] {
				return fmt.Errorf("inputs of shapes %v and %v differ outside axis %d", ref.Shape, t.Shape, ax)
			}
		}
		sh[ax] += t.Shape[ax]
	}
	setShape(out[0], ref.DType, sh[:r])
	return nil
}

func (k *concatKernel) run(_ *exec, in, out []*graph.Tensor) error {
	o := out[0]
	ax, _ := normAxis(k.axis, len(o.Shape))
	switch o.DType {
	case graph.Float32:
		concat(data[float32](o), o.Shape, ax, in)
	case graph.Int64:
		concat(data[int64](o), o.Shape, ax, in)
	default:
		concat(data[bool](o), o.Shape, ax, in)
	}
	return nil
}

func concat[T elem](d []T, shape []int64, ax int, in []*graph.Tensor) {
	outer := int(prod(shape[:ax]))
	inner := int(prod(shape[ax+1:]))
	row := int(shape[ax]) * inner
	pos := 0
	for _, t := range in {
		if t == nil {
			continue
		}
		src := data[T](t)
		n := int(t.Shape[ax]) * inner
		for o := 0; o < outer; o++ {
			copy(d[o*row+pos:o*row+pos+n], src[o*n:o*n+n])
		}
		pos += n
	}
}

// splitKernel cuts its input into pieces along an axis.
type splitKernel struct {
	axis  int64
	split intsArg
	num   int64 // num_outputs (opset 18)
}

func compileSplit(c *compileCtx) (kernel, error) {
	return &splitKernel{axis: c.node.AttrInt("axis", 0), split: c.moved("split", 1, 13), num: c.node.AttrInt("num_outputs", 0)}, nil
}

// sizes writes the size of each output along the axis.
func (k *splitKernel) sizes(in []*graph.Tensor, nout int, ax int, sizes *[64]int64) error {
	if nout > len(sizes) {
		return fmt.Errorf("more than %d outputs", len(sizes))
	}
	dim := in[0].Shape[ax]
	split, err := k.split.get(in)
	if err != nil {
		return err
	}
	if len(split) > 0 {
		if len(split) != nout {
			return fmt.Errorf("%d split sizes for %d outputs", len(split), nout)
		}
		sum := int64(0)
		for i, s := range split {
			if s < 0 {
				return fmt.Errorf("negative split size %d", s)
			}
			sizes[i] = s
			sum += s
		}
		if sum != dim {
			return fmt.Errorf("split sizes sum to %d, dimension is %d", sum, dim)
		}
		return nil
	}
	each := (dim + int64(nout) - 1) / int64(nout)
	if k.num == 0 && dim%int64(nout) != 0 {
		return fmt.Errorf("dimension %d does not split evenly into %d outputs", dim, nout)
	}
	left := dim
	for i := 0; i < nout; i++ {
		sizes[i] = min(each, left)
		left -= sizes[i]
	}
	return nil
}

func (k *splitKernel) infer(in, out []*graph.Tensor) error {
	t := in[0]
	ax, err := normAxis(k.axis, len(t.Shape))
	if err != nil {
		return err
	}
	var sizes [64]int64
	if err := k.sizes(in, len(out), ax, &sizes); err != nil {
		return err
	}
	var sh dims
	copy(sh[:], t.Shape)
	for i, o := range out {
		if o != nil {
			sh[ax] = sizes[i]
			setShape(o, t.DType, sh[:len(t.Shape)])
		}
	}
	return nil
}

func (k *splitKernel) run(_ *exec, in, out []*graph.Tensor) error {
	t := in[0]
	ax, _ := normAxis(k.axis, len(t.Shape))
	var sizes [64]int64
	if err := k.sizes(in, len(out), ax, &sizes); err != nil {
		return err
	}
	switch t.DType {
	case graph.Float32:
		split(data[float32](t), t.Shape, ax, sizes[:len(out)], out)
	case graph.Int64:
		split(data[int64](t), t.Shape, ax, sizes[:len(out)], out)
	default:
		split(data[bool](t), t.Shape, ax, sizes[:len(out)], out)
	}
	return nil
}

func split[T elem](s []T, shape []int64, ax int, sizes []int64, out []*graph.Tensor) {
	outer := int(prod(shape[:ax]))
	inner := int(prod(shape[ax+1:]))
	row := int(shape[ax]) * inner
	pos := 0
	for i, o := range out {
		n := int(sizes[i]) * inner
		if o != nil {
			d := data[T](o)
			for q := 0; q < outer; q++ {
				copy(d[q*n:q*n+n], s[q*row+pos:q*row+pos+n])
			}
		}
		pos += n
	}
}

// sliceKernel is Slice with starts/ends/axes/steps as inputs (opset ≥ 10) or
// attributes (before).
type sliceKernel struct {
	starts, ends, axes, steps intsArg
}

func compileSlice(c *compileCtx) (kernel, error) {
	k := &sliceKernel{
		starts: c.moved("starts", 1, 10), ends: c.moved("ends", 2, 10),
		axes: c.moved("axes", 3, 10), steps: c.moved("steps", 4, 10),
	}
	if !k.starts.given || !k.ends.given {
		return nil, fmt.Errorf("starts and ends are required")
	}
	return k, nil
}

// plan works out, per dimension, the first index, step and output size.
func (k *sliceKernel) plan(in []*graph.Tensor, start, step, size *dims) error {
	sh := in[0].Shape
	r := len(sh)
	for i := 0; i < r; i++ {
		start[i], step[i], size[i] = 0, 1, sh[i]
	}
	starts, err := k.starts.get(in)
	if err != nil {
		return err
	}
	ends, err := k.ends.get(in)
	if err != nil {
		return err
	}
	axes, err := k.axes.get(in)
	if err != nil {
		return err
	}
	steps, err := k.steps.get(in)
	if err != nil {
		return err
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	var seen [maxRank]bool
	for i := range starts {
		ax := i
		if axes != nil {
			if ax, err = normAxis(axes[i], r); err != nil {
				return err
			}
		}
		if seen[ax] {
			return fmt.Errorf("axis %d sliced twice", ax)
		}
		seen[ax] = true
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return fmt.Errorf("step is 0")
		}
		dim := sh[ax]
		b, e := starts[i], ends[i]
		if b < 0 {
			b += dim
		}
		if e < 0 {
			e += dim
		}
		if st > 0 {
			b, e = clamp64(b, 0, dim), clamp64(e, 0, dim)
		} else {
			b, e = clamp64(b, 0, dim-1), clamp64(e, -1, dim-1)
		}
		n := int64(0)
		if st > 0 && e > b {
			n = (e - b + st - 1) / st
		} else if st < 0 && b > e {
			n = (b - e - st - 1) / -st
		}
		start[ax], step[ax], size[ax] = b, st, n
	}
	return nil
}

func clamp64(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

func (k *sliceKernel) infer(in, out []*graph.Tensor) error {
	if len(in[0].Shape) > maxRank {
		return checkRank(len(in[0].Shape))
	}
	var start, step, size dims
	if err := k.plan(in, &start, &step, &size); err != nil {
		return err
	}
	setShape(out[0], in[0].DType, size[:len(in[0].Shape)])
	return nil
}

func (*sliceKernel) newState() any     { return new(gatherTask) }
func (*transposeKernel) newState() any { return new(gatherTask) }

func (k *sliceKernel) run(x *exec, in, out []*graph.Tensor) error {
	var start, step, size dims
	if err := k.plan(in, &start, &step, &size); err != nil {
		return err
	}
	t := in[0]
	var stride, base dims
	s := int64(1)
	off := int64(0)
	for i := len(t.Shape) - 1; i >= 0; i-- {
		stride[i] = s * step[i]
		off += start[i] * s
		s *= t.Shape[i]
	}
	_ = base
	switch t.DType {
	case graph.Float32:
		gatherF32(x, data[float32](out[0]), data[float32](t), off, size[:len(t.Shape)], stride[:len(t.Shape)])
	case graph.Int64:
		gatherStrided(data[int64](out[0]), data[int64](t), off, size[:len(t.Shape)], stride[:len(t.Shape)])
	default:
		gatherStrided(data[bool](out[0]), data[bool](t), off, size[:len(t.Shape)], stride[:len(t.Shape)])
	}
	return nil
}

// gatherStrided writes d[i…] = s[off + Σ idx_j·stride_j] for every index of
// the output shape size, in row-major order.
func gatherStrided[T elem](d, s []T, off int64, size, stride []int64) {
	r := len(size)
	n := prod(size)
	if n == 0 {
		return
	}
	if r == 0 {
		d[0] = s[off]
		return
	}
	inner := int(size[r-1])
	is := stride[r-1]
	var idx dims
	pos := off
	for o := 0; o < int(n); o += inner {
		row := d[o : o+inner]
		if is == 1 {
			copy(row, s[pos:pos+int64(inner)])
		} else {
			p := pos
			for i := range row {
				row[i] = s[p]
				p += is
			}
		}
		for j := r - 2; j >= 0; j-- {
			idx[j]++
			pos += stride[j]
			if idx[j] < size[j] {
				break
			}
			pos -= stride[j] * size[j]
			idx[j] = 0
		}
	}
}

// gatherTask is gatherStrided of float32 split over the session's workers
// by rows of the output (the copies of Slice and Transpose: the autodiff's
// weight gradients crop and transpose whole activations).
type gatherTask struct {
	d, s         []float32
	off          int64
	size, stride dims
	r, inner     int
}

// gatherF32 is gatherStrided for float32, on the workers when large.
func gatherF32(x *exec, d, s []float32, off int64, size, stride []int64) {
	n := prod(size)
	t, ok := x.state.(*gatherTask)
	if !ok || len(size) < 2 || n == 0 {
		gatherStrided(d, s, off, size, stride)
		return
	}
	*t = gatherTask{d: d, s: s, off: off, r: len(size), inner: int(size[len(size)-1])}
	copy(t.size[:], size)
	copy(t.stride[:], stride)
	if t.inner == 0 {
		return
	}
	rows := int(n) / t.inner
	if x.pool == nil || n < 2*elementsPerTask {
		t.runRange(0, rows)
		return
	}
	x.pool.parallel(rows, max(1, elementsPerTask/t.inner), t)
}

// runRange copies output rows [lo, hi): the source position of row lo from
// its index, then stepped like gatherStrided.
func (t *gatherTask) runRange(lo, hi int) {
	r, inner := t.r, t.inner
	var idx dims
	pos := t.off
	q := int64(lo)
	for j := r - 2; j >= 0; j-- {
		idx[j] = q % t.size[j]
		q /= t.size[j]
		pos += idx[j] * t.stride[j]
	}
	is := t.stride[r-1]
	if is != 1 && t.stride[r-2] == 1 {
		t.transposeRows(lo, hi, idx, pos)
		return
	}
	for o := lo * inner; o < hi*inner; o += inner {
		row := t.d[o : o+inner]
		if is == 1 {
			copy(row, t.s[pos:pos+int64(inner)])
		} else {
			p := pos
			for i := range row {
				row[i] = t.s[p]
				p += is
			}
		}
		for j := r - 2; j >= 0; j-- {
			idx[j]++
			pos += t.stride[j]
			if idx[j] < t.size[j] {
				break
			}
			pos -= t.stride[j] * t.size[j]
			idx[j] = 0
		}
	}
}

// transposeBlock is the side of the tiles transposeRows copies.
const transposeBlock = 16

// transposeRows is runRange for a gather whose last two output axes are a
// transpose: the output's rows read their elements is apart, and
// neighbouring rows read neighbouring elements (stride 1 along axis r−2).
// Reading row by row touches a new cache line for every element; copying
// tiles of up to 16 rows × 16 columns reads each line once per tile. idx
// and pos are row lo's odometer and source position.
func (t *gatherTask) transposeRows(lo, hi int, idx dims, pos int64) {
	r, inner := t.r, t.inner
	is := t.stride[r-1]
	for q := lo; q < hi; {
		g := int(min(int64(transposeBlock), t.size[r-2]-idx[r-2], int64(hi-q))) // rows in this tile
		o := q * inner
		for j0 := 0; j0 < inner; j0 += transposeBlock {
			j1 := min(j0+transposeBlock, inner)
			for j := j0; j < j1; j++ {
				src := t.s[pos+int64(j)*is:]
				src = src[:g]
				for i, v := range src {
					t.d[o+i*inner+j] = v
				}
			}
		}
		for k := 0; k < g; k++ { // the odometer, g rows on
			for j := r - 2; j >= 0; j-- {
				idx[j]++
				pos += t.stride[j]
				if idx[j] < t.size[j] {
					break
				}
				pos -= t.stride[j] * t.size[j]
				idx[j] = 0
			}
		}
		q += g
	}
}

// transposeKernel permutes dimensions.
type transposeKernel struct{ perm []int64 }

func compileTranspose(c *compileCtx) (kernel, error) {
	return &transposeKernel{perm: c.node.AttrInts("perm", nil)}, nil
}

func (k *transposeKernel) perms(r int, p *[maxRank]int) error {
	if err := checkRank(r); err != nil {
		return err
	}
	if k.perm == nil {
		for i := 0; i < r; i++ {
			p[i] = r - 1 - i
		}
		return nil
	}
	if len(k.perm) != r {
		return fmt.Errorf("perm %v for rank %d", k.perm, r)
	}
	var seen [maxRank]bool
	for i, v := range k.perm {
		a, err := normAxis(v, r)
		if err != nil || seen[a] {
			return fmt.Errorf("perm %v is not a permutation", k.perm)
		}
		seen[a] = true
		p[i] = a
	}
	return nil
}

func (k *transposeKernel) infer(in, out []*graph.Tensor) error {
	var p [maxRank]int
	sh := in[0].Shape
	if err := k.perms(len(sh), &p); err != nil {
		return err
	}
	var o dims
	for i := range sh {
		o[i] = sh[p[i]]
	}
	setShape(out[0], in[0].DType, o[:len(sh)])
	return nil
}

func (k *transposeKernel) run(x *exec, in, out []*graph.Tensor) error {
	t := in[0]
	r := len(t.Shape)
	var p [maxRank]int
	_ = k.perms(r, &p)
	var inStride, stride dims
	s := int64(1)
	for i := r - 1; i >= 0; i-- {
		inStride[i] = s
		s *= t.Shape[i]
	}
	for i := 0; i < r; i++ {
		stride[i] = inStride[p[i]]
	}
	sz := out[0].Shape
	switch t.DType {
	case graph.Float32:
		gatherF32(x, data[float32](out[0]), data[float32](t), 0, sz, stride[:r])
	case graph.Int64:
		gatherStrided(data[int64](out[0]), data[int64](t), 0, sz, stride[:r])
	default:
		gatherStrided(data[bool](out[0]), data[bool](t), 0, sz, stride[:r])
	}
	return nil
}

// expandKernel broadcasts its input to a shape given as a tensor.
type expandKernel struct{}

func (expandKernel) infer(in, out []*graph.Tensor) error {
	s := in[1]
	if s.DType != graph.Int64 || len(s.Shape) != 1 {
		return fmt.Errorf("shape must be a 1-D int64 tensor, got %s %v", s.DType, s.Shape)
	}
	var sh dims
	r, err := broadcastShapes(&sh, in[0].Shape, s.I64)
	if err != nil {
		return err
	}
	setShape(out[0], in[0].DType, sh[:r])
	return nil
}

func (expandKernel) run(_ *exec, in, out []*graph.Tensor) error {
	o, t := out[0], in[0]
	switch t.DType {
	case graph.Float32:
		broadcastCopy(o.F32, o.Shape, t.F32, t.Shape)
	case graph.Int64:
		broadcastCopy(o.I64, o.Shape, t.I64, t.Shape)
	default:
		broadcastCopy(o.B, o.Shape, t.B, t.Shape)
	}
	return nil
}

// tileKernel repeats its input along each dimension.
type tileKernel struct{}

func (tileKernel) infer(in, out []*graph.Tensor) error {
	t, rep := in[0], in[1]
	if rep.DType != graph.Int64 || len(rep.I64) != len(t.Shape) {
		return fmt.Errorf("repeats must be %d int64 values, got %s %v", len(t.Shape), rep.DType, rep.Shape)
	}
	var sh dims
	for i, d := range t.Shape {
		if rep.I64[i] < 0 {
			return fmt.Errorf("negative repeat %d", rep.I64[i])
		}
		sh[i] = d * rep.I64[i]
	}
	setShape(out[0], t.DType, sh[:len(t.Shape)])
	return nil
}

func (tileKernel) run(_ *exec, in, out []*graph.Tensor) error {
	switch in[0].DType {
	case graph.Float32:
		tile(data[float32](out[0]), out[0].Shape, data[float32](in[0]), in[0].Shape)
	case graph.Int64:
		tile(data[int64](out[0]), out[0].Shape, data[int64](in[0]), in[0].Shape)
	default:
		tile(data[bool](out[0]), out[0].Shape, data[bool](in[0]), in[0].Shape)
	}
	return nil
}

func tile[T elem](d []T, dShape []int64, s []T, sShape []int64) {
	r := len(dShape)
	if len(d) == 0 {
		return
	}
	var stride dims
	st := int64(1)
	for i := r - 1; i >= 0; i-- {
		stride[i] = st
		st *= sShape[i]
	}
	var idx dims
	for o := range d {
		off := int64(0)
		for j := 0; j < r; j++ {
			off += (idx[j] % sShape[j]) * stride[j]
		}
		d[o] = s[off]
		for j := r - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < dShape[j] {
				break
			}
			idx[j] = 0
		}
	}
}

// gatherKernel picks slices along an axis by index.
type gatherKernel struct{ axis int64 }

func (k *gatherKernel) infer(in, out []*graph.Tensor) error {
	t, ind := in[0], in[1]
	if ind.DType != graph.Int64 {
		return fmt.Errorf("indices are %s, not int64", ind.DType)
	}
	ax, err := normAxis(k.axis, len(t.Shape))
	if err != nil {
		return err
	}
	r := len(t.Shape) - 1 + len(ind.Shape)
	if err := checkRank(r); err != nil {
		return err
	}
	var sh dims
	n := copy(sh[:], t.Shape[:ax])
	n += copy(sh[n:], ind.Shape)
	copy(sh[n:], t.Shape[ax+1:])
	setShape(out[0], t.DType, sh[:r])
	return nil
}

func (k *gatherKernel) run(_ *exec, in, out []*graph.Tensor) error {
	t := in[0]
	ax, _ := normAxis(k.axis, len(t.Shape))
	switch t.DType {
	case graph.Float32:
		return gather(data[float32](out[0]), data[float32](t), t.Shape, ax, in[1].I64)
	case graph.Int64:
		return gather(data[int64](out[0]), data[int64](t), t.Shape, ax, in[1].I64)
	}
	return gather(data[bool](out[0]), data[bool](t), t.Shape, ax, in[1].I64)
}

func gather[T elem](d, s []T, shape []int64, ax int, ind []int64) error {
	outer := int(prod(shape[:ax]))
	inner := int(prod(shape[ax+1:]))
	dim := shape[ax]
	pos := 0
	for o := 0; o < outer; o++ {
		base := o * int(dim) * inner
		for _, j := range ind {
			if j < -dim || j >= dim {
				return fmt.Errorf("index %d out of range for dimension %d of size %d", j, ax, dim)
			}
			if j < 0 {
				j += dim
			}
			copy(d[pos:pos+inner], s[base+int(j)*inner:base+int(j)*inner+inner])
			pos += inner
		}
	}
	return nil
}

// shapeKernel outputs its input's shape, optionally a slice of it.
type shapeKernel struct{ start, end int64 }

func (k *shapeKernel) bounds(r int64) (int64, int64) {
	s, e := k.start, k.end
	if s < 0 {
		s += r
	}
	if e < 0 {
		e += r
	}
	s, e = clamp64(s, 0, r), clamp64(e, 0, r)
	return s, max(s, e)
}

func (k *shapeKernel) infer(in, out []*graph.Tensor) error {
	s, e := k.bounds(int64(len(in[0].Shape)))
	n := [1]int64{e - s}
	setShape(out[0], graph.Int64, n[:])
	return nil
}

func (k *shapeKernel) run(_ *exec, in, out []*graph.Tensor) error {
	s, e := k.bounds(int64(len(in[0].Shape)))
	copy(out[0].I64, in[0].Shape[s:e])
	return nil
}

type sizeKernel struct{}

func (sizeKernel) infer(in, out []*graph.Tensor) error {
	setShape(out[0], graph.Int64, nil)
	return nil
}

func (sizeKernel) run(_ *exec, in, out []*graph.Tensor) error {
	out[0].I64[0] = prod(in[0].Shape)
	return nil
}

// constKernel outputs a tensor fixed at compile time (Constant).
type constKernel struct{ t *graph.Tensor }

func compileConstant(c *compileCtx) (kernel, error) {
	t := graph.ConstantValue(c.node)
	if t == nil {
		return nil, unsupported("Constant without a dense float or int value")
	}
	if !t.DType.Computable() {
		return nil, unsupported("Constant of type %s", t.DType)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &constKernel{t}, nil
}

func (k *constKernel) infer(_, out []*graph.Tensor) error {
	setShape(out[0], k.t.DType, k.t.Shape)
	return nil
}

func (k *constKernel) run(_ *exec, _, out []*graph.Tensor) error {
	copyData(out[0], k.t)
	return nil
}

// constantOfShapeKernel fills a shape given as a tensor with one value.
type constantOfShapeKernel struct{ v *graph.Tensor }

func compileConstantOfShape(c *compileCtx) (kernel, error) {
	v := graph.ScalarFloat32(0)
	if a := c.node.Attr("value"); a != nil && a.T != nil {
		v = a.T
	}
	if !v.DType.Computable() || v.Len() != 1 || v.DataLen() != 1 {
		return nil, unsupported("ConstantOfShape value %s %v", v.DType, v.Shape)
	}
	return &constantOfShapeKernel{v}, nil
}

func (k *constantOfShapeKernel) infer(in, out []*graph.Tensor) error {
	s := in[0]
	if s.DType != graph.Int64 || len(s.Shape) != 1 {
		return fmt.Errorf("shape must be a 1-D int64 tensor, got %s %v", s.DType, s.Shape)
	}
	if err := checkRank(len(s.I64)); err != nil {
		return err
	}
	for _, d := range s.I64 {
		if d < 0 {
			return fmt.Errorf("negative dimension %d", d)
		}
	}
	setShape(out[0], k.v.DType, s.I64)
	return nil
}

func (k *constantOfShapeKernel) run(_ *exec, _, out []*graph.Tensor) error {
	o := out[0]
	switch o.DType {
	case graph.Float32:
		fill(o.F32, k.v.F32[0])
	case graph.Int64:
		fill(o.I64, k.v.I64[0])
	default:
		fill(o.B, k.v.B[0])
	}
	return nil
}

func fill[T any](d []T, v T) {
	for i := range d {
		d[i] = v
	}
}

// rangeKernel is Range(start, limit, delta) over float32 or int64 scalars.
type rangeKernel struct{}

func (rangeKernel) count(in []*graph.Tensor) (int64, error) {
	dt := in[0].DType
	for _, t := range in[:3] {
		if t.DType != dt || t.DataLen() != 1 {
			return 0, fmt.Errorf("start, limit and delta must be scalars of one type")
		}
	}
	switch dt {
	case graph.Float32:
		s, l, d := in[0].F32[0], in[1].F32[0], in[2].F32[0]
		if d == 0 {
			return 0, fmt.Errorf("delta is 0")
		}
		n := math.Ceil(float64((l - s) / d))
		if n != n || n > maxElements {
			return 0, fmt.Errorf("range has too many elements")
		}
		return max(int64(n), 0), nil
	case graph.Int64:
		s, l, d := in[0].I64[0], in[1].I64[0], in[2].I64[0]
		if d == 0 {
			return 0, fmt.Errorf("delta is 0")
		}
		n := int64(math.Ceil(float64(l-s) / float64(d)))
		return max(n, 0), nil
	}
	return 0, fmt.Errorf("element type %s is not supported", dt)
}

func (k rangeKernel) infer(in, out []*graph.Tensor) error {
	n, err := k.count(in)
	if err != nil {
		return err
	}
	sh := [1]int64{n}
	setShape(out[0], in[0].DType, sh[:])
	return nil
}

func (rangeKernel) run(_ *exec, in, out []*graph.Tensor) error {
	o := out[0]
	if o.DType == graph.Float32 {
		s, d := in[0].F32[0], in[2].F32[0]
		for i := range o.F32 {
			o.F32[i] = s + float32(i)*d
		}
		return nil
	}
	s, d := in[0].I64[0], in[2].I64[0]
	for i := range o.I64 {
		o.I64[i] = s + int64(i)*d
	}
	return nil
}

func init() {
	register("Reshape", compileReshape)
	register("Flatten", compileFlatten)
	register("Squeeze", compileSqueeze)
	register("Unsqueeze", compileUnsqueeze)
	register("Concat", func(c *compileCtx) (kernel, error) {
		if c.node.Attr("axis") == nil {
			return nil, fmt.Errorf("axis is required")
		}
		return &concatKernel{axis: c.node.AttrInt("axis", 0)}, nil
	})
	register("Split", compileSplit)
	register("Slice", compileSlice)
	register("Transpose", compileTranspose)
	register("Expand", func(*compileCtx) (kernel, error) { return expandKernel{}, nil })
	register("Tile", func(*compileCtx) (kernel, error) { return tileKernel{}, nil })
	register("Gather", func(c *compileCtx) (kernel, error) { return &gatherKernel{axis: c.node.AttrInt("axis", 0)}, nil })
	register("Shape", func(c *compileCtx) (kernel, error) {
		return &shapeKernel{start: c.node.AttrInt("start", 0), end: c.node.AttrInt("end", math.MaxInt64)}, nil
	})
	register("Size", func(*compileCtx) (kernel, error) { return sizeKernel{}, nil })
	register("Constant", compileConstant)
	register("ConstantOfShape", compileConstantOfShape)
	register("Range", func(*compileCtx) (kernel, error) { return rangeKernel{}, nil })
}
