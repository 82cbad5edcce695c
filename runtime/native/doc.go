// Package native is ebmrun's pure-Go backend: it runs graph.Model values
// without cgo, on every platform Go supports, and registers itself with the
// runtime package as "native" when imported:
//
//	import _ "github.com/ebmrun/ebmrun/runtime/native"
//
//	b, _ := runtime.Get("native")
//	plan, _ := b.Prepare(model, runtime.Options{Threads: 0}) // 0: all cores
//	sess, _ := plan.NewSession()
//	err := sess.Run([]*graph.Tensor{x, sigma}, []*graph.Tensor{score})
//
// Prepare validates the graph, reports every unsupported operator (and
// element type other than float32, int64 and bool) in one error wrapping
// graph.ErrUnsupportedOp, orders the nodes, folds everything that depends only
// on initializers and Constant nodes, and assigns each remaining value a
// buffer shared with values whose lifetimes do not overlap. Operators are a
// registry keyed by op type (see SupportedOps); opset-dependent forms
// (attributes that became inputs, Softmax's axis semantics, GroupNormalization's
// per-group scale before opset 21) follow the model's default-domain opset.
//
// A session owns its buffers and a small pool of worker goroutines. Shapes
// are worked out on every run (cheaply, without allocating), so the batch
// size may change between calls; buffers grow when a run needs more and are
// reused afterwards, so steady-state runs allocate nothing. Matrix products
// (Gemm, MatMul, and Conv/ConvTranspose through im2col/col2im) go through
// gonum's single-precision BLAS kernels, tiled and split across the
// session's workers; large elementwise ops are split as well.
package native

//go:generate go run asmgen.go
