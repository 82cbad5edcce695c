//go:build cgo

package ort_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// requireORT returns the ort backend, or fails (CI) or skips when the library
// is not installed.
func requireORT(t *testing.T) runtime.Backend {
	t.Helper()
	b, err := runtime.Get("ort")
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	return b
}

// affine builds y = x·W + b with a symbolic batch, plus a rank-0 output
// (the sum of y) and an int64 pass-through, so one model exercises batch
// changes, scalars and a second dtype.
func affine() *graph.Model {
	b := graph.NewBuilder("affine")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	k := b.Input("k", graph.Int64, graph.Shape{{Param: "N"}})
	w := b.Const("w", graph.NewFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
	c := b.Const("c", graph.NewFloat32([]int64{3}, []float32{0.5, -0.5, 1}))
	y := b.Op("Add", b.Op("MatMul", x, w)[0], c)[0]
	b.Output("y", y, graph.Float32, graph.Shape{{Param: "N"}, {Value: 3}})
	b.Output("total", b.Op1("ReduceSum", []string{y}, graph.IntAttr("keepdims", 0)), graph.Float32, graph.Shape{})
	b.Output("k2", b.Op("Add", k, k)[0], graph.Int64, graph.Shape{{Param: "N"}})
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: b.Graph()}
}

func runAffine(t *testing.T, sess runtime.Session, n int, outs []*graph.Tensor) {
	t.Helper()
	x := graph.NewFloat32([]int64{int64(n), 2}, nil)
	k := graph.NewInt64([]int64{int64(n)}, nil)
	for i := range n {
		x.F32[2*i], x.F32[2*i+1] = float32(i), 1
		k.I64[i] = int64(i)
	}
	if err := sess.Run([]*graph.Tensor{x, k}, outs); err != nil {
		t.Fatalf("batch %d: %v", n, err)
	}
	y, total, k2 := outs[0], outs[1], outs[2]
	if y.DType != graph.Float32 || len(y.Shape) != 2 || y.Shape[0] != int64(n) || y.Shape[1] != 3 || len(y.F32) != 3*n {
		t.Fatalf("batch %d: y is %s %v with %d values", n, y.DType, y.Shape, len(y.F32))
	}
	var sum float32
	for i := range n {
		want := [3]float32{float32(i) + 4 + 0.5, 2*float32(i) + 5 - 0.5, 3*float32(i) + 6 + 1}
		for j := range 3 {
			if got := y.F32[3*i+j]; got != want[j] {
				t.Fatalf("batch %d: y[%d,%d] = %v, want %v", n, i, j, got, want[j])
			}
			sum += want[j]
		}
	}
	if len(total.Shape) != 0 || len(total.F32) != 1 || total.F32[0] != sum {
		t.Fatalf("batch %d: total is %v %v, want scalar %v", n, total.Shape, total.F32, sum)
	}
	if k2.DType != graph.Int64 || len(k2.I64) != n || (n > 1 && k2.I64[n-1] != 2*int64(n-1)) {
		t.Fatalf("batch %d: k2 is %s %v", n, k2.DType, k2.I64)
	}
}

func TestBatchSizeChangesBetweenRuns(t *testing.T) {
	b := requireORT(t)
	plan, err := b.Prepare(affine(), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	outs := []*graph.Tensor{{}, {}, {}}
	for _, n := range []int{4, 4, 1, 7, 7, 4, 0, 3} {
		runAffine(t, sess, n, outs)
	}
}

// TestRunAllocations: at one batch size, Run runs through an IoBinding over
// the session's own tensors and allocates nothing.
func TestRunAllocations(t *testing.T) {
	b := requireORT(t)
	plan, err := b.Prepare(affine(), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, _ := plan.NewSession()
	defer sess.Close()
	x := graph.NewFloat32([]int64{64, 2}, nil)
	k := graph.NewInt64([]int64{64}, nil)
	ins, outs := []*graph.Tensor{x, k}, []*graph.Tensor{{}, {}, {}}
	if err := sess.Run(ins, outs); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		x.F32[0]++
		if err := sess.Run(ins, outs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Run allocates %.0f times per call, want 0", allocs)
	}
	if ct := sess.(runtime.ComputeTimer).ComputeTime(); ct <= 0 {
		t.Errorf("ComputeTime = %v after 52 runs", ct)
	}
	// New values in the same input tensors reach onnxruntime: y[0,0] = x[0,0]·1 + x[0,1]·3 + 0.5.
	if got, want := outs[0].F32[0], x.F32[0]+0.5; got != want {
		t.Errorf("y[0,0] = %v after the last run, want %v", got, want)
	}
}

// TestSessionsShareAPlan runs one plan from several goroutines, each with its
// own session and batch size (run with -race).
func TestSessionsShareAPlan(t *testing.T) {
	b := requireORT(t)
	plan, err := b.Prepare(affine(), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		sess, err := plan.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sess.Close()
			outs := []*graph.Tensor{{}, {}, {}}
			for i := range 20 {
				runAffine(t, sess, 1+(g+i)%5, outs)
			}
		}()
	}
	wg.Wait()
}

// TestScalarInputChanges checks that a rank-0 input's new value reaches
// onnxruntime on every run (onnxruntime_go fixes a Scalar's value when it is
// made).
func TestScalarInputChanges(t *testing.T) {
	rt := requireORT(t)
	b := graph.NewBuilder("scale")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}})
	s := b.Input("s", graph.Float32, graph.Shape{})
	b.Output("y", b.Op("Mul", x, s)[0], graph.Float32, graph.Shape{{Param: "N"}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: b.Graph()}
	plan, err := rt.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, _ := plan.NewSession()
	defer sess.Close()
	out := []*graph.Tensor{{}}
	for _, v := range []float32{2, 2, 3, -1} {
		in := []*graph.Tensor{graph.NewFloat32([]int64{2}, []float32{1, 10}), graph.ScalarFloat32(v)}
		if err := sess.Run(in, out); err != nil {
			t.Fatal(err)
		}
		if out[0].F32[0] != v || out[0].F32[1] != 10*v {
			t.Fatalf("scale %v: got %v", v, out[0].F32)
		}
	}
}

func TestRunRejectsWrongInputs(t *testing.T) {
	b := requireORT(t)
	plan, err := b.Prepare(affine(), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, _ := plan.NewSession()
	defer sess.Close()
	outs := []*graph.Tensor{{}, {}, {}}
	x := graph.NewFloat32([]int64{2, 2}, nil)
	k := graph.NewInt64([]int64{2}, nil)
	for name, ins := range map[string][]*graph.Tensor{
		"wrong dtype":  {k, k},
		"short data":   {{DType: graph.Float32, Shape: []int64{2, 2}, F32: make([]float32, 3)}, k},
		"wrong rank":   {graph.NewFloat32([]int64{4}, nil), k},
		"missing one":  {x},
		"nil tensor":   {x, nil},
		"wrong column": {graph.NewFloat32([]int64{2, 5}, nil), k},
	} {
		if err := sess.Run(ins, outs); err == nil {
			t.Errorf("%s: Run succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "ort: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	// The session still works after the failures.
	runAffine(t, sess, 3, outs)
}

func TestPrepareRefusesOtherDTypes(t *testing.T) {
	rt := requireORT(t)
	b := graph.NewBuilder("f64")
	x := b.Input("x", graph.Float64, graph.Shape{{Value: 2}})
	b.Output("y", b.Op("Neg", x)[0], graph.Float64, graph.Shape{{Value: 2}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: b.Graph()}
	_, err := rt.Prepare(m, runtime.Options{})
	if !errors.Is(err, ort.ErrUnsupported) || !strings.Contains(err.Error(), `input "x" is float64`) || !strings.Contains(err.Error(), `output "y" is float64`) {
		t.Fatalf("got %v", err)
	}
}

func TestAutoPicksORT(t *testing.T) {
	requireORT(t)
	b, why, err := runtime.Auto()
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "ort" || why != "picked ort (onnxruntime loaded)" {
		t.Fatalf("Auto picked %q (%s) with onnxruntime installed", b.Name(), why)
	}
}

// TestCUDA checks ort-cuda either way: where it does not load, the error is
// ErrUnavailable, names CUDA and is one short line; where it loads, it prepares and runs the
// affine model and every output value is checked, at two batch sizes.
func TestCUDA(t *testing.T) {
	requireORT(t)
	b, err := runtime.Get("ort-cuda")
	if err != nil {
		if !errors.Is(err, runtime.ErrUnavailable) || !strings.Contains(err.Error(), "CUDA") {
			t.Fatalf("got %v", err)
		}
		// One short line; onnxruntime's own message stays in Detail.
		var ce *ort.CUDAError
		if msg := err.Error(); !errors.As(err, &ce) || ce.Detail == "" || strings.Contains(msg, "\n") || len(msg) > 300 {
			t.Errorf("not one short line (%d chars): %q", len(msg), msg)
		}
		t.Log(err)
		return
	}
	plan, err := b.Prepare(affine(), runtime.Options{})
	if err != nil {
		t.Fatalf("%s loads but cannot prepare: %v", b.Name(), err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	outs := []*graph.Tensor{{}, {}, {}}
	for _, n := range []int{5, 64} {
		runAffine(t, sess, n, outs)
	}
	t.Logf("%s runs and computes the right values", b.Name())
}

// TestLoadErrorListsEveryPath runs this test binary again with nothing to
// load, since a process keeps the first library it loads.
func TestLoadErrorListsEveryPath(t *testing.T) {
	if os.Getenv("EBMRUN_ORT_CHILD") == "1" {
		ort.SetLibPath("/nonexistent/flag/libonnxruntime.so")
		_, gerr := runtime.Get("ort")
		os.Stdout.WriteString("ERR<<" + gerr.Error() + ">>\n")
		if errors.Is(gerr, runtime.ErrUnavailable) {
			os.Stdout.WriteString("IS-UNAVAILABLE\n")
		}
		b, why, _ := runtime.Auto()
		os.Stdout.WriteString("AUTO<<" + name(b) + ">> " + why + "\n")
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/garbage.so", []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadErrorListsEveryPath$", "-test.v")
	cmd.Env = append(os.Environ(), "EBMRUN_ORT_CHILD=1", "ONNXRUNTIME_LIB="+dir+"/garbage.so", "EBMRUN_CACHE="+dir+"/cache")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"/nonexistent/flag/libonnxruntime.so (LibPath): no such file",
		dir + "/garbage.so ($ONNXRUNTIME_LIB): dlopen: file too short",
		dir + "/cache/onnxruntime-" + ort.Version + "/libonnxruntime.so.1 (cache): no such file",
		ort.InstallScript,
		"IS-UNAVAILABLE",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("error lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, "AUTO<<native>> picked native; onnxruntime did not load (") && !strings.Contains(s, "AUTO<<none>>") {
		t.Errorf("Auto did not fall back:\n%s", s)
	}
}

func name(b runtime.Backend) string {
	if b == nil {
		return "none"
	}
	return b.Name()
}

// TestValueDependentOutputShape: the output tensor kept from the last run has
// the wrong shape when the shape comes from input values, not input shapes.
func TestValueDependentOutputShape(t *testing.T) {
	rt := requireORT(t)
	b := graph.NewBuilder("reshape")
	x := b.Input("x", graph.Float32, graph.Shape{{Value: 6}})
	s := b.Input("s", graph.Int64, graph.Shape{{Value: 2}})
	b.Output("y", b.Op("Reshape", x, s)[0], graph.Float32, graph.Shape{graph.Unknown, graph.Unknown})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: b.Graph()}
	plan, err := rt.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, _ := plan.NewSession()
	defer sess.Close()
	out := []*graph.Tensor{{}}
	x6 := graph.NewFloat32([]int64{6}, []float32{1, 2, 3, 4, 5, 6})
	for _, shape := range [][]int64{{2, 3}, {2, 3}, {3, 2}, {1, 6}, {1, 6}} {
		if err := sess.Run([]*graph.Tensor{x6, graph.NewInt64([]int64{2}, shape)}, out); err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if out[0].Shape[0] != shape[0] || out[0].Shape[1] != shape[1] || out[0].F32[5] != 6 {
			t.Fatalf("shape %v: got %v %v", shape, out[0].Shape, out[0].F32)
		}
	}
}

// TestUndeclaredScalarOutput: onnxruntime_go cannot wrap a rank-0 output that
// onnxruntime allocated; a model whose scalar output declares no shape must
// get an error, not a panic.
func TestUndeclaredScalarOutput(t *testing.T) {
	b := graph.NewBuilder("r0")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	b.Output("y", b.Op1("ReduceSum", []string{x}, graph.IntAttr("keepdims", 0)), graph.Float32, nil)
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	be, err := runtime.Get("ort")
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	p, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := p.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := []*graph.Tensor{new(graph.Tensor)}
	if err := s.Run([]*graph.Tensor{graph.NewFloat32([]int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})}, out); err == nil {
		t.Logf("ran: %v", out[0].F32)
	} else if !strings.HasPrefix(err.Error(), "ort: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

// countHandler counts the records logged through it.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

// Choosing a backend logs nothing to slog's process-wide logger: the reason
// comes back to the caller (not parallel: it swaps that logger).
func TestAutoWritesNoGlobalLog(t *testing.T) {
	var n atomic.Int64
	old := slog.Default()
	slog.SetDefault(slog.New(countHandler{&n}))
	defer slog.SetDefault(old)
	for _, name := range []string{"auto", "ort", "ort-cuda", "native"} {
		runtime.Get(name)
	}
	if _, why, err := runtime.Auto(); err != nil || why == "" {
		t.Errorf("Auto: reason %q, %v", why, err)
	}
	if n.Load() != 0 {
		t.Errorf("%d records went to the default logger", n.Load())
	}
}
