//go:build cgo

package ort_test

import (
	"testing"

	"github.com/ebmrun/ebmrun/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, "ort")
}
