package ort

import (
	"errors"
	"sync/atomic"
	"time"
)

// ErrTimeout is wrapped by the error of a Run that onnxruntime stopped
// because it ran past the call deadline (SetCallTimeout).
var ErrTimeout = errors.New("ort: model call ran past its deadline")

var callTimeout atomic.Int64 // nanoseconds; 0: no deadline

// SetCallTimeout bounds every later Session.Run: past d, onnxruntime's
// terminate flag stops the call and Run returns an error wrapping
// ErrTimeout. onnxruntime cannot be interrupted otherwise, and a model (an
// ONNX Loop with a huge trip count, say) may run without end. d ≤ 0 removes
// the deadline. Runs under a deadline do not use the IoBinding path, whose
// C API takes no run options.
func SetCallTimeout(d time.Duration) { callTimeout.Store(int64(max(d, 0))) }
