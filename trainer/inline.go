package trainer

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// inline copies g's initializers and nodes into b, with g's inputs bound to
// the names in bind, and returns the names g's outputs have in b and the
// renaming of g's values (initializers keep their names when b has no value
// of that name yet). Losses are written around a network this way, so the
// network is defined once, by its inference graph.
func inline(b *graph.Builder, g *graph.Graph, bind map[string]string) (outs []string, rename map[string]string, err error) {
	rename = map[string]string{}
	for _, in := range g.RuntimeInputs() {
		v, ok := bind[in.Name]
		if !ok {
			return nil, nil, fmt.Errorf("trainer: inline %s: input %q is not bound", g.Name, in.Name)
		}
		rename[in.Name] = v
	}
	for _, in := range g.Initializers {
		rename[in.Name] = b.Const(in.Name, in.Tensor)
	}
	order, err := g.TopoOrder()
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: inline %s: %w", g.Name, err)
	}
	for _, n := range order {
		ins := make([]string, len(n.Inputs))
		for i, v := range n.Inputs {
			if v == "" {
				continue
			}
			r, ok := rename[v]
			if !ok {
				return nil, nil, fmt.Errorf("trainer: inline %s: node %s reads %q before it is made", g.Name, n.Label(), v)
			}
			ins[i] = r
		}
		got := b.Node(n.OpType, ins, len(n.Outputs), n.Attrs...)
		for i, o := range n.Outputs {
			if o != "" {
				rename[o] = got[i]
			}
		}
	}
	for _, o := range g.Outputs {
		r, ok := rename[o.Name]
		if !ok {
			return nil, nil, fmt.Errorf("trainer: inline %s: output %q is not computed", g.Name, o.Name)
		}
		outs = append(outs, r)
	}
	return outs, rename, nil
}

// paramsToInputs returns a copy of m whose initializers named in params are
// inputs instead, so a session can be fed the current weights.
func paramsToInputs(m *graph.Model, params []string) *graph.Model {
	want := map[string]bool{}
	for _, p := range params {
		want[p] = true
	}
	g := *m.Graph
	g.Inputs = append([]graph.ValueInfo(nil), g.Inputs...)
	g.Initializers = nil
	for _, in := range m.Graph.Initializers {
		if want[in.Name] {
			g.Inputs = append(g.Inputs, graph.ValueInfo{Name: in.Name, DType: in.Tensor.DType, Shape: graph.Fixed(in.Tensor.Shape...), HasShape: true})
			continue
		}
		g.Initializers = append(g.Initializers, in)
	}
	c := *m
	c.Graph = &g
	return &c
}
