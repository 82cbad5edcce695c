package native

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/ebmrun/ebmrun/graph"
)

// gemm computes C = act(alpha·op(A)·op(B) + beta·C + bias) for row-major
// matrices, where op transposes when tA/tB are set, bias (optional) is added
// to every row and act is applied last. With AVX2 and enough rows it runs
// the packed kernels of gemm_packed.go; otherwise it splits C into tiles
// that the session's workers compute with gonum's serial Sgemm (gonum's own
// parallel path starts goroutines on every call, which would allocate).
type gemm struct {
	tA, tB   bool
	m, n, k  int
	alpha    float32
	a, b, c  []float32
	lda, ldb int
	beta     float32
	ldc      int
	bias     []float32 // length n, or nil
	act      act
	w        *gemmWork // scratch of the packed path; nil: allocated per call
	pre      *packedB  // op(B) packed at Prepare, or nil: packed per call
	impl     gemmImpl  // micro-kernel; the zero value picks the fastest

	rowTiles bool // gonum path: split over rows of C, else over columns
	tile     int

	packed         bool // packed path, see runPacked
	nr             int  // columns of the micro-kernel
	npad, mc, nc   int
	bp             []float32 // packed op(B): pre's panels or the session's
	tilesM, tilesN int
	next           int64 // next tile to take, atomically
}

// gemmState is the per-session state of the matrix-product kernels.
type gemmState struct {
	g     gemm
	w     gemmWork
	batch batchGemm // batched MatMul and Einsum products
}

const (
	// gonum's Sgemm goes parallel at 4 blocks of 64×64; tiles stay below.
	gemmTileRows = 64
	gemmTileCols = 192
	// gemmSerialWork is the multiply-add count below which one goroutine
	// does the whole product.
	gemmSerialWork = 1 << 17
)

func (g *gemm) run(p *pool) {
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.usePacked() {
		g.runPacked(p)
		return
	}
	g.packed = false
	g.runGonum(p)
}

// runGonum computes the product with gonum's Sgemm on tiles of C.
func (g *gemm) runGonum(p *pool) {
	threads := p.threads()
	if threads == 1 || g.m*g.n*g.k < gemmSerialWork {
		g.block(0, g.m, 0, g.n)
		return
	}
	// Prefer splitting rows; split columns when there are too few rows.
	if g.m >= 2*threads || g.m >= g.n {
		g.rowTiles = true
		g.tile = max(4, (g.m+4*threads-1)/(4*threads))
		p.parallel((g.m+g.tile-1)/g.tile, 1, g)
		return
	}
	g.rowTiles = false
	g.tile = max(16, (g.n+2*threads-1)/(2*threads))
	p.parallel((g.n+g.tile-1)/g.tile, 1, g)
}

func (g *gemm) runRange(lo, hi int) {
	if g.packed {
		for wi := lo; wi < hi; wi++ {
			g.packedWorker(wi)
		}
		return
	}
	if g.rowTiles {
		g.block(lo*g.tile, min(hi*g.tile, g.m), 0, g.n)
	} else {
		g.block(0, g.m, lo*g.tile, min(hi*g.tile, g.n))
	}
}

// block computes rows [i0, i1) and columns [j0, j1) of C.
func (g *gemm) block(i0, i1, j0, j1 int) {
	var impl gonum.Implementation
	tA, tB := blas.NoTrans, blas.NoTrans
	if g.tA {
		tA = blas.Trans
	}
	if g.tB {
		tB = blas.Trans
	}
	for i := i0; i < i1; i += gemmTileRows {
		mi := min(gemmTileRows, i1-i)
		var a []float32
		if g.tA {
			a = g.a[i:]
		} else {
			a = g.a[i*g.lda:]
		}
		for j := j0; j < j1; j += gemmTileCols {
			nj := min(gemmTileCols, j1-j)
			var b []float32
			if g.tB {
				b = g.b[j*g.ldb:]
			} else {
				b = g.b[j:]
			}
			if g.k == 0 {
				gemmScale(g.c[i*g.ldc+j:], g.ldc, mi, nj, g.beta)
				continue
			}
			impl.Sgemm(tA, tB, mi, nj, g.k, g.alpha, a, g.lda, b, g.ldb, g.beta, g.c[i*g.ldc+j:], g.ldc)
		}
	}
	g.epilogue(i0, i1, j0, j1)
}

// epilogue adds the bias to and applies the activation on C[i0:i1, j0:j1],
// while that block is still in cache.
func (g *gemm) epilogue(i0, i1, j0, j1 int) {
	if g.bias == nil && g.act == actNone {
		return
	}
	var bias []float32
	if g.bias != nil {
		bias = g.bias[j0:j1]
	}
	for i := i0; i < i1; i++ {
		row := g.c[i*g.ldc+j0 : i*g.ldc+j1]
		if g.act == actNone {
			for j, v := range bias {
				row[j] += v
			}
			continue
		}
		applyAct(g.act, row, row, bias)
	}
}

func gemmScale(c []float32, ldc, m, n int, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = 0
			} else {
				row[j] *= beta
			}
		}
	}
}

// gemmRef is the plain reference for gemm, in float64 accumulation.
func gemmRef(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float32
				if tA {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if tB {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float32(float64(alpha) * s)
			if beta != 0 {
				v += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = v
		}
	}
}

// gemmKernel is ONNX Gemm, optionally followed by a fused activation.
type gemmKernel struct {
	tA, tB      bool
	alpha, beta float32
	act         act
	pre         *packedB // constant B, packed at Prepare
}

func compileGemm(c *compileCtx) (kernel, error) {
	n := c.node
	k := &gemmKernel{
		tA: n.AttrInt("transA", 0) != 0, tB: n.AttrInt("transB", 0) != 0,
		alpha: n.AttrFloat("alpha", 1), beta: n.AttrFloat("beta", 1),
	}
	if b := constB(c); b != nil && len(b.Shape) == 2 {
		kb, nb := int(b.Shape[0]), int(b.Shape[1])
		if k.tB {
			kb, nb = nb, kb
		}
		k.pre = prepackB(b.F32, int(b.Shape[1]), k.tB, kb, nb)
	}
	return k, nil
}

// constB returns a product's B operand when it is a float32 constant worth
// packing at Prepare: A is not constant too (the node is then folded, run
// once), and B is no larger than maxElements.
func constB(c *compileCtx) *graph.Tensor {
	b := c.constInput(1)
	if b == nil || c.constInput(0) != nil || b.DType != graph.Float32 || b.Len() > maxElements || b.Len() != int64(len(b.F32)) {
		return nil
	}
	return b
}

func (*gemmKernel) newState() any { return new(gemmState) }

func (k *gemmKernel) dims(a, b *graph.Tensor) (m, n, kk int, err error) {
	if a.DType != graph.Float32 || b.DType != graph.Float32 {
		return 0, 0, 0, fmt.Errorf("operands are %s and %s; only float32 is supported", a.DType, b.DType)
	}
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return 0, 0, 0, fmt.Errorf("operands must be matrices, got shapes %v and %v", a.Shape, b.Shape)
	}
	m, kk = int(a.Shape[0]), int(a.Shape[1])
	if k.tA {
		m, kk = kk, m
	}
	kb, n := int(b.Shape[0]), int(b.Shape[1])
	if k.tB {
		kb, n = n, kb
	}
	if kk != kb {
		return 0, 0, 0, fmt.Errorf("inner dimensions differ: A %v, B %v (transA=%v, transB=%v)", a.Shape, b.Shape, k.tA, k.tB)
	}
	return m, n, kk, nil
}

func (k *gemmKernel) infer(in, out []*graph.Tensor) error {
	m, n, _, err := k.dims(in[0], in[1])
	if err != nil {
		return err
	}
	sh := [2]int64{int64(m), int64(n)}
	if c := arg(in, 2); c != nil {
		var bs dims
		r, err := broadcastShapes(&bs, sh[:], c.Shape)
		if err != nil || r != 2 || bs[0] != sh[0] || bs[1] != sh[1] || c.DType != graph.Float32 {
			return fmt.Errorf("C %s %v does not broadcast to [%d %d]", c.DType, c.Shape, m, n)
		}
	}
	setShape(out[0], graph.Float32, sh[:])
	return nil
}

func (k *gemmKernel) run(x *exec, in, out []*graph.Tensor) error {
	a, b, y := in[0], in[1], out[0]
	m, n, kk, _ := k.dims(a, b)
	beta := float32(0)
	var bias []float32
	if c := arg(in, 2); c != nil && k.beta != 0 {
		if k.beta == 1 && isRowVector(c, n) {
			bias = c.F32 // added in the epilogue instead of preloaded
		} else {
			broadcastCopy(y.F32, y.Shape, c.F32, c.Shape)
			beta = k.beta
		}
	}
	st := x.state.(*gemmState)
	st.g = gemm{tA: k.tA, tB: k.tB, m: m, n: n, k: kk, alpha: k.alpha,
		a: a.F32, lda: int(a.Shape[1]), b: b.F32, ldb: int(b.Shape[1]), beta: beta, c: y.F32, ldc: n,
		bias: bias, act: k.act, w: &st.w, pre: k.pre}
	st.g.run(x.pool)
	return nil
}

// isRowVector reports whether t, broadcast to [m, n], repeats one row:
// shape [n] or [1, n].
func isRowVector(t *graph.Tensor, n int) bool {
	switch len(t.Shape) {
	case 1:
		return t.Shape[0] == int64(n)
	case 2:
		return t.Shape[0] == 1 && t.Shape[1] == int64(n)
	}
	return false
}

// matmulKernel is ONNX MatMul: numpy matmul with broadcast batch dimensions.
type matmulKernel struct {
	pre *packedB // constant matrix or vector B, packed at Prepare
}

func compileMatMul(c *compileCtx) (kernel, error) {
	k := &matmulKernel{}
	if b := constB(c); b != nil {
		switch len(b.Shape) {
		case 1:
			k.pre = prepackB(b.F32, 1, false, int(b.Shape[0]), 1)
		case 2:
			k.pre = prepackB(b.F32, int(b.Shape[1]), false, int(b.Shape[0]), int(b.Shape[1]))
		}
	}
	return k, nil
}

func (*matmulKernel) newState() any { return new(gemmState) }

// matmulShape returns the output shape and the matrix sizes; a 1-D operand
// is promoted to a matrix and its unit dimension dropped from the output.
func matmulShape(a, b []int64, out *dims) (r, m, n, k int, err error) {
	ra, rb := len(a), len(b)
	if ra == 0 || rb == 0 {
		return 0, 0, 0, 0, fmt.Errorf("operands must not be scalars")
	}
	m, k = 1, int(a[ra-1])
	if ra >= 2 {
		m = int(a[ra-2])
	}
	kb, n := int(b[0]), 1
	if rb >= 2 {
		kb, n = int(b[rb-2]), int(b[rb-1])
	}
	if k != kb {
		return 0, 0, 0, 0, fmt.Errorf("inner dimensions differ: %v and %v", a, b)
	}
	r, err = broadcastShapes(out, a[:max(ra-2, 0)], b[:max(rb-2, 0)])
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if ra >= 2 {
		out[r] = int64(m)
		r++
	}
	if rb >= 2 {
		out[r] = int64(n)
		r++
	}
	return r, m, n, k, checkRank(r)
}

func (*matmulKernel) infer(in, out []*graph.Tensor) error {
	a, b := in[0], in[1]
	if a.DType != graph.Float32 || b.DType != graph.Float32 {
		return fmt.Errorf("operands are %s and %s; only float32 is supported", a.DType, b.DType)
	}
	var sh dims
	r, _, _, _, err := matmulShape(a.Shape, b.Shape, &sh)
	if err != nil {
		return err
	}
	setShape(out[0], graph.Float32, sh[:r])
	return nil
}

func (k *matmulKernel) run(x *exec, in, out []*graph.Tensor) error {
	a, b, y := in[0], in[1], out[0]
	var sh dims
	_, m, n, kk, _ := matmulShape(a.Shape, b.Shape, &sh)
	st := x.state.(*gemmState)
	g := &st.g
	ra, rb := len(a.Shape), len(b.Shape)
	if rb <= 2 {
		// Fold a's batch dimensions into its rows: one product.
		rows := int(prod(a.Shape[:ra-1]))
		*g = gemm{m: rows, n: n, k: kk, alpha: 1, a: a.F32, lda: kk, b: b.F32, ldb: n, c: y.F32, ldc: n, w: &st.w, pre: k.pre}
		g.run(x.pool)
		return nil
	}
	batchA, batchB := a.Shape[:max(ra-2, 0)], b.Shape[:rb-2]
	var bs dims
	br, _ := broadcastShapes(&bs, batchA, batchB)
	bt := &st.batch
	*bt = batchGemm{m: m, n: n, k: kk, lda: kk, ldb: n, ldc: n, a: a.F32, b: b.F32, c: y.F32,
		aq: m * kk, bq: kk * n, cq: m * n, bs: bs, br: br, sa: batchA, sb: batchB, nb: int(prod(bs[:br])), workers: bt.workers}
	bt.run(x.pool)
	return nil
}

// batchOffset maps flat index q over shape out to the flat index of the
// broadcast operand of shape s (right-aligned).
func batchOffset(q int, out, s []int64) int {
	off, stride := 0, 1
	for i := len(out) - 1; i >= 0; i-- {
		d := int(out[i])
		idx := q % d
		q /= d
		j := i - (len(out) - len(s))
		if j >= 0 && s[j] != 1 {
			off += idx * stride
			stride *= int(s[j])
		}
	}
	return off
}

func init() {
	register("Gemm", compileGemm)
	register("MatMul", compileMatMul)
}
