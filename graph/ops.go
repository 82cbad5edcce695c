package graph

//go:generate sh -c "/usr/bin/python3 gen_ops.py | gofmt > ops_gen.go"

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// The op table: everything ebmrun knows about an op type of the default ONNX
// domain, in one place. Each entry holds
//
//   - the opsets in which it exists and its arity in each (generated from
//     ONNX's schemas, ops_gen.go);
//   - Check, the attribute ranges beyond arity (kernel_shape > 0, …);
//   - Infer, its symbolic shape and value inference (infer.go);
//   - NonDiff, whether its outputs never carry a gradient;
//   - hooks where other layers hang their parts: graph/autodiff its VJP rule
//     (HookVJP), runtime/native its kernel constructor (HookNative).
//
// graph imports nothing of ebmrun's, so a hook is stored as any; the layer
// that hangs it is the one that reads it back with its own type.

// Hook keys of the layers that hang their parts on the table.
const (
	HookVJP    = "vjp"    // graph/autodiff: the op's gradient rule
	HookNative = "native" // runtime/native: the op's kernel constructor
)

// schema is the arity of one version of an op's ONNX schema. inputs has one
// letter per formal input: S (single, required), O (optional) or V
// (variadic, the last formal input).
type schema struct {
	since                        int64
	minIn, maxIn, minOut, maxOut int
	inputs                       string
}

// OpDef describes one op type.
type OpDef struct {
	Type string
	// Since is the first opset that defines the op.
	Since int64
	// Infer derives the facts of the node's outputs; nil: unknown outputs.
	Infer InferFunc
	// Check validates attribute values beyond arity (ranges, enumerations);
	// nil: none to check.
	Check func(n *Node, opset int64) error
	// NonDiff marks ops whose outputs never carry a gradient: they produce
	// shapes, indices, masks, comparisons or constants.
	NonDiff bool
	// NonDiffInputs are the inputs no gradient flows to (indices, shapes,
	// axes, scales): a differentiable value there does not make the outputs
	// depend differentiably on it.
	NonDiffInputs []int
	// IntArgs are the inputs that carry only integer arguments (an axis, a
	// list of axes), where int32 and int64 mean the same: exporters write
	// int32 there (PyTorch's CumSum axis).
	IntArgs []int

	versions []schema
	hooks    map[string]any
}

// opTable is built before any init function runs, so that every file's
// init can describe its ops in it.
var opTable = func() map[string]*OpDef {
	t := make(map[string]*OpDef, len(onnxSchemas))
	for name, vs := range onnxSchemas {
		t[name] = &OpDef{Type: name, Since: vs[0].since, versions: vs}
	}
	return t
}()

// Op returns the table's entry for an op type of the default domain, or nil
// when ONNX defines no such op.
func Op(opType string) *OpDef { return opTable[opType] }

// mustOp is Op for the table's own descriptions: a missing op is a
// programmer error.
func mustOp(opType string) *OpDef {
	o := opTable[opType]
	if o == nil {
		panic("graph: no ONNX op " + opType)
	}
	return o
}

// OpTypes lists every op type in the table, sorted.
func OpTypes() []string {
	out := make([]string, 0, len(opTable))
	for k := range opTable {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Hang attaches a layer's part (a gradient rule, a kernel constructor) to
// op type opType under key. It panics when the op is not in the table or
// the part is hung twice: both are programmer errors found at init.
func Hang(key, opType string, part any) {
	o := mustOp(opType)
	if o.hooks == nil {
		o.hooks = map[string]any{}
	}
	if _, dup := o.hooks[key]; dup {
		panic(fmt.Sprintf("graph: %s hung twice on %s", key, opType))
	}
	if key == HookVJP && o.NonDiff {
		panic(fmt.Sprintf("graph: gradient rule hung on %s, which the table marks non-differentiable", opType))
	}
	o.hooks[key] = part
}

// Hook returns the part hung on op type opType under key, or nil.
func Hook(key, opType string) any {
	if o := opTable[opType]; o != nil {
		return o.hooks[key]
	}
	return nil
}

// OpsWith lists, sorted, the op types that have a part under key.
func OpsWith(key string) []string {
	var out []string
	for k, o := range opTable {
		if o.hooks[key] != nil {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// version returns the schema in force at opset, and whether the table's
// schemas reach that opset (they stop at schemaOpset for ops that changed
// later; then only minimums are known).
func (o *OpDef) version(opset int64) (schema, bool) {
	var s schema
	found := false
	for _, v := range o.versions {
		if v.since <= opset {
			s, found = v, true
		}
	}
	return s, found && (opset <= schemaOpset || s.since > schemaOpset)
}

// ErrArity is wrapped when a node has the wrong number of inputs or outputs
// or leaves a required input empty.
var ErrArity = errors.New("wrong inputs or outputs")

// ErrAttribute is wrapped when an attribute is out of its range.
var ErrAttribute = errors.New("invalid attribute")

// CheckNode validates one default-domain node against the table at opset:
// the op exists there, its arity and required inputs, and its attribute
// ranges. Errors are *NodeError.
func CheckNode(n *Node, opset int64) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	wrap := func(err error) error { return &NodeError{n.Label(), n.OpType, err} }
	o := Op(n.OpType)
	if o == nil {
		return wrap(fmt.Errorf("%w: ONNX defines no such op", ErrUnsupportedOp))
	}
	if opset < o.Since {
		return wrap(fmt.Errorf("%w: the op needs opset %d, the model imports %d", ErrUnsupportedOp, o.Since, opset))
	}
	s, exact := o.version(opset)
	nin, nout := len(n.Inputs), len(n.Outputs)
	for nin > 0 && n.Inputs[nin-1] == "" { // trailing empty names are omitted optional inputs
		nin--
	}
	maxIn, maxOut := s.maxIn, s.maxOut
	if !exact {
		maxIn, maxOut = math.MaxInt32, math.MaxInt32
	}
	switch {
	case nin < s.minIn:
		return wrap(fmt.Errorf("%w: %d input(s), at least %d needed", ErrArity, nin, s.minIn))
	case nin > maxIn:
		return wrap(fmt.Errorf("%w: %d inputs, at most %d allowed", ErrArity, nin, maxIn))
	case nout < s.minOut:
		return wrap(fmt.Errorf("%w: %d output(s), at least %d needed", ErrArity, nout, s.minOut))
	case nout > maxOut:
		return wrap(fmt.Errorf("%w: %d outputs, at most %d allowed", ErrArity, nout, maxOut))
	}
	for i, name := range n.Inputs {
		kind := byte('O')
		switch {
		case i < len(s.inputs):
			kind = s.inputs[i]
		case len(s.inputs) > 0 && s.inputs[len(s.inputs)-1] == 'V':
			kind = 'V'
		}
		if name == "" && kind != 'O' {
			return wrap(fmt.Errorf("%w: required input %d has no name", ErrArity, i))
		}
	}
	if o.Check != nil {
		if err := o.Check(n, opset); err != nil {
			return wrap(fmt.Errorf("%w: %v", ErrAttribute, err))
		}
	}
	return nil
}

// CheckNodes runs CheckNode on every node of g (not its subgraphs) and
// reports every failure at once.
func CheckNodes(g *Graph, opset int64) error {
	var errs []error
	for _, n := range g.Nodes {
		if err := CheckNode(n, opset); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkWindow validates the window attributes shared by Conv,
// ConvTranspose and the pools.
func checkWindow(n *Node, _ int64) error {
	var bad []string
	positive := func(name string, lo int64) {
		for _, v := range n.AttrInts(name, nil) {
			if v < lo {
				bad = append(bad, fmt.Sprintf("%s %v (each must be ≥ %d)", name, n.AttrInts(name, nil), lo))
				return
			}
		}
	}
	positive("kernel_shape", 1)
	positive("strides", 1)
	positive("dilations", 1)
	positive("pads", 0)
	if k, p := n.AttrInts("kernel_shape", nil), n.AttrInts("pads", nil); k != nil && p != nil && len(p) != 2*len(k) {
		bad = append(bad, fmt.Sprintf("%d pads for %d spatial axes", len(p), len(k)))
	}
	if k, s := n.AttrInts("kernel_shape", nil), n.AttrInts("strides", nil); k != nil && s != nil && len(s) != len(k) {
		bad = append(bad, fmt.Sprintf("%d strides for %d spatial axes", len(s), len(k)))
	}
	switch a := n.AttrString("auto_pad", "NOTSET"); a {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		bad = append(bad, fmt.Sprintf("auto_pad %q (one of NOTSET, VALID, SAME_UPPER, SAME_LOWER)", a))
	}
	if g := n.AttrInt("group", 1); g < 1 {
		bad = append(bad, fmt.Sprintf("group %d (must be ≥ 1)", g))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// checkPool adds what pools need beyond the window: a kernel shape.
func checkPool(n *Node, opset int64) error {
	if n.Attr("kernel_shape") == nil {
		return errors.New("kernel_shape is required")
	}
	return checkWindow(n, opset)
}

// nonDiffOps never carry a gradient through their outputs.
var nonDiffOps = []string{
	"Shape", "Size", "Constant", "ConstantOfShape", "Range",
	"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
	"Not", "And", "Or", "Xor", "IsNaN", "IsInf",
	"ArgMax", "ArgMin", "Sign", "Floor", "Ceil", "Round",
	"NonZero", "EyeLike", "RandomNormal", "RandomUniform",
	"RandomNormalLike", "RandomUniformLike", "Mod",
}

func init() {
	for _, op := range nonDiffOps {
		mustOp(op).NonDiff = true
	}
	for op, ins := range map[string][]int{
		"Gather": {1}, "GatherElements": {1}, "GatherND": {1}, "Reshape": {1}, "Expand": {1}, "Tile": {1},
		"Slice": {1, 2, 3, 4}, "Squeeze": {1}, "Unsqueeze": {1}, "Split": {1}, "Pad": {1, 3},
		"Resize": {1, 2, 3}, "Upsample": {1}, "Dropout": {1, 2}, "CumSum": {1}, "Trilu": {1},
		"ReduceSum": {1}, "ReduceMean": {1}, "ReduceMax": {1}, "ReduceMin": {1}, "ReduceProd": {1},
		"ReduceL1": {1}, "ReduceL2": {1}, "ReduceLogSum": {1}, "ReduceLogSumExp": {1}, "ReduceSumSquare": {1},
		"Where": {0}, "ScatterElements": {1}, "ScatterND": {1}, "OneHot": {0, 1}, "TopK": {1}, "CastLike": {1},
	} {
		mustOp(op).NonDiffInputs = ins
	}
	mustOp("CumSum").IntArgs = []int{1}
	mustOp("Pad").IntArgs = []int{3}
	for _, op := range []string{"Conv", "ConvTranspose"} {
		mustOp(op).Check = checkWindow
	}
	for _, op := range []string{"AveragePool", "MaxPool", "LpPool"} {
		mustOp(op).Check = checkPool
	}
}

// Arity reports, at opset, the least and most inputs and outputs of the op
// and which input positions are required (a required input may not be
// empty-named). exact is false past the opsets whose schemas the table
// holds, where only the minimums are known (the maximums are then
// math.MaxInt32).
func (o *OpDef) Arity(opset int64) (minIn, maxIn, minOut, maxOut int, required []bool, exact bool) {
	s, exact := o.version(opset)
	minIn, maxIn, minOut, maxOut = s.minIn, s.maxIn, s.minOut, s.maxOut
	if !exact {
		maxIn, maxOut = math.MaxInt32, math.MaxInt32
	}
	for _, k := range s.inputs {
		required = append(required, k != 'O')
	}
	return minIn, maxIn, minOut, maxOut, required, exact
}

// hasRequired reports whether n has every input its schema requires at
// opset (or, past the table's schemas, at the newest known version).
func (o *OpDef) hasRequired(n *Node, opset int64) bool {
	s, _ := o.version(opset)
	for i, k := range s.inputs {
		if k != 'O' && n.Input(i) == "" {
			return false
		}
	}
	return true
}

// DiffInput reports whether a gradient can flow to input i of the op: false
// for ops marked NonDiff and inputs listed in NonDiffInputs; true for op
// types outside the table (their rules decide).
func DiffInput(opType string, i int) bool {
	o := Op(opType)
	if o == nil {
		return true
	}
	if o.NonDiff {
		return false
	}
	for _, j := range o.NonDiffInputs {
		if i == j {
			return false
		}
	}
	return true
}
