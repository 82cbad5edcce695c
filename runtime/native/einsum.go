package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// einsumKernel is Einsum with ONNX's (numpy's) full equation language:
// explicit or implicit output, one ellipsis per term with broadcasting, and
// repeated labels (diagonals). It runs as a chain of matrix products: each
// operand first has its diagonals taken and its private labels summed, then
// the operands are folded left to right, every pair as a batched GEMM
// [batch, left, contracted] × [batch, contracted, right], and the result is
// laid out in the output's order. Layout copies are skipped where an operand
// already sits in the order a product wants (NIN "nchw,cd->ndhw" copies x
// once; attention "nchw,ncij->nhwij" copies only its left operand).
type einsumKernel struct{ eq *graph.EinsumEq }

const einMax = graph.EinsumLetters + maxRank // label ids: letters, then ellipsis dimensions

func compileEinsum(c *compileCtx) (kernel, error) {
	eq, err := graph.ParseEinsum(c.node.AttrString("equation", ""), len(c.node.Inputs))
	if err != nil {
		return nil, fmt.Errorf("Einsum: %w", err)
	}
	return &einsumKernel{eq: eq}, nil
}

// einPlan is the expanded equation for the inputs' ranks.
type einPlan struct {
	ops     [][]int // per operand: label of each axis
	out     []int
	outSize []int64
}

// einStep is one action of a compiled Einsum: a strided gather-sum (the
// layouts, diagonals and private sums) or a batched GEMM. Operands name
// their data: 0…n−1 the inputs, einBuf+b scratch buffer b, einOut the
// output.
type einStep struct {
	gemm      bool
	src, dst  int
	view      einView // gather: the source's labels, sizes and strides
	keep, sum []int
	size      [einMax]int64
	n         int64 // gather: elements written
	a, b      int   // gemm operands (c is dst)
	nb, m, kk int64
	nn        int64
	// nin: the product is op(b)·a[q] for each outer index q of a, op(b)
	// transposed when tA — a channel contraction read and written in place
	nin, tA bool
	// inPlace: a batched contraction read and written in place (see
	// batchedContraction): product q is op(A)·op(B) with A the input aIn
	// and B the input bIn, at q·aq and q·bq
	inPlace  bool
	tB       bool
	aIn, bIn int
	lda, ldb int
	aq, bq   int64
}

const (
	einBuf = 1000
	einOut = -1
)

type einsumState struct {
	key   []int64 // ranks and shapes the steps were compiled for
	steps []einStep
	g     gemmState
	bufs  [5][]float32
}

func (*einsumKernel) newState() any { return new(einsumState) }

// expand labels every operand's axes (graph.EinsumEq.Expand), checks the
// label sizes agree up to broadcasting, and returns the output's sizes.
func (k *einsumKernel) expand(in []*graph.Tensor, p *einPlan) error {
	ranks := make([]int, len(in))
	for i, x := range in {
		if x.DType != graph.Float32 {
			return fmt.Errorf("Einsum computes float32, operand %d is %s", i, x.DType)
		}
		ranks[i] = len(x.Shape)
	}
	ops, out, err := k.eq.Expand(ranks)
	if err != nil {
		return err
	}
	p.ops, p.out = ops, out
	var size [einMax]int64
	var seen [einMax]bool
	for i, labs := range p.ops {
		for j, l := range labs {
			d := in[i].Shape[j]
			switch {
			case !seen[l] || size[l] == 1:
				size[l] = d
			case d != size[l] && d != 1:
				return fmt.Errorf("Einsum label sizes disagree: %d and %d", size[l], d)
			}
			seen[l] = true
		}
	}
	p.outSize = p.outSize[:0]
	for _, l := range p.out {
		p.outSize = append(p.outSize, size[l])
	}
	return nil
}

// infer derives the output shape without allocating (it runs on every
// call): the same walk as graph.EinsumEq.Expand, into fixed arrays.
func (k *einsumKernel) infer(in, out []*graph.Tensor) error {
	ell := 0
	for i, t := range k.eq.Terms {
		if in[i].DType != graph.Float32 {
			return fmt.Errorf("Einsum computes float32, operand %d is %s", i, in[i].DType)
		}
		r := len(in[i].Shape)
		switch {
		case t.Ell < 0 && r != len(t.Labels):
			return fmt.Errorf("Einsum operand %d has rank %d, its term %d labels", i, r, len(t.Labels))
		case t.Ell >= 0 && r < len(t.Labels):
			return fmt.Errorf("Einsum operand %d has rank %d, fewer than its term's %d labels", i, r, len(t.Labels))
		case t.Ell >= 0:
			ell = max(ell, r-len(t.Labels))
		}
	}
	if ell > maxRank {
		return fmt.Errorf("Einsum ellipsis of rank %d", ell)
	}
	var size [einMax]int64
	var seen [einMax]bool
	for i, t := range k.eq.Terms {
		shape := in[i].Shape
		ne := len(shape) - len(t.Labels)
		pos := 0
		note := func(l int) error {
			d := shape[pos]
			pos++
			switch {
			case !seen[l] || size[l] == 1:
				size[l] = d
			case d != size[l] && d != 1:
				return fmt.Errorf("Einsum label sizes disagree: %d and %d", size[l], d)
			}
			seen[l] = true
			return nil
		}
		for j := 0; j <= len(t.Labels); j++ {
			if j == t.Ell {
				for e := 0; e < ne; e++ {
					if err := note(graph.EinsumLetters + ell - ne + e); err != nil {
						return err
					}
				}
			}
			if j < len(t.Labels) {
				if err := note(t.Labels[j]); err != nil {
					return err
				}
			}
		}
	}
	var sh dims
	r := 0
	for j := 0; j <= len(k.eq.Out.Labels); j++ {
		if j == k.eq.Out.Ell {
			for e := 0; e < ell; e++ {
				sh[r] = size[graph.EinsumLetters+e]
				r++
			}
		}
		if j < len(k.eq.Out.Labels) {
			if r >= maxRank {
				return fmt.Errorf("Einsum output of rank above %d", maxRank)
			}
			sh[r] = size[k.eq.Out.Labels[j]]
			r++
		}
	}
	setShape(out[0], graph.Float32, sh[:r])
	return nil
}

// einView is a tensor seen through labels: sizes and strides per label (a
// repeated label's strides add up: its diagonal).
type einView struct {
	data   []float32
	labels []int
	size   [einMax]int64
	stride [einMax]int64
}

func viewOf(x []float32, shape []int64, labs []int) einView {
	v := einView{data: x}
	st := int64(1)
	for j := len(shape) - 1; j >= 0; j-- {
		l := labs[j]
		if !containsLabel(v.labels, l) {
			v.labels = append(v.labels, l)
			v.size[l] = shape[j]
		}
		if shape[j] != 1 {
			v.stride[l] += st
		}
		st *= shape[j]
	}
	// first-occurrence order
	for i, j := 0, len(v.labels)-1; i < j; i, j = i+1, j-1 {
		v.labels[i], v.labels[j] = v.labels[j], v.labels[i]
	}
	return v
}

func containsLabel(ls []int, l int) bool {
	for _, m := range ls {
		if m == l {
			return true
		}
	}
	return false
}

// gather writes dst[keep…] = Σ_sum src over the labels in sum, with sizes
// from size (a label whose view size is 1 broadcasts: stride 0).
func (v *einView) gather(dst []float32, keep, sum []int, size *[einMax]int64) {
	var ks, kst, ss, sst [einMax]int64
	for i, l := range keep {
		ks[i], kst[i] = size[l], v.stride[l]
	}
	for i, l := range sum {
		ss[i], sst[i] = size[l], v.stride[l]
	}
	nk, ns := len(keep), len(sum)
	if ns == 0 && nk > 0 {
		v.copyOut(dst, &ks, &kst, nk)
		return
	}
	var ki, si [einMax]int64
	for o := range dst {
		base := int64(0)
		for i := 0; i < nk; i++ {
			base += ki[i] * kst[i]
		}
		var acc float32
		if ns == 0 {
			acc = v.data[base]
		} else {
			for {
				off := base
				for i := 0; i < ns; i++ {
					off += si[i] * sst[i]
				}
				acc += v.data[off]
				j := ns - 1
				for ; j >= 0; j-- {
					si[j]++
					if si[j] < ss[j] {
						break
					}
					si[j] = 0
				}
				if j < 0 {
					break
				}
			}
		}
		dst[o] = acc
		for j := nk - 1; j >= 0; j-- {
			ki[j]++
			if ki[j] < ks[j] {
				break
			}
			ki[j] = 0
		}
	}
}

// copyOut is gather without summed labels: a strided copy, row by row of
// the last kept label (a contiguous copy when its stride is 1), the row's
// start advanced like an odometer over the other kept labels.
func (v *einView) copyOut(dst []float32, ks, kst *[einMax]int64, nk int) {
	inner, istr := int(ks[nk-1]), kst[nk-1]
	if inner == 0 {
		return
	}
	var ki [einMax]int64
	base := int64(0)
	src := v.data
	for o := 0; o < len(dst); o += inner {
		row := dst[o : o+inner]
		switch istr {
		case 1:
			copy(row, src[base:base+int64(inner)])
		case 0:
			x := src[base]
			for j := range row {
				row[j] = x
			}
		default:
			off := base
			for j := range row {
				row[j] = src[off]
				off += istr
			}
		}
		for j := nk - 2; j >= 0; j-- {
			ki[j]++
			base += kst[j]
			if ki[j] < ks[j] {
				break
			}
			base -= ki[j] * kst[j]
			ki[j] = 0
		}
	}
}

// inOrder reports whether the view is a dense array with exactly the labels
// order (so a product can read it in place).
func (v *einView) inOrder(order []int, size *[einMax]int64) bool {
	st := int64(1)
	for i := len(order) - 1; i >= 0; i-- {
		l := order[i]
		if v.size[l] != size[l] {
			return false
		}
		if size[l] != 1 && v.stride[l] != st {
			return false
		}
		st *= size[l]
	}
	return len(order) == len(v.labels) && int64(len(v.data)) == st
}

func (k *einsumKernel) run(x *exec, in, out []*graph.Tensor) error {
	st := x.state.(*einsumState)
	if !st.matches(in) {
		if err := k.compile(st, in); err != nil {
			return err
		}
	}
	data := func(id int) []float32 {
		switch {
		case id == einOut:
			return out[0].F32
		case id >= einBuf:
			return st.bufs[id-einBuf]
		}
		return in[id].F32
	}
	for i := range st.steps {
		s := &st.steps[i]
		if !s.gemm {
			s.view.data = data(s.src)
			s.view.gather(data(s.dst)[:s.n], s.keep, s.sum, &s.size)
			continue
		}
		a, b, c := data(s.a), data(s.b), data(s.dst)
		g := &st.g.g
		bt := &st.g.batch
		if s.inPlace {
			*bt = batchGemm{tA: s.tA, tB: s.tB, m: int(s.m), n: int(s.nn), k: int(s.kk), lda: s.lda, ldb: s.ldb, ldc: int(s.nn),
				a: in[s.aIn].F32, b: in[s.bIn].F32, c: c, aq: int(s.aq), bq: int(s.bq), cq: int(s.m * s.nn), nb: int(s.nb), workers: bt.workers}
			bt.run(x.pool)
			continue
		}
		if s.nin {
			lda := int(s.kk)
			if s.tA {
				lda = int(s.m)
			}
			*bt = batchGemm{tA: s.tA, m: int(s.m), n: int(s.nn), k: int(s.kk), lda: lda, ldb: int(s.nn), ldc: int(s.nn),
				a: b, b: a, c: c, aq: 0, bq: int(s.kk * s.nn), cq: int(s.m * s.nn), nb: int(s.nb), workers: bt.workers}
			bt.run(x.pool)
			continue
		}
		if s.kk > 0 {
			*bt = batchGemm{m: int(s.m), n: int(s.nn), k: int(s.kk), lda: int(s.kk), ldb: int(s.nn), ldc: int(s.nn),
				a: a, b: b, c: c, aq: int(s.m * s.kk), bq: int(s.kk * s.nn), cq: int(s.m * s.nn), nb: int(s.nb), workers: bt.workers}
			bt.run(x.pool)
			continue
		}
		for q := int64(0); q < s.nb; q++ {
			if s.kk == 0 {
				clear(c[q*s.m*s.nn : (q+1)*s.m*s.nn])
				continue
			}
			*g = gemm{m: int(s.m), n: int(s.nn), k: int(s.kk), alpha: 1, a: a[q*s.m*s.kk:], lda: int(s.kk),
				b: b[q*s.kk*s.nn:], ldb: int(s.nn), c: c[q*s.m*s.nn:], ldc: int(s.nn), w: &st.g.w}
			g.run(x.pool)
		}
	}
	return nil
}

// matches reports whether the compiled steps are for these input shapes.
func (st *einsumState) matches(in []*graph.Tensor) bool {
	if st.steps == nil {
		return false
	}
	i := 0
	for _, t := range in {
		if i >= len(st.key) || st.key[i] != int64(len(t.Shape)) {
			return false
		}
		i++
		for _, d := range t.Shape {
			if i >= len(st.key) || st.key[i] != d {
				return false
			}
			i++
		}
	}
	return i == len(st.key)
}

// compile plans the steps for the inputs' shapes: each operand has its
// diagonals taken and private labels summed (in place when there are
// none), the operands are folded left to right as batched GEMMs
// [batch, left, contracted]·[batch, contracted, right], and the result is
// laid out (and any label left over summed) into the output.
func (k *einsumKernel) compile(st *einsumState, in []*graph.Tensor) error {
	p := &einPlan{}
	if err := k.expand(in, p); err != nil {
		return err
	}
	st.key = st.key[:0]
	for _, t := range in {
		st.key = append(st.key, int64(len(t.Shape)))
		st.key = append(st.key, t.Shape...)
	}
	st.steps = st.steps[:0]
	if s, ok := channelContraction(p, in); ok && !einsumGeneralOnly {
		st.steps = append(st.steps, s)
		return nil
	}
	if s, ok := batchedContraction(p, in); ok && !einsumGeneralOnly {
		st.steps = append(st.steps, s)
		return nil
	}
	need := func(l int, from int) bool { // label used by the output or an operand ≥ from
		if containsLabel(p.out, l) {
			return true
		}
		for i := from; i < len(p.ops); i++ {
			if containsLabel(p.ops[i], l) {
				return true
			}
		}
		return false
	}
	// Buffers: 0 and 1 hold the running product in turn, 2 the reduced
	// right operand, 3 and 4 the operands laid out for the product.
	buf := func(i int, n int64) int {
		if len(st.bufs[i]) < int(n) { // a buffer serves several steps: the largest
			st.bufs[i] = growSlice(st.bufs[i], int(n))
		}
		return einBuf + i
	}
	gather := func(v einView, src, dst int, keep, sum []int, size *[einMax]int64) {
		n := int64(1)
		for _, l := range keep {
			n *= size[l]
		}
		st.steps = append(st.steps, einStep{src: src, dst: dst, view: v, keep: keep, sum: sum, size: *size, n: n})
	}
	type operand struct {
		v  einView
		id int
	}
	reduce := func(i, bi int) operand {
		v := viewOf(nil, in[i].Shape, p.ops[i])
		var keep, sum []int
		for _, l := range v.labels {
			used := containsLabel(p.out, l)
			for j := range p.ops {
				if j != i && containsLabel(p.ops[j], l) {
					used = true
				}
			}
			if used {
				keep = append(keep, l)
			} else {
				sum = append(sum, l)
			}
		}
		if len(sum) == 0 && len(keep) == len(p.ops[i]) {
			return operand{v, i} // no diagonal, nothing to sum: read in place
		}
		shape := make([]int64, len(keep))
		n := int64(1)
		for j, l := range keep {
			shape[j] = v.size[l]
			n *= v.size[l]
		}
		id := buf(bi, n)
		gather(v, i, id, keep, sum, &v.size)
		return operand{viewOf(nil, shape, keep), id}
	}
	cur := 0
	acc := reduce(0, cur)
	for i := 1; i < len(p.ops); i++ {
		b := reduce(i, 2)
		var batch, left, contr, right []int
		var size [einMax]int64
		for _, l := range acc.v.labels {
			size[l] = acc.v.size[l]
			if containsLabel(b.v.labels, l) {
				size[l] = max(acc.v.size[l], b.v.size[l])
				if need(l, i+1) {
					batch = append(batch, l)
				} else {
					contr = append(contr, l)
				}
			} else {
				left = append(left, l)
			}
		}
		for _, l := range b.v.labels {
			if !containsLabel(acc.v.labels, l) {
				size[l] = b.v.size[l]
				right = append(right, l)
			}
		}
		prodOf := func(ls []int) int64 {
			n := int64(1)
			for _, l := range ls {
				n *= size[l]
			}
			return n
		}
		s := einStep{gemm: true, a: acc.id, b: b.id, nb: prodOf(batch), m: prodOf(left), kk: prodOf(contr), nn: prodOf(right)}
		aOrder := append(append(append([]int(nil), batch...), left...), contr...)
		bOrder := append(append(append([]int(nil), batch...), contr...), right...)
		if !acc.v.inOrder(aOrder, &size) {
			s.a = buf(3, s.nb*s.m*s.kk)
			gather(acc.v, acc.id, s.a, aOrder, nil, &size)
		}
		if !b.v.inOrder(bOrder, &size) {
			s.b = buf(4, s.nb*s.kk*s.nn)
			gather(b.v, b.id, s.b, bOrder, nil, &size)
		}
		cOrder := append(append(append([]int(nil), batch...), left...), right...)
		cur = 1 - cur
		s.dst = buf(cur, s.nb*s.m*s.nn)
		st.steps = append(st.steps, s)
		shape := make([]int64, len(cOrder))
		for j, l := range cOrder {
			shape[j] = size[l]
		}
		acc = operand{viewOf(nil, shape, cOrder), s.dst}
	}
	var size [einMax]int64
	copy(size[:], acc.v.size[:])
	var sum []int
	for _, l := range acc.v.labels {
		if !containsLabel(p.out, l) {
			sum = append(sum, l)
		}
	}
	gather(acc.v, acc.id, einOut, p.out, sum, &size)
	return nil
}

// batchedContraction recognises a two-operand Einsum that is a batch of
// matrix products with every operand in place — attention's
// "nchw,ncij->nhwij" and "nhwij,ncij->nchw": the batch labels lead x, y and
// the output in the same order; after them x holds its own labels L and
// the contracted ones C as two blocks (either order), y holds C and its own
// R likewise, C in the same order in both, and the output is [batch…, L…,
// R…] (C = op(x)·op(y)) or [batch…, R…, L…] (C = op(y)·op(x)). The general
// plan lays out one or both operands and the result; the products are the
// same sums over C in the same order, so the bits are its own.
func batchedContraction(p *einPlan, in []*graph.Tensor) (einStep, bool) {
	if len(p.ops) != 2 {
		return einStep{}, false
	}
	x, y, out := p.ops[0], p.ops[1], p.out
	if len(x) != len(in[0].Shape) || len(y) != len(in[1].Shape) {
		return einStep{}, false
	}
	size := map[int]int64{}
	for k, ls := range [][]int{x, y} {
		for i, l := range ls {
			n := in[k].Shape[i]
			if old, ok := size[l]; ok && old != n {
				return einStep{}, false // a repeated label or a broadcast
			}
			size[l] = n
		}
	}
	var batch, contr, L, R []int
	for _, l := range x {
		switch {
		case containsLabel(y, l) && containsLabel(out, l):
			batch = append(batch, l)
		case containsLabel(y, l):
			contr = append(contr, l)
		case containsLabel(out, l):
			L = append(L, l)
		default:
			return einStep{}, false // a private sum
		}
	}
	for _, l := range y {
		if !containsLabel(x, l) {
			if !containsLabel(out, l) {
				return einStep{}, false
			}
			R = append(R, l)
		}
	}
	if len(contr) == 0 || len(L) == 0 || len(R) == 0 || len(out) != len(batch)+len(L)+len(R) {
		return einStep{}, false
	}
	is := func(ls []int, parts ...[]int) bool {
		i := 0
		for _, part := range parts {
			for _, l := range part {
				if i >= len(ls) || ls[i] != l {
					return false
				}
				i++
			}
		}
		return i == len(ls)
	}
	prodOf := func(ls []int) int64 {
		n := int64(1)
		for _, l := range ls {
			n *= size[l]
		}
		return n
	}
	nb, k, nl, nr := prodOf(batch), prodOf(contr), prodOf(L), prodOf(R)
	if k == 0 || nb == 0 {
		return einStep{}, false
	}
	// x as the left operand: [L, C] as it is, [C, L] transposed; y as the
	// right one: [C, R] as it is, [R, C] transposed
	var xT, yT bool
	switch {
	case is(x, batch, L, contr):
	case is(x, batch, contr, L):
		xT = true
	default:
		return einStep{}, false
	}
	switch {
	case is(y, batch, contr, R):
	case is(y, batch, R, contr):
		yT = true
	default:
		return einStep{}, false
	}
	s := einStep{gemm: true, inPlace: true, dst: einOut, nb: nb, kk: k, aq: nl * k, bq: k * nr}
	switch {
	case is(out, batch, L, R): // op(x)·op(y)
		s.aIn, s.bIn, s.m, s.nn = 0, 1, nl, nr
		s.tA, s.lda = xT, int(k)
		if xT {
			s.lda = int(nl)
		}
		s.tB, s.ldb = yT, int(nr)
		if yT {
			s.ldb = int(k)
		}
	case is(out, batch, R, L): // op(y)ᵀ-side first: [R, C]·[C, L]
		s.aIn, s.bIn, s.m, s.nn = 1, 0, nr, nl
		s.aq, s.bq = k*nr, nl*k
		s.tA, s.lda = !yT, int(k) // y as A: [R, C] as it is, [C, R] transposed
		if !yT {
			s.lda = int(nr)
		}
		s.tB, s.ldb = !xT, int(nl) // x as B: [C, L] as it is, [L, C] transposed
		if !xT {
			s.ldb = int(k)
		}
	default:
		return einStep{}, false
	}
	return s, true
}

// einMinInner is the least width of channelContraction's products.
const einMinInner = 16

// einsumGeneralOnly turns channelContraction off (tests compare the two).
var einsumGeneralOnly bool

// channelContraction recognises a two-operand Einsum that contracts a
// block of x's axes with a matrix w — NIN's "nchw,cd->ndhw": x is
// [outer…, contracted…, inner…], w is [contracted…, new…] or [new…,
// contracted…], and the output is [outer…, new…, inner…]. Each outer index
// is then one product op(w)·x[q] of [new, contracted]·[contracted, inner],
// read and written in place, where the general plan lays x out with the
// contracted axes last and lays the product back out. The sums are over the
// same contracted index in the same order, so the bits are the general
// plan's.
func channelContraction(p *einPlan, in []*graph.Tensor) (einStep, bool) {
	// the inner block is the product's width: one to a few columns would
	// make many thin products, where the general plan makes one
	if len(p.ops) != 2 {
		return einStep{}, false
	}
	x, w, out := p.ops[0], p.ops[1], p.out
	distinct := func(ls []int) bool {
		for i := range ls {
			for j := i + 1; j < len(ls); j++ {
				if ls[i] == ls[j] {
					return false
				}
			}
		}
		return true
	}
	if len(x) != len(in[0].Shape) || len(w) != len(in[1].Shape) || !distinct(x) || !distinct(w) || !distinct(out) {
		return einStep{}, false
	}
	// the contracted labels: in both operands, not in the output
	var contr, fresh []int
	for _, l := range w {
		switch {
		case containsLabel(x, l) && !containsLabel(out, l):
			contr = append(contr, l)
		case !containsLabel(x, l) && containsLabel(out, l):
			fresh = append(fresh, l)
		default:
			return einStep{}, false
		}
	}
	if len(contr) == 0 || len(fresh) == 0 {
		return einStep{}, false
	}
	// x = [outer…, contr…, inner…]
	at := -1
	for i := range x {
		if x[i] == contr[0] {
			at = i
			break
		}
	}
	if at < 0 || at+len(contr) > len(x) {
		return einStep{}, false
	}
	for j, l := range contr {
		if x[at+j] != l {
			return einStep{}, false
		}
	}
	outer, inner := x[:at], x[at+len(contr):]
	// out = [outer…, fresh…, inner…]
	want := append(append(append([]int(nil), outer...), fresh...), inner...)
	if len(out) != len(want) {
		return einStep{}, false
	}
	for i := range want {
		if out[i] != want[i] {
			return einStep{}, false
		}
	}
	// w = [contr…, fresh…] (op(w) = wᵀ) or [fresh…, contr…]
	tA := w[0] == contr[0]
	order := append(append([]int(nil), fresh...), contr...)
	if tA {
		order = append(append([]int(nil), contr...), fresh...)
	}
	for i := range order {
		if w[i] != order[i] {
			return einStep{}, false
		}
	}
	size := func(t *graph.Tensor, ls, of []int) int64 {
		n := int64(1)
		for i, l := range ls {
			if containsLabel(of, l) {
				n *= t.Shape[i]
			}
		}
		return n
	}
	xs, ws := in[0], in[1]
	for _, l := range contr {
		// a broadcast contracted axis: the general plan handles it
		if size(xs, x, []int{l}) != size(ws, w, []int{l}) {
			return einStep{}, false
		}
	}
	kk := size(xs, x, contr)
	if kk == 0 || size(xs, x, inner) < einMinInner {
		return einStep{}, false
	}
	return einStep{gemm: true, nin: true, tA: tA, a: 0, b: 1, dst: einOut,
		nb: size(xs, x, outer), m: size(ws, w, fresh), kk: kk, nn: size(xs, x, inner)}, true
}

func init() {
	register("Einsum", compileEinsum)
}
