//go:build !cgo

package ort

import (
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

func init() {
	runtime.Register(&Backend{name: "ort"})
	runtime.Register(&Backend{name: "ort-cuda"})
}

// Backend stands in for the onnxruntime backends in a build without cgo, so
// that "ort" is a known name that explains why it cannot run.
type Backend struct{ name string }

var _ runtime.Backend = (*Backend)(nil)

func (b *Backend) Name() string { return b.name }

// Available always fails: onnxruntime is reached through cgo.
func (b *Backend) Available() error {
	return ErrNoCgo
}

func (b *Backend) Prepare(*graph.Model, runtime.Options) (runtime.Plan, error) {
	return nil, b.Available()
}

// PrepareONNX fails as Prepare does.
func (b *Backend) PrepareONNX([]byte, runtime.Options) (runtime.Plan, error) {
	return nil, b.Available()
}

// LoadedLibrary returns empty strings: nothing is loaded without cgo.
func LoadedLibrary() (path, version string) { return "", "" }
