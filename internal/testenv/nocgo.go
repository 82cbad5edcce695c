//go:build !cgo

package testenv

// Cgo reports whether this build has cgo (see cgo.go).
const Cgo = false
