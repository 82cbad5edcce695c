package autodiff

import (
	"errors"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradGemm, "Gemm")
	register(gradMatMul, "MatMul")
}

// gradGemm: Y = α·op(A)·op(B) + β·C.
func gradGemm(c *ruleCtx, gout []string) ([]string, error) {
	b, g := c.b, gout[0]
	a, bb := c.in(0), c.in(1)
	ta, tb := c.n.AttrInt("transA", 0) != 0, c.n.AttrInt("transB", 0) != 0
	alpha, beta := c.n.AttrFloat("alpha", 1), c.n.AttrFloat("beta", 1)
	var alphaAttr *graph.Attribute
	if alpha != 1 {
		alphaAttr = graph.FloatAttr("alpha", alpha)
	}
	flag := func(name string, on bool) *graph.Attribute {
		if !on {
			return nil
		}
		return graph.IntAttr(name, 1)
	}
	gemm := func(x, y string, transX, transY bool) string {
		return b.op("Gemm", []string{x, y}, alphaAttr, flag("transA", transX), flag("transB", transY))
	}
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		if !ta {
			res[0] = gemm(g, bb, false, !tb) // α·g·op(B)ᵀ
		} else {
			res[0] = gemm(bb, g, tb, true) // α·op(B)·gᵀ
		}
	}
	if c.wants(1) {
		if !tb {
			res[1] = gemm(a, g, !ta, false) // α·op(A)ᵀ·g
		} else {
			res[1] = gemm(g, a, true, ta) // α·gᵀ·op(A)
		}
	}
	if c.wants(2) {
		gc := g
		if beta != 1 {
			gc = b.mul(g, b.scalar(float64(beta)))
		}
		r, err := b.unbroadcast(gc, c.in(2))
		if err != nil {
			return nil, err
		}
		res[2] = r
	}
	return res, nil
}

// swapLast exchanges the last two axes of a rank-r value.
func swapLast(r int) []int64 {
	p := allAxes(r)
	p[r-1], p[r-2] = p[r-2], p[r-1]
	return p
}

// gradMatMul handles numpy matmul semantics: 1-D operands are promoted
// (a row for the left, a column for the right) and batch axes broadcast.
func gradMatMul(c *ruleCtx, gout []string) ([]string, error) {
	b, g := c.b, gout[0]
	a, bb := c.in(0), c.in(1)
	ra, err := b.rank(a)
	if err != nil {
		return nil, err
	}
	rb, err := b.rank(bb)
	if err != nil {
		return nil, err
	}
	res := make([]string, len(c.n.Inputs))
	if ra == 1 && rb == 1 {
		if c.wants(0) {
			res[0] = b.mul(g, bb)
		}
		if c.wants(1) {
			res[1] = b.mul(g, a)
		}
		return res, nil
	}
	// Promote to ≥2-D: a2 [..., M, K], b2 [..., K, N], g2 [..., M, N].
	a2, b2, g2 := a, bb, g
	if ra == 1 {
		a2 = b.unsqueeze(a, []int64{0})
		g2 = b.unsqueeze(g2, []int64{-2 + int64(rb)})
	}
	if rb == 1 {
		b2 = b.unsqueeze(bb, []int64{1})
		r, err := b.rank(g2)
		if err != nil {
			return nil, err
		}
		g2 = b.unsqueeze(g2, []int64{int64(r)})
	}
	ra2, rb2 := max(ra, 2), max(rb, 2)
	if c.wants(0) {
		ga := b.op("MatMul", []string{g2, b.transpose(b2, swapLast(rb2))})
		r, err := b.sumTo(ga, a2)
		if err != nil {
			return nil, err
		}
		res[0] = b.reshapeLike(r, a)
	}
	if c.wants(1) {
		gb := b.op("MatMul", []string{b.transpose(a2, swapLast(ra2)), g2})
		r, err := b.sumTo(gb, b2)
		if err != nil {
			return nil, err
		}
		res[1] = b.reshapeLike(r, bb)
	}
	return res, nil
}

// sumTo is unbroadcast with a clearer error for matmul batch axes. A
// product of two matrices has no batch axes, so its gradient already has
// the operand's shape (even where a dimension is not known here).
func (b *builder) sumTo(g, x string) (string, error) {
	if rg, err := b.rank(g); err == nil && rg == 2 {
		if rx, err := b.rank(x); err == nil && rx == 2 {
			return g, nil
		}
	}
	r, err := b.unbroadcast(g, x)
	if err != nil {
		return "", errors.New("MatMul batch axes: " + err.Error())
	}
	return r, nil
}
