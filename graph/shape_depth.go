package graph

// depthSpaceShape is DepthToSpace's and SpaceToDepth's output shape on
// [N, C, H, W]; N keeps its symbol.
func depthSpaceShape(n *Node, in []ValueInfo, _ map[string]*Tensor) ([]ValueInfo, error) {
	out := ValueInfo{DType: in[0].DType}
	x := in[0]
	b := n.AttrInt("blocksize", 0)
	if !x.HasShape || len(x.Shape) != 4 || b < 1 {
		return []ValueInfo{out}, nil
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
	return []ValueInfo{out}, nil
}

func init() {
	RegisterShapeFunc("DepthToSpace", depthSpaceShape)
	RegisterShapeFunc("SpaceToDepth", depthSpaceShape)
}
