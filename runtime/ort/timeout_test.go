//go:build cgo

package ort_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// A Loop with a trip count of 2⁶² would run for centuries; the call
// deadline stops it through onnxruntime's terminate flag, and the session
// runs normally again afterwards.
func TestCallTimeoutStopsEndlessLoop(t *testing.T) {
	b := requireORT(t)
	m, err := importer.Load(filepath.Join(testenv.Root(t), "testdata", "hostile", "loop_forever.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ort.SetCallTimeout(300 * time.Millisecond)
	defer ort.SetCallTimeout(0)
	plan, err := b.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	x := graph.NewFloat32([]int64{1, 2}, []float32{0, 0})
	for range 2 {
		start := time.Now()
		err = sess.Run([]*graph.Tensor{x}, []*graph.Tensor{{}})
		if !errors.Is(err, ort.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("stopped after %v", d)
		}
	}
}
