package graph

import "errors"

// inferDepthSpace is DepthToSpace's and SpaceToDepth's output on
// [N, C, H, W]; N keeps its symbol.
func inferDepthSpace(n *Node, x *Fact) ([]*Fact, error) {
	out := &Fact{DType: x.DType}
	b := n.AttrInt("blocksize", 0)
	if !x.HasShape || len(x.Shape) != 4 || b < 1 {
		return []*Fact{out}, nil
	}
	scale := func(d Dim, mul, div int64) Dim {
		if !d.Known() || d.Value*mul%div != 0 {
			return Unknown
		}
		return Dim{Value: d.Value * mul / div}
	}
	s := Shape{x.Shape[0], Unknown, Unknown, Unknown}
	if n.OpType == "DepthToSpace" {
		s[1], s[2], s[3] = scale(x.Shape[1], 1, b*b), scale(x.Shape[2], b, 1), scale(x.Shape[3], b, 1)
	} else {
		s[1], s[2], s[3] = scale(x.Shape[1], b*b, 1), scale(x.Shape[2], 1, b), scale(x.Shape[3], 1, b)
	}
	out.Shape, out.HasShape = s, true
	return []*Fact{out}, nil
}

func init() {
	on(unary(func(_ *Facts, n *Node, x *Fact) ([]*Fact, error) { return inferDepthSpace(n, x) }), "DepthToSpace", "SpaceToDepth")
	for _, op := range []string{"DepthToSpace", "SpaceToDepth"} {
		mustOp(op).Check = func(n *Node, _ int64) error {
			if n.AttrInt("blocksize", 0) < 1 {
				return errors.New("blocksize must be ≥ 1")
			}
			return nil
		}
	}
}
