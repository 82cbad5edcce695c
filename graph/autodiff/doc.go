// Package autodiff differentiates models at the level of the graph IR. It
// does not compute gradients itself: it builds new graphs of ordinary ONNX
// ops (in the model's own opset) that compute them, so a gradient graph runs
// on every backend — the pure-Go one, and onnxruntime after
// importer.Encode — and can itself be differentiated again, which sliced
// score matching's parameter gradients need.
//
// VJP is the one transform: given output names and the values to
// differentiate with respect to, it returns a model that computes the
// forward pass, takes one cotangent input per output ("cot_<output>", the
// output's shape) and returns the vector–Jacobian products as outputs
// ("grad_<name>"). With Options.Promote, differentiated initializers become
// inputs, so a trainer feeds parameters and reads their gradients.
//
//	gm, res, err := autodiff.VJP(m, []string{"score"}, []string{"x"}, autodiff.Options{})
//	// inputs: x, sigma, res.Cotangents[0]; outputs: score, res.Grads[0]
//
// Two builders cover what the samplers, evaluators and trainer need:
// ScoreFromEnergy turns an energy model into a score model (s = −∇x E), and
// SlicedScoreMatching adds the Hutchinson term vᵀ∇x(vᵀs) and the per-sample
// SSM objectives for a projection input v — one VJP, never a Jacobian.
//
// Each rule hangs on its op's entry in graph's op table (Ops lists them);
// the ops the table marks non-differentiable (Shape, Size, Constant, Equal,
// Range, …) and int64 arithmetic are constants. A node on the differentiated path without a rule is an
// error naming every such node at once (errors.Is ErrNoRule). Gradients of
// broadcast operands are summed over the broadcast axes, found from shapes
// graph.Facts infers symbolically as each node is emitted (a named batch "N" against a fixed 1
// means reduce); where the shapes cannot tell, it refuses rather than guess.
// Common subexpressions are shared and nodes that no output needs are pruned.
package autodiff
