package native

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// poolKernel is AveragePool and MaxPool over 1 or 2 spatial dimensions.
type poolKernel struct {
	win        window
	max        bool
	includePad bool
}

func compilePool(isMax bool) opFunc {
	return func(c *compileCtx) (kernel, error) {
		if ndSpatial(c) {
			return compilePoolND(c, isMax)
		}
		w, err := readWindow(c.node)
		if err != nil {
			return nil, err
		}
		if w.kernel == nil {
			return nil, fmt.Errorf("kernel_shape is required")
		}
		if r := c.inputRank(0); r > 4 {
			return nil, unsupported("%d spatial dimensions (1 and 2 are supported)", r-2)
		}
		if isMax && c.node.AttrInt("storage_order", 0) != 0 {
			return nil, unsupported("MaxPool with storage_order=1")
		}
		if !isMax && len(w.dilations) > 0 {
			for _, d := range w.dilations {
				if d != 1 {
					return nil, unsupported("AveragePool with dilations")
				}
			}
		}
		return &poolKernel{win: w, max: isMax, includePad: c.node.AttrInt("count_include_pad", 0) != 0}, nil
	}
}

func (k *poolKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if x.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	var g geom
	if err := k.win.resolve(x.Shape, k.win.kernel, &g); err != nil {
		return err
	}
	var sh dims
	r := g.outShape(g.c, &sh)
	setShape(out[0], graph.Float32, sh[:r])
	if len(out) > 1 && out[1] != nil {
		setShape(out[1], graph.Int64, sh[:r])
	}
	return nil
}

func (*poolKernel) newState() any { return new(poolTask) }

// poolTask is one run of a pool, split over (sample, channel) planes.
type poolTask struct {
	k    *poolKernel
	g    geom
	X, Y []float32
	idx  []int64
}

func (k *poolKernel) run(x *exec, in, out []*graph.Tensor) error {
	t := x.state.(*poolTask)
	*t = poolTask{k: k, X: in[0].F32, Y: out[0].F32}
	_ = k.win.resolve(in[0].Shape, k.win.kernel, &t.g)
	if len(out) > 1 && out[1] != nil {
		t.idx = out[1].I64
	}
	x.pool.parallel(t.g.n*t.g.c, max(1, normGrain/(t.g.oh*t.g.ow*t.g.kh*t.g.kw+1)), t)
	return nil
}

// runRange pools planes [lo, hi).
func (t *poolTask) runRange(lo, hi int) {
	g := &t.g
	if t.k.max && t.idx == nil && avgPoolFlat(g) {
		maxPoolFlatRange(t, lo, hi)
		return
	}
	if t.k.max && t.idx == nil && maxPoolSeparable(g) {
		hw, ohw := g.h*g.w, g.oh*g.ow
		for p := lo; p < hi; p++ {
			maxPoolPlane(t.Y[p*ohw:(p+1)*ohw], t.X[p*hw:(p+1)*hw], g)
		}
		return
	}
	if !t.k.max && avgPool2x2(g) {
		avgPool2x2Range(t, lo, hi)
		return
	}
	if !t.k.max && avgPoolFlat(g) {
		avgPoolFlatRange(t, lo, hi)
		return
	}
	if t.k.max || !avgPoolSeparable(g) {
		t.generalRange(lo, hi)
		return
	}
	hw, ohw := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		avgPoolPlane(t.Y[p*ohw:(p+1)*ohw], t.X[p*hw:(p+1)*hw], g, t.k.includePad)
	}
}

// generalRange pools planes [lo, hi) window by window, the reference for
// the separable average.
func (t *poolTask) generalRange(lo, hi int) {
	k, g, X, Y, idx := t.k, &t.g, t.X, t.Y, t.idx
	hw, ohw := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		plane := X[p*hw : (p+1)*hw]
		for oy := 0; oy < g.oh; oy++ {
			y0 := oy*g.sh - g.ph
			for ox := 0; ox < g.ow; ox++ {
				x0 := ox*g.sw - g.pw
				o := p*ohw + oy*g.ow + ox
				if k.max {
					best, at := float32(math.Inf(-1)), -1
					for i := 0; i < g.kh; i++ {
						yy := y0 + i*g.dh
						if yy < 0 || yy >= g.h {
							continue
						}
						for j := 0; j < g.kw; j++ {
							xx := x0 + j*g.dw
							if xx < 0 || xx >= g.w {
								continue
							}
							if v := plane[yy*g.w+xx]; v > best || at < 0 {
								best, at = v, yy*g.w+xx
							}
						}
					}
					Y[o] = best
					if idx != nil {
						idx[o] = int64(p*hw + at)
					}
					continue
				}
				// Average: the divisor counts padding cells (but not the
				// overhang of ceil mode) when count_include_pad is set.
				var sum float32
				cnt := 0
				for i := 0; i < g.kh; i++ {
					yy := y0 + i
					if yy < 0 || yy >= g.h {
						continue
					}
					for j := 0; j < g.kw; j++ {
						xx := x0 + j
						if xx >= 0 && xx < g.w {
							sum += plane[yy*g.w+xx]
							cnt++
						}
					}
				}
				if k.includePad {
					hEnd := min(y0+g.kh, g.h+g.phe)
					wEnd := min(x0+g.kw, g.w+g.pwe)
					cnt = (hEnd - y0) * (wEnd - x0)
				}
				Y[o] = sum / float32(max(cnt, 1))
			}
		}
	}
}

// globalPool averages or takes the maximum over all spatial positions.
type globalPool struct{ max bool }

func (globalPool) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if x.DType != graph.Float32 || len(x.Shape) < 2 {
		return fmt.Errorf("input %s %v", x.DType, x.Shape)
	}
	var sh dims
	copy(sh[:], x.Shape)
	for i := 2; i < len(x.Shape); i++ {
		sh[i] = 1
	}
	setShape(out[0], graph.Float32, sh[:len(x.Shape)])
	return nil
}

func (k globalPool) run(_ *exec, in, out []*graph.Tensor) error {
	x := in[0]
	n := int(prod(x.Shape[2:]))
	for p := range out[0].F32 {
		plane := x.F32[p*n : (p+1)*n]
		if k.max {
			m := float32(math.Inf(-1))
			for _, v := range plane {
				m = max(m, v)
			}
			out[0].F32[p] = m
			continue
		}
		var s float64
		for _, v := range plane {
			s += float64(v)
		}
		out[0].F32[p] = float32(s / float64(n))
	}
	return nil
}

func init() {
	register("AveragePool", compilePool(false))
	register("MaxPool", compilePool(true))
	register("GlobalAveragePool", func(*compileCtx) (kernel, error) { return globalPool{}, nil })
	register("GlobalMaxPool", func(*compileCtx) (kernel, error) { return globalPool{max: true}, nil })
}
