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
package graph
