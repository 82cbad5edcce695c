package native

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// defaultOpset is assumed for models that import no default-domain opset,
// such as graphs made with graph.Builder and wrapped in a bare Model.
const defaultOpset = 21

func init() { runtime.Register(Backend{}) }

// Backend is the pure-Go backend, registered as "native".
type Backend struct{}

var _ runtime.Backend = Backend{}

// Name implements runtime.Backend.
func (Backend) Name() string { return "native" }

// Available implements runtime.Backend; the pure-Go backend always runs.
func (Backend) Available() error { return nil }

// Prepare checks the model, folds its constant parts and compiles the rest
// into a plan.
func (Backend) Prepare(m *graph.Model, opts runtime.Options) (runtime.Plan, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("native: model has no graph")
	}
	g := m.Graph
	opset := m.Opset("")
	if opset == 0 {
		opset = defaultOpset
	}
	if err := checkOps(g); err != nil {
		return nil, err
	}
	// Arity, required inputs and attribute ranges, from the op table: the
	// kernels' constructors may then index their inputs and trust them.
	if err := graph.CheckNodes(g, opset); err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	g = widenIntArgs(g)
	if err := checkDTypes(g); err != nil {
		return nil, err
	}
	order, err := g.TopoOrder()
	if err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	if err := runtime.CheckThreads(opts.Threads); err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	budget := opts.FoldElements
	if budget <= 0 {
		budget = runtime.DefaultFoldElements
	}
	p := &plan{inputs: g.RuntimeInputs(), outputs: append([]graph.ValueInfo(nil), g.Outputs...), threads: threads}
	if err := p.compile(g, order, opset, budget); err != nil {
		return nil, err
	}
	return p, nil
}

// checkOps reports every node the backend cannot run, in one error.
func checkOps(g *graph.Graph) error {
	missing := map[string][]string{}
	for _, n := range g.Nodes {
		key := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			key = n.Domain + "." + n.OpType
		} else if kernelOf(n.OpType) != nil {
			continue
		}
		missing[key] = append(missing[key], n.Label())
	}
	if len(missing) == 0 {
		return nil
	}
	keys := make([]string, 0, len(missing))
	for k := range missing {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		names := missing[k]
		if len(names) > 5 {
			names = append(names[:5:5], fmt.Sprintf("and %d more", len(missing[k])-5))
		}
		parts[i] = fmt.Sprintf("%s (nodes %s)", k, strings.Join(names, ", "))
	}
	return fmt.Errorf("native: %w: %s", graph.ErrUnsupportedOp, strings.Join(parts, "; "))
}

// checkDTypes refuses element types the backend does not compute with,
// wherever they are declared or inferred.
func checkDTypes(g *graph.Graph) error {
	var bad []string
	seen := map[string]bool{}
	note := func(what, name string, dt graph.DType) {
		if dt == graph.Undefined || dt.Computable() || seen[name] {
			return
		}
		seen[name] = true
		bad = append(bad, fmt.Sprintf("%s %q is %s", what, name, dt))
	}
	for _, in := range g.Initializers {
		note("initializer", in.Name, in.Tensor.DType)
	}
	for _, v := range g.RuntimeInputs() {
		note("input", v.Name, v.DType)
	}
	for _, v := range g.Outputs {
		note("output", v.Name, v.DType)
	}
	if known, err := graph.InferShapes(g); err == nil {
		names := make([]string, 0, len(known))
		for k := range known {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			note("value", k, known[k].DType)
		}
	}
	for _, n := range g.Nodes {
		switch n.OpType {
		case "Cast", "RandomNormal", "EyeLike":
			if a := n.Attr("to"); a != nil {
				note("Cast target of node", n.Label(), graph.DType(a.I))
			}
		case "Constant", "ConstantOfShape":
			if a := n.Attr("value"); a != nil && a.T != nil {
				note("value of node", n.Label(), a.T.DType)
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("native: %w: unsupported element types (float32, int64 and bool only): %s",
		graph.ErrUnsupportedOp, strings.Join(bad, "; "))
}

// step is one node to run: its kernel and the slots of its values (-1 for an
// omitted optional input or output).
type step struct {
	node    *graph.Node
	k       kernel
	in, out []int
}

// plan is the immutable result of Prepare.
type plan struct {
	inputs, outputs []graph.ValueInfo
	threads         int

	nslots   int
	slotName []string
	consts   map[int]*graph.Tensor // slot → folded constant
	inSlots  []int                 // slot of each runtime input
	outSlots []int                 // slot of each graph output
	outBound []bool                // output written in place by its producing step
	steps    []step
	bufOf    []int // slot → shared buffer, -1 for slots not in the pool
	nbufs    int
}

var _ runtime.Plan = (*plan)(nil)

func (p *plan) Inputs() []graph.ValueInfo  { return p.inputs }
func (p *plan) Outputs() []graph.ValueInfo { return p.outputs }
func (p *plan) Close() error               { return nil }

func (p *plan) compile(g *graph.Graph, order []*graph.Node, opset, budget int64) error {
	consts := g.InitializerMap()
	known, _ := graph.InferShapes(g) // Validate has checked it succeeds
	var errs []error
	var live []pending
	for _, n := range order {
		c := &compileCtx{node: n, opset: opset, consts: consts, known: known}
		k, err := kernelOf(n.OpType)(c)
		if err != nil {
			errs = append(errs, &graph.NodeError{Node: n.Label(), Op: n.OpType, Err: err})
			continue
		}
		if foldable(n, consts) {
			outs, err := evalNode(k, n, consts, budget)
			if err != nil {
				errs = append(errs, &graph.NodeError{Node: n.Label(), Op: n.OpType, Err: fmt.Errorf("folding constants: %w", err)})
				continue
			}
			for i, o := range n.Outputs {
				if o != "" {
					consts[o] = outs[i]
				}
			}
			continue
		}
		live = append(live, pending{n, k})
	}
	if len(errs) > 0 {
		return fmt.Errorf("native: %w", errors.Join(errs...))
	}
	live = fuse(live, p.outputs)
	live = fuseGroupNorms(live, p.outputs, consts)

	slot := map[string]int{}
	p.consts = map[int]*graph.Tensor{}
	get := func(name string) int {
		if name == "" {
			return -1
		}
		if s, ok := slot[name]; ok {
			return s
		}
		s := len(p.slotName)
		slot[name] = s
		p.slotName = append(p.slotName, name)
		if t, ok := consts[name]; ok {
			p.consts[s] = t
		}
		return s
	}
	for _, in := range p.inputs {
		p.inSlots = append(p.inSlots, get(in.Name))
	}
	for _, pd := range live {
		st := step{node: pd.n, k: pd.k}
		for _, in := range pd.n.Inputs {
			st.in = append(st.in, get(in))
		}
		for _, o := range pd.n.Outputs {
			st.out = append(st.out, get(o))
		}
		p.steps = append(p.steps, st)
	}
	producer := map[int]bool{}
	for _, st := range p.steps {
		for _, o := range st.out {
			if o >= 0 {
				producer[o] = true
			}
		}
	}
	bound := map[int]bool{}
	for _, o := range p.outputs {
		s := get(o.Name)
		p.outSlots = append(p.outSlots, s)
		b := producer[s] && !bound[s]
		bound[s] = bound[s] || b
		p.outBound = append(p.outBound, b)
	}
	p.nslots = len(p.slotName)
	p.assignBuffers(bound)
	return nil
}

// ErrFoldBudget is wrapped when constant folding would make a tensor larger
// than runtime.Options.FoldElements.
var ErrFoldBudget = errors.New("constant folding over budget")

// foldable reports whether all of a node's inputs are known constants.
func foldable(n *graph.Node, consts map[string]*graph.Tensor) bool {
	for _, in := range n.Inputs {
		if in != "" && consts[in] == nil {
			return false
		}
	}
	return true
}

// evalNode runs one kernel on constant inputs, with fresh memory.
func evalNode(k kernel, n *graph.Node, consts map[string]*graph.Tensor, budget int64) ([]*graph.Tensor, error) {
	ins := make([]*graph.Tensor, len(n.Inputs))
	for i, name := range n.Inputs {
		if name != "" {
			ins[i] = consts[name]
		}
	}
	outs := make([]*graph.Tensor, len(n.Outputs))
	for i, name := range n.Outputs {
		if name != "" {
			outs[i] = new(graph.Tensor)
		}
	}
	x := &exec{}
	if s, ok := k.(stateful); ok {
		x.state = s.newState()
	}
	if err := k.infer(ins, outs); err != nil {
		return nil, err
	}
	for _, o := range outs {
		if o != nil {
			n, err := graph.CheckedNumElements(o.Shape)
			if err != nil || n > budget {
				return nil, fmt.Errorf("%w: output shape %v is over the budget of %d elements (runtime.Options.FoldElements)", ErrFoldBudget, o.Shape, budget)
			}
			attachOwn(o, int(n))
		}
	}
	if err := k.run(x, ins, outs); err != nil {
		return nil, err
	}
	return outs, nil
}

// assignBuffers gives every computed value a shared buffer, reusing a buffer
// once the last reader of its previous value has run. Buffers grow to fit
// whatever shapes later runs bring, so the assignment holds for any batch.
func (p *plan) assignBuffers(bound map[int]bool) {
	p.bufOf = make([]int, p.nslots)
	last := make([]int, p.nslots)
	for i := range p.bufOf {
		p.bufOf[i] = -1
		last[i] = -1
	}
	for i, st := range p.steps {
		for _, s := range st.in {
			if s >= 0 {
				last[s] = i
			}
		}
		for _, s := range st.out {
			if s >= 0 && last[s] < i {
				last[s] = i
			}
		}
	}
	var free []int
	for i, st := range p.steps {
		// A reshape whose input dies here writes into the input's own
		// buffer (its run then copies nothing): the autodiff's weight
		// gradients reshape every patch matrix they multiply.
		alias := -1
		if _, ok := st.k.(*reshapeLike); ok && len(st.in) > 0 && len(st.out) == 1 {
			if in := st.in[0]; in >= 0 && last[in] == i && p.bufOf[in] >= 0 {
				alias = p.bufOf[in]
			}
		}
		for _, s := range st.out {
			if s < 0 || bound[s] {
				continue
			}
			if alias >= 0 {
				p.bufOf[s] = alias
				continue
			}
			if len(free) > 0 {
				p.bufOf[s] = free[len(free)-1]
				free = free[:len(free)-1]
			} else {
				p.bufOf[s] = p.nbufs
				p.nbufs++
			}
		}
		release := func(s int) {
			if s >= 0 && last[s] == i && p.bufOf[s] >= 0 {
				for _, f := range free {
					if f == p.bufOf[s] {
						return
					}
				}
				free = append(free, p.bufOf[s])
			}
		}
		for _, s := range st.in {
			if alias >= 0 && s == st.in[0] && aliased(p, st, alias) {
				continue // the output holds the buffer now
			}
			release(s)
		}
		for _, s := range st.out {
			release(s)
		}
	}
}

// aliased reports whether step st's output took buffer b from its input.
func aliased(p *plan, st step, b int) bool {
	return len(st.out) == 1 && st.out[0] >= 0 && p.bufOf[st.out[0]] == b
}
