package ort

import (
	"fmt"
	"strings"

	"github.com/ebmrun/ebmrun/runtime"
)

// ErrNoCgo is wrapped by every error of a build without cgo, where
// onnxruntime cannot be reached; it also wraps runtime.ErrUnavailable.
var ErrNoCgo = fmt.Errorf("ort: built without cgo (CGO_ENABLED=0); rebuild with cgo to use onnxruntime: %w", runtime.ErrUnavailable)

// CUDAError says the CUDA execution provider cannot run here, in one line;
// Detail keeps onnxruntime's own (long) message. It wraps
// runtime.ErrUnavailable.
type CUDAError struct {
	Detail string
}

func (e *CUDAError) Error() string {
	cause := "its provider failed to start"
	switch d := e.Detail; {
	case strings.Contains(d, "cannot open shared object") || strings.Contains(d, "Failed to load library"):
		cause = "onnxruntime's CUDA provider library is not installed"
	case strings.Contains(d, "CUDA driver") || strings.Contains(d, "no CUDA-capable") || strings.Contains(d, "CUDA failure"):
		cause = "no usable NVIDIA GPU"
	}
	return "ort: CUDA unavailable: " + cause + " (needs onnxruntime's GPU build, CUDA 12, cuDNN 9 and a GPU; " + InstallScript + " installs the CPU build)"
}

func (e *CUDAError) Unwrap() error { return runtime.ErrUnavailable }
