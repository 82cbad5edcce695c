#!/bin/sh
# Regenerates onnx.pb.go from Debian's onnx.proto (python3-onnx 1.12) with the
# proto package renamed to ebmrun_onnx, so it cannot clash in the protobuf
# registry with another ONNX binding linked into the same binary.
# Needs: protoc (Debian protobuf-compiler) and protoc-gen-go v1.36.12:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -eu
cd "$(dirname "$0")"
src=${ONNX_PROTO:-/usr/lib/python3/dist-packages/onnx/onnx.proto}
sed -e 's/^package onnx;/package ebmrun_onnx;/' \
    -e '/^package ebmrun_onnx;/a option go_package = "github.com/ebmrun/ebmrun/importer/internal/onnxpb";' \
    "$src" > onnx.proto
PATH="$(go env GOPATH)/bin:$PATH" protoc --go_out=. --go_opt=paths=source_relative onnx.proto
