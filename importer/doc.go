// Package importer converts between ONNX files and graph.Model, and decides
// the score-model contract of a model (ModelSpec).
//
// Load reads a file, Parse decodes bytes without judging them, Check decides
// whether ebmrun can take the model (IR version 3–10, default-domain opset
// 11–21, known op types, a valid graph), and Encode writes a model back.
// Decoding never trusts the file: declared tensor sizes are checked against
// Limits before anything is allocated, and external data is read only from
// regular files inside the model's own folder (no absolute paths, no "..",
// no symbolic links out).
//
// The protobuf bindings are generated from onnx.proto under a renamed proto
// package (internal/onnxpb) and never leave this package.
//
// Roles come from the ebmrun.* metadata keys (MetaKind, MetaSigmas, …),
// else from input names, dtypes and shapes; Overrides (command-line flags)
// win over both, and ModelSpec.Reasons records where each decision came from.
// A β schedule without a σ schedule marks a diffusion model, whose second
// input is then its time step (often called labels) and whose output is ε.
// ModelSpec.Metadata is the spec as those keys, and SetMetadata writes them
// into ONNX bytes changing nothing else (`ebmrun meta`).
//
// A well-formed model using something ebmrun does not take fails with an
// *UnsupportedError naming the feature (it wraps ErrUnsupported).
package importer
