package native_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
)

// fuzzMaxInput bounds the values of one fuzzed input tensor, so the fuzzer
// explores graphs rather than large arithmetic.
const fuzzMaxInput = 1 << 14

// fuzzHang is how long one input may take before it counts as a hang.
const fuzzHang = 10 * time.Second

// FuzzDecodePrepareRun takes any bytes through the whole path a model file
// takes: Decode (with small limits), native Prepare, then one Run on inputs
// of the declared shapes (symbolic dimensions 1). Each step may refuse; none
// may panic. Seeded from every model in testdata.
func FuzzDecodePrepareRun(f *testing.F) {
	root := testenv.Root(f)
	for _, pattern := range []string{"testdata/models/*/model.onnx", "testdata/malformed/*.onnx", "testdata/hostile/meta_*.onnx", "models/swissroll/model.onnx"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil && len(data) < 1<<20 {
				f.Add(data)
			}
		}
	}
	old := membudget.Set(256 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	backend, err := runtime.Get("native")
	if err != nil {
		f.Fatal(err)
	}
	limits := importer.Limits{MaxTensorBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: the fuzzer records the input of a
		// process that panics, and a Run cannot be interrupted otherwise.
		// Hangs are counted in CPU time, so a fuzzer starved by other work
		// on the machine does not report a slow clock as a finding.
		stop := watchCPU(fuzzHang, func(used time.Duration) {
			panic(fmt.Sprintf("input of %d bytes ran for more than %v of CPU time (%v)", len(data), fuzzHang, used))
		})
		defer stop()
		m, err := importer.Decode(data, importer.Options{Limits: limits})
		if err != nil {
			return
		}
		plan, err := backend.Prepare(m, runtime.Options{Threads: 1})
		if err != nil {
			return
		}
		defer plan.Close()
		var ins []*graph.Tensor
		for _, in := range plan.Inputs() {
			x := fuzzInput(in)
			if x == nil {
				return
			}
			ins = append(ins, x)
		}
		sess, err := plan.NewSession()
		if err != nil {
			return
		}
		defer sess.Close()
		outs := make([]*graph.Tensor, len(plan.Outputs()))
		for i := range outs {
			outs[i] = &graph.Tensor{}
		}
		_ = sess.Run(ins, outs)
	})
}

// fuzzInput is a tensor of in's declared shape (unknown dimensions 1)
// filled with small values, or nil when it would be large or its dtype is
// not one the runtime computes with.
func fuzzInput(in graph.ValueInfo) *graph.Tensor {
	shape := make([]int64, len(in.Shape))
	n := int64(1)
	for i, d := range in.Shape {
		shape[i] = 1
		if d.Known() {
			shape[i] = d.Value
		}
		if shape[i] < 0 || shape[i] > fuzzMaxInput {
			return nil
		}
		n *= shape[i]
		if n > fuzzMaxInput {
			return nil
		}
	}
	switch in.DType {
	case graph.Float32:
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7) - 3
		}
		return graph.NewFloat32(shape, v)
	case graph.Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(i % 3)
		}
		return graph.NewInt64(shape, v)
	case graph.Bool:
		return graph.NewBool(shape, make([]bool, n))
	}
	return nil
}

// watchCPU calls hung once the process has used more than limit of CPU
// time since the call, checking every 100 ms of wall time; stop ends the
// watch.
func watchCPU(limit time.Duration, hung func(used time.Duration)) (stop func()) {
	start := cpuTime()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if used := cpuTime() - start; used > limit {
					hung(used)
				}
			}
		}
	}()
	return func() { close(done) }
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
