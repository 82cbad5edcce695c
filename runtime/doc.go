// Package runtime runs ONNX score networks held as graph.Model values.
//
// The lifecycle follows tract's: a Backend prepares a model once into an
// immutable Plan that goroutines share; each goroutine makes its own Session,
// which owns its scratch memory, and calls Run many times:
//
//	b, _ := runtime.Get("auto")         // "native", "ort", "ort-cuda"
//	plan, _ := b.Prepare(model, runtime.Options{})
//	sess, _ := plan.NewSession()
//	out := []*graph.Tensor{new(graph.Tensor)}
//	err := sess.Run([]*graph.Tensor{x, sigma}, out)
//
// Backends live in sub-packages and register themselves when imported:
// runtime/native (pure Go, always there) and runtime/ort (onnxruntime).
// The runtimetest package holds the conformance suite every backend runs.
package runtime
