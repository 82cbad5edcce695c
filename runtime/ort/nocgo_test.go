//go:build !cgo

package ort_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

func TestWithoutCgoSaysHowToFix(t *testing.T) {
	for _, name := range []string{"ort", "ort-cuda"} {
		_, err := runtime.Get(name)
		if !errors.Is(err, ort.ErrNoCgo) || !errors.Is(err, runtime.ErrUnavailable) || !strings.Contains(err.Error(), "built without cgo (CGO_ENABLED=0); rebuild with cgo to use onnxruntime") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
