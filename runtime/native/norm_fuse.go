package native

import (
	"fmt"
	"math"
	"slices"

	"github.com/ebmrun/ebmrun/graph"
)

// GroupNorm as exporters write it — Reshape x [N, C, …] to [N, G, −1],
// InstanceNormalization with scale 1 and bias 0, Reshape back, Mul by γ and
// Add β per channel, often followed by SiLU — is six passes over the
// activations, four of them copies or elementwise. groupNormKernel is the
// same arithmetic in one: statistics per (sample, group), then each value
// normalised, scaled, shifted and activated while it is in cache.

// groupNormKernel's inputs are x, γ and β (each C values).
type groupNormKernel struct {
	groups  int
	eps     float32
	act     act     // actNone or actSiLU
	restore []int64 // the second Reshape's constant shape, or nil: Shape(x)
}

func (*groupNormKernel) newState() any { return new(groupNormTask) }

func (k *groupNormKernel) infer(in, out []*graph.Tensor) error {
	x, gm, bt := in[0], in[1], in[2]
	if x.DType != graph.Float32 || gm.DType != graph.Float32 || bt.DType != graph.Float32 {
		return fmt.Errorf("only float32 is supported")
	}
	if len(x.Shape) < 2 {
		return fmt.Errorf("input of rank %d", len(x.Shape))
	}
	// The pattern is GroupNorm only for inputs that the second Reshape
	// gives back unchanged and whose channels γ and β line up with; the
	// graph could in principle be fed others, and then says so here.
	c := int(x.Shape[1])
	if c%k.groups != 0 || !perChannel(gm, x.Shape) || !perChannel(bt, x.Shape) {
		return fmt.Errorf("fused GroupNorm: input %v, %d groups, γ %v, β %v", x.Shape, k.groups, gm.Shape, bt.Shape)
	}
	if k.restore != nil {
		if len(k.restore) != len(x.Shape) {
			return fmt.Errorf("fused GroupNorm: input %v is not restored by shape %v", x.Shape, k.restore)
		}
		for i, v := range k.restore[1:] {
			if v != x.Shape[i+1] {
				return fmt.Errorf("fused GroupNorm: input %v is not restored by shape %v", x.Shape, k.restore)
			}
		}
	}
	setShape(out[0], graph.Float32, x.Shape)
	return nil
}

func (k *groupNormKernel) run(x *exec, in, out []*graph.Tensor) error {
	t := x.state.(*groupNormTask)
	sh := in[0].Shape
	*t = groupNormTask{k: k, x: in[0].F32, gamma: in[1].F32, beta: in[2].F32, y: out[0].F32,
		n: int(sh[0]), c: int(sh[1]), plane: int(prod(sh[2:]))}
	t.cpg = t.c / k.groups
	x.pool.parallel(t.n*k.groups, max(1, normGrain/(t.cpg*t.plane+1)), t)
	return nil
}

type groupNormTask struct {
	k                 *groupNormKernel
	x, gamma, beta, y []float32
	n, c, cpg, plane  int
}

func (t *groupNormTask) runRange(lo, hi int) {
	for q := lo; q < hi; q++ {
		t.group(q/t.k.groups, q%t.k.groups)
	}
}

// group computes group gi of sample i the way the unfused nodes round:
// (v·scale + shift)·γ + β in float32, scale and shift from float64 statistics.
func (t *groupNormTask) group(i, gi int) {
	lo := (i*t.c + gi*t.cpg) * t.plane
	mean, v := meanVar4(t.x[lo : lo+t.cpg*t.plane])
	scale := float32(1 / math.Sqrt(v+float64(t.k.eps)))
	shift := -float32(mean) * scale
	for ch := gi * t.cpg; ch < (gi+1)*t.cpg; ch++ {
		src := t.x[(i*t.c+ch)*t.plane : (i*t.c+ch+1)*t.plane]
		dst := t.y[(i*t.c+ch)*t.plane : (i*t.c+ch+1)*t.plane]
		dst = dst[:len(src)]
		affine2F32(dst, src, scale, shift, t.gamma[ch], t.beta[ch])
		if t.k.act != actNone {
			applyAct(t.k.act, dst, dst, nil)
		}
	}
}

// perChannel reports whether t, broadcast against shape x, holds one value
// per channel (axis 1).
func perChannel(t *graph.Tensor, x []int64) bool {
	off := len(x) - len(t.Shape)
	if off < 0 || len(t.F32) != int(x[1]) {
		return false
	}
	for i, d := range t.Shape {
		if axis := off + i; axis == 1 && d != x[1] || axis != 1 && d != 1 {
			return false
		}
	}
	return true
}

// fuseGroupNorms finds the exported GroupNorm pattern among live nodes and
// replaces it with groupNormKernel steps. consts holds the values known at
// Prepare. What depends on the input's shape is checked when the step runs.
func fuseGroupNorms(live []pending, outputs []graph.ValueInfo, consts map[string]*graph.Tensor) []pending {
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
		uses[o.Name] += 2
	}
	at := map[string]int{} // value → index of its producer
	for i, pd := range live {
		for _, o := range pd.n.Outputs {
			at[o] = i
		}
	}
	// only returns the index of the single live node reading name.
	only := func(name string) int {
		if uses[name] != 1 {
			return -1
		}
		for j, pd := range live {
			if pd.n == nil {
				continue
			}
			for _, in := range pd.n.Inputs {
				if in == name {
					return j
				}
			}
		}
		return -1
	}
	for i := range live {
		r1 := live[i].n
		if r1 == nil || r1.OpType != "Reshape" || len(r1.Inputs) != 2 || r1.AttrInt("allowzero", 0) != 0 {
			continue
		}
		x := r1.Inputs[0]
		s1 := consts[r1.Inputs[1]]
		if s1 == nil || s1.DType != graph.Int64 || len(s1.I64) != 3 || s1.I64[0] != 0 || s1.I64[1] <= 0 || s1.I64[2] != -1 {
			continue
		}
		g := s1.I64[1]
		j := only(r1.Outputs[0])
		if j < 0 || live[j].n.OpType != "InstanceNormalization" || len(live[j].n.Inputs) != 3 ||
			!constAll(consts[live[j].n.Inputs[1]], int(g), 1) || !constAll(consts[live[j].n.Inputs[2]], int(g), 0) {
			continue
		}
		in := live[j].n
		k := only(in.Outputs[0])
		if k < 0 || live[k].n.OpType != "Reshape" || len(live[k].n.Inputs) != 2 || live[k].n.AttrInt("allowzero", 0) != 0 {
			continue
		}
		// the shape to restore: a constant [0, C, …] checked against the
		// input at run time, or Shape(x) itself
		var restore []int64
		shapeNode := -1
		if s2 := consts[live[k].n.Inputs[1]]; s2 != nil {
			if s2.DType != graph.Int64 || len(s2.I64) < 3 || s2.I64[0] != 0 || slices.ContainsFunc(s2.I64[1:], func(v int64) bool { return v <= 0 }) {
				continue
			}
			restore = s2.I64
		} else if q, ok := at[live[k].n.Inputs[1]]; ok && live[q].n != nil && live[q].n.OpType == "Shape" &&
			live[q].n.Inputs[0] == x && live[q].n.Attr("start") == nil && live[q].n.Attr("end") == nil {
			if uses[live[k].n.Inputs[1]] == 1 {
				shapeNode = q
			}
		} else {
			continue
		}
		mul := only(live[k].n.Outputs[0])
		gamma := channelConst(live, mul, "Mul", live[k].n.Outputs[0], consts)
		if gamma == "" {
			continue
		}
		add := only(live[mul].n.Outputs[0])
		beta := channelConst(live, add, "Add", live[mul].n.Outputs[0], consts)
		if beta == "" {
			continue
		}
		last, a := add, actNone
		if s := only(live[add].n.Outputs[0]); s >= 0 && live[s].k == siluKernel {
			last, a = s, actSiLU
		}
		fk := &groupNormKernel{groups: int(g), eps: in.AttrFloat("epsilon", 1e-5), act: a, restore: restore}
		out := live[last].n
		live[last] = pending{k: fk, n: &graph.Node{Name: r1.Label() + "+" + out.Label(), OpType: "GroupNorm",
			Inputs: []string{x, gamma, beta}, Outputs: out.Outputs}}
		for _, q := range []int{i, j, k, mul, add, shapeNode} {
			if q >= 0 && q != last {
				live[q].n = nil
			}
		}
	}
	outl := live[:0]
	for _, pd := range live {
		if pd.n != nil {
			outl = append(outl, pd)
		}
	}
	return outl
}

// constAll reports whether t is a float32 constant of n values all equal v.
func constAll(t *graph.Tensor, n int, v float32) bool {
	if t == nil || t.DType != graph.Float32 || len(t.F32) != n {
		return false
	}
	for _, x := range t.F32 {
		if x != v {
			return false
		}
	}
	return true
}

// channelConst returns the float32 constant operand of node j (of op
// type op, the other operand being v) when its shape is [C, 1, …] or
// [1, C, 1, …] — one value per channel once broadcast, which the kernel
// checks at run time — else "".
func channelConst(live []pending, j int, op, v string, consts map[string]*graph.Tensor) string {
	if j < 0 || live[j].n.OpType != op || len(live[j].n.Inputs) != 2 {
		return ""
	}
	other := live[j].n.Inputs[0]
	if other == v {
		other = live[j].n.Inputs[1]
	} else if live[j].n.Inputs[1] != v {
		return ""
	}
	t := consts[other]
	if t == nil || t.DType != graph.Float32 || len(t.Shape) < 1 || t.Len() != int64(len(t.F32)) {
		return ""
	}
	big := 0
	for _, d := range t.Shape {
		if d != 1 {
			big++
		}
	}
	if big > 1 || t.Shape[0] != int64(len(t.F32)) && (len(t.Shape) < 2 || t.Shape[1] != int64(len(t.F32))) {
		return ""
	}
	return other
}
