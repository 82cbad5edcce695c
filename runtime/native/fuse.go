package native

import "github.com/ebmrun/ebmrun/graph"

// fusion turns the rewrites of fuse on; tests turn it off to compare.
var fusion = true

// pending is a node that survived constant folding, with its kernel.
type pending struct {
	n *graph.Node
	k kernel
}

// fuse rewrites chains of live nodes into single steps whose intermediate
// values nobody else reads:
//
//	Sigmoid(x), Mul(x, σ) (either order)  ⇒ SiLU(x), one pass over x
//	Gemm, then Sigmoid or SiLU             ⇒ Gemm with it in the epilogue
//	Conv, then Sigmoid, SiLU, Relu or Elu  ⇒ Conv with it in the epilogue
//
// The fused step carries a synthetic node ("Sigmoid+Mul", with both names)
// for error messages. Nodes that match no pattern keep their own kernels.
func fuse(live []pending, outputs []graph.ValueInfo) []pending {
	if !fusion {
		return live
	}
	uses := map[string]int{}
	for _, pd := range live {
		for _, in := range pd.n.Inputs {
			uses[in]++
		}
	}
	for _, o := range outputs {
		uses[o.Name] += 2 // a graph output is never fused away
	}
	// consumer returns the index of the one node after i reading name.
	consumer := func(i int, name string) int {
		if uses[name] != 1 {
			return -1
		}
		for j := i + 1; j < len(live); j++ {
			for _, in := range live[j].n.Inputs {
				if in == name {
					return j
				}
			}
		}
		return -1
	}
	merge := func(i, j int, k kernel, ins []string) {
		a, b := live[i].n, live[j].n
		live[j] = pending{k: k, n: &graph.Node{Name: a.Label() + "+" + b.Label(), OpType: a.OpType + "+" + b.OpType,
			Inputs: ins, Outputs: b.Outputs}}
		live[i].n = nil
	}
	compact := func() {
		out := live[:0]
		for _, pd := range live {
			if pd.n != nil {
				out = append(out, pd)
			}
		}
		live = out
	}

	for i := range live {
		n := live[i].n
		if n.OpType != "Sigmoid" || len(n.Outputs) != 1 {
			continue
		}
		x, s := n.Inputs[0], n.Outputs[0]
		j := consumer(i, s)
		if j < 0 {
			continue
		}
		m := live[j].n
		if m.OpType != "Mul" || len(m.Inputs) != 2 || !(m.Inputs[0] == x && m.Inputs[1] == s || m.Inputs[0] == s && m.Inputs[1] == x) {
			continue
		}
		merge(i, j, siluKernel, []string{x})
		uses[x]-- // x is read once now, by the SiLU
	}
	compact()

	for i := range live {
		gk, ok := live[i].k.(*gemmKernel)
		if !ok || gk.act != actNone || len(live[i].n.Outputs) != 1 {
			continue
		}
		j := consumer(i, live[i].n.Outputs[0])
		if j < 0 {
			continue
		}
		var a act
		switch live[j].k {
		case sigmoidKernel:
			a = actSigmoid
		case siluKernel:
			a = actSiLU
		default:
			continue
		}
		fk := *gk
		fk.act = a
		gemmNode := live[i].n
		merge(i, j, &fk, gemmNode.Inputs)
		// The fused step runs where the activation did: its inputs are
		// ready, and so is everything that reads its output afterwards.
	}
	compact()

	for i := range live {
		ck, ok := live[i].k.(*convKernel)
		if !ok || !ck.epi.none() || len(live[i].n.Outputs) != 1 {
			continue
		}
		j := consumer(i, live[i].n.Outputs[0])
		if j < 0 {
			continue
		}
		var e convEpi
		switch {
		case live[j].k == sigmoidKernel:
			e.a = actSigmoid
		case live[j].k == siluKernel:
			e.a = actSiLU
		case live[j].n.OpType == "Relu":
			e.relu = true
		case live[j].n.OpType == "Elu":
			e.elu, e.alpha = true, live[j].n.AttrFloat("alpha", 1)
		default:
			continue
		}
		fk := *ck
		fk.epi = e
		merge(i, j, &fk, live[i].n.Inputs)
	}
	compact()
	return live
}

// sigmoidKernel and siluKernel are shared by every Sigmoid and fused SiLU
// step; fuse recognises them by identity.
var (
	sigmoidKernel = &unaryKernel{f32: sigmoidF32}
	siluKernel    = &unaryKernel{f32: siluF32}
)
