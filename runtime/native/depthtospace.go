package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// depthSpaceKernel is DepthToSpace (modes DCR and CRD; PyTorch's
// pixel_shuffle is CRD) and SpaceToDepth on [N, C, H, W].
type depthSpaceKernel struct {
	toSpace bool
	crd     bool
	block   int64
}

func compileDepthSpace(toSpace bool) opFunc {
	return func(c *compileCtx) (kernel, error) {
		n := c.node
		k := &depthSpaceKernel{toSpace: toSpace, block: n.AttrInt("blocksize", 0)}
		if k.block < 1 {
			return nil, fmt.Errorf("%s blocksize %d", n.OpType, k.block)
		}
		switch m := n.AttrString("mode", "DCR"); {
		case !toSpace:
		case m == "CRD":
			k.crd = true
		case m != "DCR":
			return nil, fmt.Errorf("DepthToSpace mode %q is not DCR or CRD", m)
		}
		return k, nil
	}
}

func (k *depthSpaceKernel) infer(in, out []*graph.Tensor) error {
	x := in[0]
	if len(x.Shape) != 4 {
		return fmt.Errorf("input must be [N, C, H, W], got %v", x.Shape)
	}
	n, c, h, w, b := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], k.block
	if k.toSpace {
		if c%(b*b) != 0 {
			return fmt.Errorf("channels %d not divisible by blocksize² %d", c, b*b)
		}
		setShape(out[0], x.DType, []int64{n, c / (b * b), h * b, w * b})
		return nil
	}
	if h%b != 0 || w%b != 0 {
		return fmt.Errorf("height %d and width %d not divisible by blocksize %d", h, w, b)
	}
	setShape(out[0], x.DType, []int64{n, c * b * b, h / b, w / b})
	return nil
}

func (k *depthSpaceKernel) run(_ *exec, in, out []*graph.Tensor) error {
	switch in[0].DType {
	case graph.Float32:
		moveDepthSpace(k, data[float32](out[0]), data[float32](in[0]), in[0].Shape, out[0].Shape)
	case graph.Int64:
		moveDepthSpace(k, data[int64](out[0]), data[int64](in[0]), in[0].Shape, out[0].Shape)
	default:
		moveDepthSpace(k, data[bool](out[0]), data[bool](in[0]), in[0].Shape, out[0].Shape)
	}
	return nil
}

// moveDepthSpace copies element by element; on the space side the pixel
// (h·b + i, w·b + j) pairs with depth channel (i·b + j)·C' + c (DCR and
// SpaceToDepth) or c·b² + i·b + j (CRD), where C' is the space side's
// channel count.
func moveDepthSpace[T elem](k *depthSpaceKernel, d, s []T, xs, ys []int64) {
	b := k.block
	// Name the space side (n, cs, H, W) and the depth side (n, cs·b², H/b, W/b).
	sp, dp := ys, xs
	if !k.toSpace {
		sp, dp = xs, ys
	}
	n, cs, hh, ww := sp[0], sp[1], sp[2], sp[3]
	cd, hd, wd := dp[1], dp[2], dp[3]
	for in := int64(0); in < n; in++ {
		for c := int64(0); c < cs; c++ {
			for y := int64(0); y < hh; y++ {
				for x := int64(0); x < ww; x++ {
					i, j := y%b, x%b
					dc := (i*b+j)*cs + c
					if k.crd {
						dc = c*b*b + i*b + j
					}
					so := ((in*cs+c)*hh+y)*ww + x
					do := ((in*cd+dc)*hd+y/b)*wd + x/b
					if k.toSpace {
						d[so] = s[do]
					} else {
						d[do] = s[so]
					}
				}
			}
		}
	}
}

func init() {
	register("DepthToSpace", compileDepthSpace(true))
	register("SpaceToDepth", compileDepthSpace(false))
}
