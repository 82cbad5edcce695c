package runtimetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// OpClaimer is implemented by a backend that runs only some operators. The
// node tests of other operators are excluded for it; a backend without the
// method claims every default-domain operator.
type OpClaimer interface {
	SupportedOps() []string
}

// Counts tallies one part of the suite.
type Counts struct {
	Passed, Failed, Excluded int
}

func (c Counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d excluded", c.Passed, c.Failed, c.Excluded)
}

// Run runs the conformance suite on the named backend: the fixtures in
// testdata/models, then ONNX's node tests for every operator the backend
// claims. It logs the counts and prints a one-line summary to stdout.
//
// A missing dependency (the backend's library, the fixtures, the ONNX test
// data) skips the part that needs it, with how to install it, or fails the
// test under CI=true.
func Run(t *testing.T, backendName string) {
	t.Helper()
	b, err := runtime.Get(backendName)
	if err != nil {
		if errors.Is(err, runtime.ErrUnavailable) {
			testenv.Missing(t, err.Error())
		}
		t.Fatal(err)
	}
	var fix, node, own Counts
	covered := map[string]bool{} // ops exercised by a passing test
	t.Run("fixtures", func(t *testing.T) { fix = runFixtures(t, b) })
	t.Run("ops", func(t *testing.T) { own = runOpCases(t, b, covered) })
	ran := false
	t.Run("onnx-node", func(t *testing.T) { node, ran = runNodeTests(t, b, covered) })
	t.Logf("backend %s: fixtures: %v; own op tests: %v; onnx node tests: %v", backendName, fix, own, node)
	fmt.Printf("runtimetest: backend %s: fixtures %v; own op tests %v; onnx node tests %v\n", backendName, fix, own, node)
	if !ran {
		return
	}
	if floor, ok := MinNodePassed[backendName]; ok && node.Passed < floor {
		t.Errorf("backend %s passes %d ONNX node tests, fewer than its floor of %d (MinNodePassed)", backendName, node.Passed, floor)
	}
	if oc, ok := b.(OpClaimer); ok {
		var untested []string
		for _, op := range oc.SupportedOps() {
			if !covered[op] {
				untested = append(untested, op)
			}
		}
		if len(untested) > 0 {
			t.Errorf("backend %s claims ops that no passing test exercises (add a node test's op or an OpCase): %s",
				backendName, strings.Join(untested, ", "))
		}
	}
}

// MinNodePassed is, per backend, the fewest ONNX node tests it must pass:
// set just under what was measured, so that a regression fails the suite.
var MinNodePassed = map[string]int{
	"native": 480,
	"ort":    635,
}

// nodeOptions keep sessions small: the node tests are tiny and many.
var nodeOptions = runtime.Options{Threads: 1}

func runFixtures(t *testing.T, b runtime.Backend) Counts {
	var c Counts
	for _, dir := range testenv.Fixtures(t) {
		name := filepath.Base(dir)
		ok := t.Run(name, func(t *testing.T) { checkFixture(t, b, dir) })
		if ok {
			c.Passed++
		} else {
			c.Failed++
		}
	}
	return c
}

// checkFixture runs testdata/models/<name>: model.onnx with inputs/<input>.npy
// against expected/<output>.npy, once with the whole batch and once with its
// first half when every input is batched along a symbolic first dimension, so
// the batch size changes between runs of one session.
func checkFixture(t *testing.T, b runtime.Backend, dir string) {
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.Prepare(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	ins := make([]*graph.Tensor, len(plan.Inputs()))
	for i, vi := range plan.Inputs() {
		if ins[i], err = tensorio.ReadNpyFile(filepath.Join(dir, "inputs", vi.Name+".npy")); err != nil {
			t.Fatalf("input %q: %v", vi.Name, err)
		}
	}
	want := make([]*graph.Tensor, len(plan.Outputs()))
	compared := 0
	for i, vi := range plan.Outputs() {
		p := filepath.Join(dir, "expected", vi.Name+".npy")
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue // not every output has a reference
		}
		if want[i], err = tensorio.ReadNpyFile(p); err != nil {
			t.Fatalf("expected %q: %v", vi.Name, err)
		}
		compared++
	}
	if compared == 0 {
		t.Fatalf("%s has no expected/<output>.npy for any of the outputs %v", dir, names(plan.Outputs()))
	}

	outs := newOutputs(len(want))
	for run := range 2 { // twice: a session must give the same answer again
		if err := sess.Run(ins, outs); err != nil {
			t.Fatalf("run %d: %v", run+1, err)
		}
		compareAll(t, fmt.Sprintf("run %d: ", run+1), plan.Outputs(), outs, want, FixtureTolerances)
	}

	n, ok := batchSize(plan.Inputs(), ins)
	if !ok || n < 2 {
		return
	}
	half := n / 2
	hins := make([]*graph.Tensor, len(ins))
	for i, in := range ins {
		hins[i] = firstRows(in, half)
	}
	hwant := make([]*graph.Tensor, len(want))
	for i, w := range want {
		if w != nil && len(w.Shape) > 0 && w.Shape[0] == n {
			hwant[i] = firstRows(w, half)
		}
	}
	if err := sess.Run(hins, outs); err != nil {
		t.Fatalf("batch %d after batch %d: %v", half, n, err)
	}
	compareAll(t, fmt.Sprintf("batch %d after %d: ", half, n), plan.Outputs(), outs, hwant, FixtureTolerances)
}

// batchSize returns the common first dimension of the inputs when every input
// declares a symbolic one.
func batchSize(decl []graph.ValueInfo, ins []*graph.Tensor) (int64, bool) {
	n := int64(-1)
	for i, vi := range decl {
		if !vi.HasShape || len(vi.Shape) == 0 || vi.Shape[0].Param == "" || len(ins[i].Shape) == 0 {
			return 0, false
		}
		if n >= 0 && ins[i].Shape[0] != n {
			return 0, false
		}
		n = ins[i].Shape[0]
	}
	return n, n >= 0
}

// firstRows is a copy of the first k entries along dimension 0.
func firstRows(t *graph.Tensor, k int64) *graph.Tensor {
	shape := append([]int64{k}, t.Shape[1:]...)
	per := graph.NumElements(t.Shape[1:])
	switch t.DType {
	case graph.Float32:
		return graph.NewFloat32(shape, append([]float32(nil), t.F32[:k*per]...))
	case graph.Int64:
		return graph.NewInt64(shape, append([]int64(nil), t.I64[:k*per]...))
	case graph.Bool:
		return graph.NewBool(shape, append([]bool(nil), t.B[:k*per]...))
	}
	panic("runtimetest: firstRows of " + t.DType.String())
}

func newOutputs(n int) []*graph.Tensor {
	outs := make([]*graph.Tensor, n)
	for i := range outs {
		outs[i] = new(graph.Tensor)
	}
	return outs
}

// compareAll compares the outputs that have a reference (want[i] != nil).
func compareAll(t *testing.T, prefix string, decl []graph.ValueInfo, got, want []*graph.Tensor, tols Tolerances) {
	t.Helper()
	for i, w := range want {
		if w == nil {
			continue
		}
		if err := Compare(got[i], w, tols); err != nil {
			t.Errorf("%soutput %q: %v", prefix, decl[i].Name, err)
		}
	}
}

func names(vs []graph.ValueInfo) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

// nodeTestDir holds ONNX's node tests, one folder per test.
var nodeTestDir = filepath.Join(testenv.ONNXTestData, "node")

// runNodeTests runs ONNX's node tests on b and adds the ops of those that
// pass to covered; ran is false when the test data is missing. A test of an
// op the backend claims that its Prepare refuses as unsupported is a
// failure, unless Refused lists it with the reason (then the suite checks
// that the backend still refuses it).
func runNodeTests(t *testing.T, b runtime.Backend, covered map[string]bool) (c Counts, ran bool) {
	testenv.Require(t, nodeTestDir, "install ONNX's conformance tests: apt-get install libonnx-testdata")
	entries, err := os.ReadDir(nodeTestDir)
	if err != nil {
		t.Fatal(err)
	}
	var claimed map[string]bool
	if oc, ok := b.(OpClaimer); ok {
		claimed = map[string]bool{}
		for _, op := range oc.SupportedOps() {
			claimed[op] = true
		}
	}
	excluded := map[string][]string{} // reason → tests
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name, dir := e.Name(), filepath.Join(nodeTestDir, e.Name())
		m, reason := selectNodeTest(b.Name(), name, dir, claimed)
		if reason != "" {
			c.Excluded++
			excluded[reason] = append(excluded[reason], name)
			continue
		}
		if why, ok := Refused[b.Name()][name]; ok {
			c.Excluded++
			r := "refused by the backend, which says so (Refused): " + why
			excluded[r] = append(excluded[r], name)
			t.Run(name, func(t *testing.T) {
				p, err := b.Prepare(m, nodeOptions)
				if err == nil {
					p.Close()
					t.Errorf("Refused lists this test for %s (%s), but Prepare accepts it now: remove the entry", b.Name(), why)
				} else if !errors.Is(err, graph.ErrUnsupportedOp) {
					t.Errorf("Prepare refuses it, but not as unsupported: %v", err)
				}
			})
			continue
		}
		ok := t.Run(name, func(t *testing.T) { checkNodeTest(t, b, m, dir) })
		if ok {
			c.Passed++
			for op := range m.Graph.OpHistogram() {
				covered[op] = true
			}
		} else {
			c.Failed++
		}
	}
	logExcluded(t, excluded)
	return c, true
}

// selectNodeTest loads a node test's model and decides whether it runs on
// this backend; a non-empty reason excludes it.
func selectNodeTest(backend, name, dir string, claimed map[string]bool) (*graph.Model, string) {
	if r, ok := Excluded[name]; ok {
		return nil, r
	}
	if r, ok := ExcludedFor[backend][name]; ok {
		return nil, backend + ": " + r
	}
	m, err := importer.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return nil, "the importer refuses the model: " + importerReason(err)
	}
	var outside []string
	for op := range m.Graph.OpHistogram() {
		if strings.Contains(op, ".") || (claimed != nil && !claimed[op]) {
			outside = append(outside, op)
		}
	}
	if len(outside) > 0 {
		sort.Strings(outside)
		return nil, "uses ops the backend does not claim: " + strings.Join(outside, ", ")
	}
	for _, vi := range append(m.Graph.RuntimeInputs(), m.Graph.Outputs...) {
		if !vi.DType.Computable() {
			return nil, fmt.Sprintf("has %s inputs or outputs (backends exchange float32, int64 and bool)", vi.DType)
		}
	}
	return m, ""
}

// importerReason shortens an importer error to a reason shared by many tests.
func importerReason(err error) string {
	msg := strings.TrimPrefix(firstLine(err.Error()), "importer: ")
	var ue *importer.UnsupportedError
	switch {
	case errors.As(err, &ue) && (ue.Feature == "opset" || ue.Feature == "opset domain"):
		return ue.Error()
	case importer.IsUnknownOps(err):
		return "operators the importer does not know"
	case errors.As(err, &ue) && ue.Feature == "value type":
		return "sequence, map or optional values"
	}
	return msg
}

// checkNodeTest runs every test_data_set_* of a node test. The backend
// claims the test's ops, so refusing the model is a failure too.
func checkNodeTest(t *testing.T, b runtime.Backend, m *graph.Model, dir string) {
	plan, err := b.Prepare(m, nodeOptions)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		t.Fatalf("%s has no test_data_set_*", dir)
	}
	for _, set := range sets {
		ins, err := readTensors(set, "input", len(plan.Inputs()))
		if err != nil {
			t.Fatal(err)
		}
		want, err := readTensors(set, "output", len(plan.Outputs()))
		if err != nil {
			t.Fatal(err)
		}
		outs := newOutputs(len(want))
		if err := sess.Run(ins, outs); err != nil {
			t.Fatalf("%s: %v", filepath.Base(set), err)
		}
		compareAll(t, filepath.Base(set)+": ", plan.Outputs(), outs, want, nodeTolerances(filepath.Base(dir)))
	}
}

// nodeTolerances are NodeTolerances, with NodeLoosened's float32 tolerance
// for the tests listed there.
func nodeTolerances(test string) Tolerances {
	l, ok := NodeLoosened[test]
	if !ok {
		return NodeTolerances
	}
	tols := Tolerances{}
	for dt, tol := range NodeTolerances {
		tols[dt] = tol
	}
	tols[graph.Float32] = l.Float32
	return tols
}

// readTensors reads <kind>_0.pb … <kind>_<n-1>.pb of a test data set.
func readTensors(set, kind string, n int) ([]*graph.Tensor, error) {
	files, _ := filepath.Glob(filepath.Join(set, kind+"_*.pb"))
	if len(files) != n {
		return nil, fmt.Errorf("%s has %d %s files, the model has %d %ss", set, len(files), kind, n, kind)
	}
	out := make([]*graph.Tensor, n)
	for i := range out {
		t, err := importer.ReadTensorFile(filepath.Join(set, fmt.Sprintf("%s_%d.pb", kind, i)))
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func logExcluded(t *testing.T, excluded map[string][]string) {
	reasons := make([]string, 0, len(excluded))
	for r := range excluded {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var b strings.Builder
	for _, r := range reasons {
		fmt.Fprintf(&b, "\n  %d: %s\n      %s", len(excluded[r]), r, strings.Join(excluded[r], "\n      "))
	}
	if b.Len() > 0 {
		t.Logf("excluded node tests by reason:%s", b.String())
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
