// Package graph is ebmrun's in-memory model representation: tensors, declared
// shapes with symbolic dimensions (a batch "N"), nodes with typed attributes,
// initializers, and the model-level facts of an ONNX file (IR version,
// opsets, metadata). It knows nothing of protobuf; package importer converts
// between ONNX bytes and these types.
//
// A Graph is checked with Validate (dangling names, duplicates, cycles, and
// contradictions that InferShapes finds), ordered with TopoOrder (iterative,
// so long chains need no deep recursion), and built from Go code with a
// Builder. Backends and the autodiff work on this IR, so a graph built or
// transformed in Go runs anywhere a decoded one does.
//
// # The op table
//
// Everything ebmrun knows about an op type of the default ONNX domain is in
// one entry of one table (Op, OpDef):
//
//   - the opset that introduced it and its arity in every opset — how many
//     inputs and outputs, which inputs are required — generated from ONNX's
//     schemas (gen_ops.py → ops_gen.go);
//   - attribute ranges (Check: kernel_shape > 0, strides ≥ 1, …); CheckNode
//     validates a node against both (the native backend's Prepare calls it);
//   - symbolic shape and value inference (Infer, run by Facts, the only
//     inference engine; InferShapes and the autodiff use it). Facts carry the
//     symbolic values of shape vectors, so Shape → Gather → Concat → Reshape
//     chains keep a symbolic batch;
//   - whether its outputs carry gradients (NonDiff);
//   - hooks where the layers above hang their parts by key: graph/autodiff its
//     gradient rule (HookVJP), runtime/native its kernel constructor
//     (HookNative). A layer has no op list of its own: what the native
//     backend runs is OpsWith(HookNative), what differentiates is
//     OpsWith(HookVJP).
//
// Window arithmetic (pads, auto_pad, dilations, strides, ceil mode, output
// size of Conv, ConvTranspose and the pools) is Window and Axis, and a
// Constant node's value is ConstantValue: one copy each.
package graph
