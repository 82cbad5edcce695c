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

// einPlan is the shape-dependent part, rebuilt when input shapes change.
type einPlan struct {
	shapes  [][]int64
	ops     [][]int // per operand: label of each axis
	out     []int
	outSize []int64
}

type einsumState struct {
	plan einPlan
	g    gemmState
	bufs [5][]float32
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

func (k *einsumKernel) infer(in, out []*graph.Tensor) error {
	var p einPlan
	if err := k.expand(in, &p); err != nil {
		return err
	}
	setShape(out[0], graph.Float32, p.outSize)
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
	p := &st.plan
	if err := k.expand(in, p); err != nil {
		return err
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
	cur := 0
	next := func(i int, n int64) []float32 {
		st.bufs[i] = growSlice(st.bufs[i], int(n))
		return st.bufs[i][:n]
	}
	// reduce takes an operand's diagonals and sums its private labels.
	reduce := func(i, bi int) einView {
		v := viewOf(in[i].F32, in[i].Shape, p.ops[i])
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
			return v // no diagonal, nothing to sum: read in place
		}
		n := int64(1)
		for _, l := range keep {
			n *= v.size[l]
		}
		dst := next(bi, n)
		v.gather(dst, keep, sum, &v.size)
		shape := make([]int64, len(keep))
		for j, l := range keep {
			shape[j] = v.size[l]
		}
		return viewOf(dst, shape, keep)
	}
	acc := reduce(0, cur)
	for i := 1; i < len(p.ops); i++ {
		b := reduce(i, 2)
		var batch, left, contr, right []int
		var size [einMax]int64
		for _, l := range acc.labels {
			size[l] = acc.size[l]
			if containsLabel(b.labels, l) {
				size[l] = max(acc.size[l], b.size[l])
				if need(l, i+1) {
					batch = append(batch, l)
				} else {
					contr = append(contr, l)
				}
			} else {
				left = append(left, l)
			}
		}
		for _, l := range b.labels {
			if !containsLabel(acc.labels, l) {
				size[l] = b.size[l]
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
		nb, m, kk, n := prodOf(batch), prodOf(left), prodOf(contr), prodOf(right)
		aOrder := append(append(append([]int(nil), batch...), left...), contr...)
		bOrder := append(append(append([]int(nil), batch...), contr...), right...)
		a, bm := acc.data, b.data
		if !acc.inOrder(aOrder, &size) {
			a = next(3, nb*m*kk)
			acc.gather(a, aOrder, nil, &size)
		}
		if !b.inOrder(bOrder, &size) {
			bm = next(4, nb*kk*n)
			b.gather(bm, bOrder, nil, &size)
		}
		cOrder := append(append(append([]int(nil), batch...), left...), right...)
		cur = 1 - cur
		c := next(cur, nb*m*n)
		g := &st.g.g
		for q := int64(0); q < nb; q++ {
			*g = gemm{m: int(m), n: int(n), k: int(kk), alpha: 1, a: a[q*m*kk:], lda: int(kk), b: bm[q*kk*n:], ldb: int(n),
				c: c[q*m*n:], ldc: int(n), w: &st.g.w}
			if kk == 0 {
				clear(c[q*m*n : (q+1)*m*n])
				continue
			}
			g.run(x.pool)
		}
		shape := make([]int64, len(cOrder))
		for j, l := range cOrder {
			shape[j] = size[l]
		}
		acc = viewOf(c, shape, cOrder)
	}
	var size [einMax]int64
	copy(size[:], acc.size[:])
	var sum []int
	for _, l := range acc.labels {
		if !containsLabel(p.out, l) {
			sum = append(sum, l)
		}
	}
	acc.gather(out[0].F32, p.out, sum, &size)
	return nil
}

func init() {
	register("Einsum", compileEinsum)
}
