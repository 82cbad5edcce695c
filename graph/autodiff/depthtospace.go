package autodiff

import (
	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradDepthToSpace, "DepthToSpace")
	register(gradSpaceToDepth, "SpaceToDepth")
}

// gradDepthToSpace: the ops are permutations. DCR is undone by
// SpaceToDepth; CRD's channels then need regrouping from (i, j, c) to
// (c, i, j).
func gradDepthToSpace(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	bs := c.n.AttrInt("blocksize", 1)
	res := make([]string, len(c.n.Inputs))
	g := b.op("SpaceToDepth", []string{gout[0]}, graph.IntAttr("blocksize", bs))
	if c.n.AttrString("mode", "DCR") == "CRD" {
		x := c.in(0)
		ch, err := b.dim(x, 1)
		if err != nil {
			return nil, err
		}
		h, err := b.dim(x, 2)
		if err != nil {
			return nil, err
		}
		w, err := b.dim(x, 3)
		if err != nil {
			return nil, err
		}
		g = b.op("Reshape", []string{g, b.ints(0, bs*bs, ch/(bs*bs), h, w)})
		g = b.transpose(g, []int64{0, 2, 1, 3, 4})
		g = b.op("Reshape", []string{g, b.ints(0, ch, h, w)})
	}
	res[0] = g
	return res, nil
}

// gradSpaceToDepth: DepthToSpace in DCR mode is its inverse.
func gradSpaceToDepth(c *ruleCtx, gout []string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	res[0] = c.b.op("DepthToSpace", []string{gout[0]}, graph.IntAttr("blocksize", c.n.AttrInt("blocksize", 1)),
		graph.StringAttr("mode", "DCR"))
	return res, nil
}
