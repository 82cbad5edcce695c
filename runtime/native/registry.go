package native

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// kernel is one compiled node. infer sets every present output's DType and
// Shape from the inputs (reading input values only where the op takes shape
// arguments as tensors); the session then gives each output memory and calls
// run, which must write every output element. Both must not allocate once
// the session's buffers are large enough, and must return errors rather than
// panic on bad values.
type kernel interface {
	infer(in, out []*graph.Tensor) error
	run(x *exec, in, out []*graph.Tensor) error
}

// stateful kernels keep per-session state (scratch memory, parallel task
// structs); the session creates it once and passes it in exec.state.
type stateful interface {
	newState() any
}

// exec is what a kernel sees of the session running it.
type exec struct {
	pool  *pool
	state any
}

// compileCtx is what an op's constructor sees of its node.
type compileCtx struct {
	node   *graph.Node
	opset  int64 // default-domain opset in force
	consts map[string]*graph.Tensor
	known  map[string]graph.ValueInfo // inferred types and shapes, where known
}

// inputRank returns input i's rank when known at prepare time, else -1.
func (c *compileCtx) inputRank(i int) int {
	if t := c.constInput(i); t != nil {
		return len(t.Shape)
	}
	if v, ok := c.known[c.node.Input(i)]; ok && v.HasShape {
		return len(v.Shape)
	}
	return -1
}

// constInput returns input i when its value is known at prepare time.
func (c *compileCtx) constInput(i int) *graph.Tensor {
	name := c.node.Input(i)
	if name == "" {
		return nil
	}
	return c.consts[name]
}

// hasInput reports whether optional input i is present.
func (c *compileCtx) hasInput(i int) bool { return c.node.Input(i) != "" }

type opFunc func(c *compileCtx) (kernel, error)

// register hangs op's kernel constructor on the op table (graph.Op); the
// table is the only list of what the backend runs.
func register(op string, f opFunc) { graph.Hang(graph.HookNative, op, f) }

// kernelOf returns op's kernel constructor, or nil.
func kernelOf(op string) opFunc {
	f, _ := graph.Hook(graph.HookNative, op).(opFunc)
	return f
}

// SupportedOps lists the operator types the backend implements.
func SupportedOps() []string { return graph.OpsWith(graph.HookNative) }

// unsupported reports an attribute value or input form the backend does not
// implement; it wraps graph.ErrUnsupportedOp so callers can skip such models.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", graph.ErrUnsupportedOp, fmt.Sprintf(format, args...))
}

// intsArg is an integer-list argument that is an attribute in older opsets
// and an optional input in newer ones (Squeeze axes, Split sizes, …).
type intsArg struct {
	vals  []int64
	input int  // input index holding the values, or -1
	given bool // false: neither attribute nor input present
}

// moved reads an argument that is attribute attr before opset since and
// input idx from then on.
func (c *compileCtx) moved(attr string, idx int, since int64) intsArg {
	if c.opset >= since {
		if !c.hasInput(idx) {
			return intsArg{input: -1}
		}
		if t := c.constInput(idx); t != nil {
			v, err := t.AsInt64s()
			if err == nil {
				return intsArg{vals: v, input: -1, given: true}
			}
		}
		return intsArg{input: idx, given: true}
	}
	if a := c.node.Attr(attr); a != nil {
		return intsArg{vals: a.Ints, input: -1, given: true}
	}
	return intsArg{input: -1}
}

// get returns the argument's values for this run.
func (a *intsArg) get(in []*graph.Tensor) ([]int64, error) {
	if a.input < 0 {
		return a.vals, nil
	}
	t := arg(in, a.input)
	if t == nil {
		return nil, nil
	}
	if t.DType != graph.Int64 {
		return nil, fmt.Errorf("input %d must be int64, got %s", a.input, t.DType)
	}
	return t.I64, nil
}

// arg returns input i or nil when it is absent.
func arg(in []*graph.Tensor, i int) *graph.Tensor {
	if i >= 0 && i < len(in) {
		return in[i]
	}
	return nil
}

// SupportedOps lists the operator types the backend implements, for
// runtimetest.OpClaimer.
func (Backend) SupportedOps() []string { return SupportedOps() }
