// Package onnxpb holds the Go bindings generated from onnx.proto. Only the
// importer uses them; everything else sees graph.Model.
package onnxpb

//go:generate sh gen.sh
