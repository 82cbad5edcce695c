//go:build cgo

package testenv

// Cgo reports whether this build has cgo, and so onnxruntime: a test lists
// the ort backends only where they can exist, so that under CI=true their
// absence in a cgo build is a failure, not a skip.
const Cgo = true
