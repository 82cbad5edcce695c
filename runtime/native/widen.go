package native

import "github.com/ebmrun/ebmrun/graph"

// widenIntArgs returns g, or a shallow copy in which int32 Constant nodes
// and initializers feeding only integer-argument inputs (the op table's
// IntArgs) are int64.
func widenIntArgs(g *graph.Graph) *graph.Graph {
	uses := map[string]int{}
	argUses := map[string]int{}
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			if in == "" {
				continue
			}
			uses[in]++
			var args []int
			if o := graph.Op(n.OpType); o != nil {
				args = o.IntArgs
			}
			for _, j := range args {
				if i == j {
					argUses[in]++
				}
			}
		}
	}
	for _, o := range g.Outputs {
		uses[o.Name]++
	}
	widen := func(name string, t *graph.Tensor) *graph.Tensor {
		if t == nil || t.DType != graph.Int32 || argUses[name] == 0 || argUses[name] != uses[name] {
			return nil
		}
		v, err := t.AsInt64s()
		if err != nil {
			return nil
		}
		return graph.NewInt64(t.Shape, v)
	}
	var out *graph.Graph
	clone := func() {
		if out == nil {
			c := *g
			c.Nodes = append([]*graph.Node(nil), g.Nodes...)
			c.Initializers = append([]graph.Initializer(nil), g.Initializers...)
			out = &c
		}
	}
	for i, n := range g.Nodes {
		if n.OpType != "Constant" || len(n.Outputs) != 1 {
			continue
		}
		a := n.Attr("value")
		if a == nil {
			continue
		}
		if w := widen(n.Outputs[0], a.T); w != nil {
			clone()
			nn := *n
			nn.Attrs = []*graph.Attribute{graph.TensorAttr("value", w)}
			out.Nodes[i] = &nn
		}
	}
	for i, in := range g.Initializers {
		if w := widen(in.Name, in.Tensor); w != nil {
			clone()
			out.Initializers[i] = graph.Initializer{Name: in.Name, Tensor: w}
		}
	}
	if out == nil {
		return g
	}
	return out
}
