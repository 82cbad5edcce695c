package native_test

import (
	"testing"

	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/runtime/runtimetest"
)

// TestConformance runs the shared suite: PyTorch fixtures and ONNX's node
// tests for every operator the backend claims.
func TestConformance(t *testing.T) { runtimetest.Run(t, "native") }
