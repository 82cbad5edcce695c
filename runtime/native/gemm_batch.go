package native

import "sync/atomic"

// batchGemm is nb independent products of the same size — a batched MatMul,
// an Einsum's products — handed out whole to the session's workers when
// each is too small to be split itself (under gemmSerialWork, where gemm
// runs on one goroutine): otherwise the batch ran one product after
// another on a single core. Product q reads A at a[offA(q):], B at
// b[offB(q):] and writes C at c[q·cq:]; a product computes the same bits on
// any worker, so the split changes nothing.
type batchGemm struct {
	tA, tB        bool
	m, n, k       int
	lda, ldb, ldc int
	a, b, c       []float32
	aq, bq, cq    int  // offsets per product (elements per batch index)
	bs            dims // broadcast batch shape of rank br (MatMul): offsets by batchOffset
	br            int
	sa, sb        []int64 // the operands' batch shapes
	nb            int
	next          int64
	workers       []batchWorker
}

type batchWorker struct {
	g gemm
	w gemmWork
}

// small reports whether one product is below the size gemm splits.
func (t *batchGemm) small() bool { return t.m*t.n*t.k < gemmSerialWork }

// product sets g to product q.
func (t *batchGemm) product(q int, g *gemm, w *gemmWork) {
	oa, ob := q*t.aq, q*t.bq
	if t.br > 0 {
		oa, ob = batchOffset(q, t.bs[:t.br], t.sa)*t.aq, batchOffset(q, t.bs[:t.br], t.sb)*t.bq
	}
	*g = gemm{tA: t.tA, tB: t.tB, m: t.m, n: t.n, k: t.k, alpha: 1, a: t.a[oa:], lda: t.lda, b: t.b[ob:], ldb: t.ldb,
		c: t.c[q*t.cq:], ldc: t.ldc, w: w}
}

// run computes the nb products: on the workers, one product each at a time,
// when they are small and there are several; else in order, each product
// splitting itself as gemm decides.
func (t *batchGemm) run(p *pool) {
	threads := p.threads()
	for len(t.workers) < max(threads, 1) {
		t.workers = append(t.workers, batchWorker{})
	}
	if threads == 1 || t.nb < 2 || !t.small() {
		wk := &t.workers[0]
		for q := 0; q < t.nb; q++ {
			t.product(q, &wk.g, &wk.w)
			wk.g.run(p)
		}
		return
	}
	t.next = 0
	p.parallel(min(threads, t.nb), 1, t)
}

func (t *batchGemm) runRange(lo, hi int) {
	for wi := lo; wi < hi; wi++ {
		wk := &t.workers[wi]
		for {
			q := int(atomic.AddInt64(&t.next, 1) - 1)
			if q >= t.nb {
				break
			}
			t.product(q, &wk.g, &wk.w)
			wk.g.run(nil)
		}
	}
}
