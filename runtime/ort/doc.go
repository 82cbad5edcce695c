// Package ort runs models on onnxruntime, through github.com/yalue/onnxruntime_go.
//
// Importing it registers two backends with package runtime: "ort" (CPU) and
// "ort-cuda" (the CUDA execution provider on GPU runtime.Options.Device):
//
//	import _ "github.com/ebmrun/ebmrun/runtime/ort"
//
//	b, err := runtime.Get("ort")
//
// The onnxruntime shared library is loaded when first needed, from the first
// of these that loads: runtime.Options.LibPath (or SetLibPath), the
// ONNXRUNTIME_LIB environment variable, and the cache folder that
// scripts/install-onnxruntime.sh fills (see CachePath). When none loads, the
// error (a *LoadError) lists every path tried and why it failed. A process
// keeps the first library it loads.
//
// Models reach onnxruntime encoded to ONNX by the importer, so a graph built or
// transformed in Go (a gradient graph, say) runs the same as a file. Sessions
// share their plan's onnxruntime session, take float32, int64 and bool
// tensors, and accept a different batch size on every run; while the shapes
// stay the same they reuse their onnxruntime tensors.
//
// Without cgo (CGO_ENABLED=0) the package still builds and registers both
// names, whose Available says how to get a build that can use them.
package ort
