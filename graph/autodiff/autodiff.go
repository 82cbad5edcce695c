package autodiff

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// MinOpset is the oldest default-domain opset the autodiff emits ops for:
// Slice with its arguments as inputs and ConstantOfShape need it.
const MinOpset = 11

// ErrNoRule is wrapped (inside a *graph.NodeError per node) when a node on
// the differentiated path has no gradient rule. It wraps
// graph.ErrUnsupportedOp, so callers that skip unsupported models catch it too.
var ErrNoRule = fmt.Errorf("no gradient rule: %w", graph.ErrUnsupportedOp)

// Options tune VJP. The zero value differentiates and keeps every original
// output.
type Options struct {
	// Promote turns the initializers named in wrt into graph inputs (same
	// name, dtype and shape), so that a trainer feeds the parameters and reads
	// their gradients. Without it an initializer keeps its stored value.
	Promote bool
	// GradsOnly drops the original outputs: the new model's outputs are the
	// gradients alone.
	GradsOnly bool
}

// Result names what VJP added to the model.
type Result struct {
	// Cotangents are the new inputs, one per differentiated output (in the
	// order of the of argument), each with that output's dtype and shape.
	Cotangents []string
	// Grads are the new outputs, one per wrt name (same order): the
	// vector–Jacobian product Σ_k cotangent_k · ∂of_k/∂wrt.
	Grads []string
	// Promoted lists the initializers that became inputs.
	Promoted []string
}

// VJP returns a new model that computes m's forward pass and, for
// cotangents fed as new inputs "cot_<output>", the gradients
// Σ_k ⟨cot_k, of_k⟩ with respect to each name in wrt, as outputs
// "grad_<name>". wrt may name graph inputs, initializers or intermediate
// values. The new graph is made of ordinary ONNX ops in m's opset, so it runs
// on every backend and can be differentiated again. m is not modified; the
// new model shares m's initializer tensors.
func VJP(m *graph.Model, of, wrt []string, opts Options) (*graph.Model, *Result, error) {
	return vjp(m, of, wrt, opts, nil)
}

// seedFunc makes the cotangent of output o inside the new graph instead of
// adding an input for it; "" means "add an input".
type seedFunc func(b *builder, o string) (string, error)

func vjp(m *graph.Model, of, wrt []string, opts Options, seed seedFunc) (*graph.Model, *Result, error) {
	b, res, err := build(m, of, wrt, opts, seed)
	if err != nil {
		return nil, nil, err
	}
	b.finish()
	return b.model(), res, nil
}

// build extends a copy of m with the backward pass; the caller finishes it.
func build(m *graph.Model, of, wrt []string, opts Options, seed seedFunc) (*builder, *Result, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, errors.New("autodiff: model has no graph")
	}
	if len(of) == 0 || len(wrt) == 0 {
		return nil, nil, errors.New("autodiff: need at least one output to differentiate and one value to differentiate with respect to")
	}
	b, err := newBuilder(m)
	if err != nil {
		return nil, nil, err
	}
	g := b.g
	res := &Result{}

	outDecl := map[string]graph.ValueInfo{}
	for _, o := range m.Graph.Outputs {
		outDecl[o.Name] = o
	}
	for _, o := range of {
		if _, ok := b.info[o]; !ok && b.producer[o] == nil {
			return nil, nil, fmt.Errorf("autodiff: output %q is not a value of the graph", o)
		}
		if !b.isFloat(o) {
			return nil, nil, fmt.Errorf("autodiff: output %q is %s; only float32 values are differentiable", o, b.dtype(o))
		}
	}
	inits := m.Graph.InitializerMap()
	for _, w := range wrt {
		if _, ok := b.info[w]; !ok {
			return nil, nil, fmt.Errorf("autodiff: %q is not a value of the graph", w)
		}
		if !b.isFloat(w) {
			return nil, nil, fmt.Errorf("autodiff: %q is %s; only float32 values are differentiable", w, b.dtype(w))
		}
		if t, ok := inits[w]; ok && opts.Promote {
			g.Initializers = removeInit(g.Initializers, w)
			if g.Input(w) == nil {
				g.Inputs = append(g.Inputs, graph.ValueInfo{Name: w, DType: t.DType, Shape: graph.Fixed(t.Shape...), HasShape: true})
			}
			delete(b.consts, w)
			b.info[w].Value = nil
			res.Promoted = append(res.Promoted, w)
		}
	}

	// Cotangents: inputs, or values a caller's seed makes.
	seeds := map[string]string{}
	for _, o := range of {
		if _, dup := seeds[o]; dup {
			return nil, nil, fmt.Errorf("autodiff: output %q listed twice", o)
		}
		name := ""
		if seed != nil {
			if name, err = seed(b, o); err != nil {
				return nil, nil, err
			}
		}
		if name == "" {
			name = b.unique("cot_" + o)
			vi := graph.ValueInfo{Name: name, DType: graph.Float32}
			if d, ok := outDecl[o]; ok && d.HasShape {
				vi.Shape, vi.HasShape = d.Shape, true
			} else if in := b.info[o]; in != nil && in.HasShape {
				vi.Shape, vi.HasShape = in.Shape, true
			}
			g.Inputs = append(g.Inputs, vi)
			b.setInfo(name, &vinfo{DType: graph.Float32, Shape: vi.Shape, HasShape: vi.HasShape})
			res.Cotangents = append(res.Cotangents, name)
		}
		seeds[o] = name
	}

	order, err := b.forwardOrder()
	if err != nil {
		return nil, nil, err
	}
	active := b.activeSet(order, wrt)
	grads, err := b.backprop(order, seeds, active, wrt)
	if err != nil {
		return nil, nil, err
	}

	var outs []graph.ValueInfo
	if !opts.GradsOnly {
		for _, o := range g.Outputs {
			// Declare what inference knows: some runtimes need the rank of
			// an output (onnxruntime_go cannot return an undeclared scalar).
			if in := b.info[o.Name]; !o.HasShape && in != nil && in.HasShape {
				o.Shape, o.HasShape = in.Shape, true
			}
			if in := b.info[o.Name]; o.DType == graph.Undefined && in != nil {
				o.DType = in.DType
			}
			outs = append(outs, o)
		}
	}
	for _, w := range wrt {
		gname := grads[w]
		if gname == "" {
			gname = b.zerosLike(w)
		}
		name := b.unique("grad_" + sanitize(w))
		b.node("Identity", []string{gname}, []string{name})
		in := b.info[w]
		outs = append(outs, graph.ValueInfo{Name: name, DType: graph.Float32, Shape: in.Shape, HasShape: in.HasShape})
		res.Grads = append(res.Grads, name)
	}
	g.Outputs = outs
	return b, res, nil
}

func removeInit(list []graph.Initializer, name string) []graph.Initializer {
	out := list[:0:0]
	for _, in := range list {
		if in.Name != name {
			out = append(out, in)
		}
	}
	return out
}

// sanitize keeps output names readable when values are called "/l1/Gemm_output_0".
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, strings.TrimLeft(s, "/"))
}

// activeSet marks the values that depend differentiably on wrt.
func (b *builder) activeSet(order []*graph.Node, wrt []string) map[string]bool {
	active := map[string]bool{}
	for _, w := range wrt {
		active[w] = true
	}
	for _, n := range order {
		on := false
		for i, in := range n.Inputs {
			if in != "" && active[in] && graph.DiffInput(n.OpType, i) {
				on = true
			}
		}
		if !on {
			continue
		}
		for _, o := range n.Outputs {
			if o != "" && b.isFloat(o) {
				active[o] = true
			}
		}
	}
	return active
}

// backprop runs reverse accumulation over nodes (in forward order), starting
// from the cotangents in seeds, and returns the gradient of each name in want
// ("" when none reaches it). Only active values receive gradients.
func (b *builder) backprop(nodes []*graph.Node, seeds map[string]string, active map[string]bool, want []string) (map[string]string, error) {
	// Keep only nodes on a path from an active value to a seeded value.
	reach := map[string]bool{}
	for o := range seeds {
		reach[o] = true
	}
	var path []*graph.Node
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		hit := false
		for _, o := range n.Outputs {
			if o != "" && reach[o] && active[o] {
				hit = true
			}
		}
		if !hit {
			continue
		}
		path = append(path, n)
		for i, in := range n.Inputs {
			if in != "" && active[in] && graph.DiffInput(n.OpType, i) {
				reach[in] = true
			}
		}
	}
	var missing []error
	for _, n := range path {
		if (n.Domain != "" && n.Domain != "ai.onnx") || ruleOf(n.OpType) == nil {
			missing = append(missing, &graph.NodeError{Node: n.Label(), Op: n.OpType, Err: ErrNoRule})
		}
	}
	if len(missing) > 0 {
		sort.Slice(missing, func(i, j int) bool { return missing[i].Error() < missing[j].Error() })
		return nil, fmt.Errorf("autodiff: %w", errors.Join(missing...))
	}

	contrib := map[string][]string{}
	for o, s := range seeds {
		contrib[o] = append(contrib[o], s)
	}
	var errs []error
	for _, n := range path {
		gouts := make([]string, len(n.Outputs))
		any := false
		for i, o := range n.Outputs {
			if o != "" && active[o] && len(contrib[o]) > 0 {
				gouts[i] = b.sum(contrib[o])
				contrib[o] = []string{gouts[i]}
				any = true
			}
		}
		if !any {
			continue
		}
		need := make([]bool, len(n.Inputs))
		for i, in := range n.Inputs {
			need[i] = in != "" && active[in] && reach[in] && graph.DiffInput(n.OpType, i)
		}
		gins, err := ruleOf(n.OpType)(&ruleCtx{b: b, n: n, need: need}, gouts)
		if err != nil {
			errs = append(errs, &graph.NodeError{Node: n.Label(), Op: n.OpType, Err: err})
			continue
		}
		for i, gi := range gins {
			if gi != "" && i < len(n.Inputs) && need[i] {
				contrib[n.Inputs[i]] = append(contrib[n.Inputs[i]], gi)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("autodiff: %w", errors.Join(errs...))
	}
	out := map[string]string{}
	for _, w := range want {
		if len(contrib[w]) > 0 {
			out[w] = b.sum(contrib[w])
		}
	}
	return out, nil
}

// ruleCtx is what a gradient rule sees: the builder, the node, and which
// inputs need a gradient.
type ruleCtx struct {
	b    *builder
	n    *graph.Node
	need []bool
}

// in returns input i's name ("" when absent).
func (c *ruleCtx) in(i int) string { return c.n.Input(i) }

// wants reports whether input i needs a gradient.
func (c *ruleCtx) wants(i int) bool { return i < len(c.need) && c.need[i] }

// rule computes input gradients from output gradients ("" for outputs that
// receive none). It returns one name per input, "" where it gives none.
type rule func(c *ruleCtx, gout []string) ([]string, error)

// register hangs a gradient rule on the op table's entries for ops; the
// table is the only list of what differentiates.
func register(r rule, ops ...string) {
	for _, op := range ops {
		graph.Hang(graph.HookVJP, op, r)
	}
}

// ruleOf returns op's gradient rule, or nil.
func ruleOf(op string) rule {
	r, _ := graph.Hook(graph.HookVJP, op).(rule)
	return r
}

// Ops lists the op types that have a gradient rule.
func Ops() []string { return graph.OpsWith(graph.HookVJP) }
