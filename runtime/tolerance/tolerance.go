package tolerance

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// Tolerance bounds the difference between a value and its reference:
//
//	|got − want| ≤ ATol + STol·max|want| + RTol·|want|
//
// where max|want| is the largest finite magnitude in the reference tensor.
// STol is there for outputs divided by a small σ: float32 round-off of the
// larger components shows up in the smaller ones at the tensor's scale, not
// at their own. NaN matches only NaN, ±Inf only itself.
type Tolerance struct {
	RTol float64 // relative to the element
	ATol float64 // absolute
	STol float64 // relative to the tensor's largest magnitude
}

// Tolerances is a table of tolerances by element type. Integer and bool
// outputs compare exactly.
type Tolerances map[graph.DType]Tolerance

// FixtureTolerances are used against the reference outputs in testdata/models,
// which PyTorch computed in float32 for the same inputs. The scores there are
// h/σ with σ down to 0.01, so STol carries the float32 round-off of h (seen:
// 1.3e-4 on a component of 0.76 beside one of 52.6, with onnxruntime).
var FixtureTolerances = Tolerances{
	graph.Float32: {RTol: 1e-4, ATol: 1e-5, STol: 1e-5},
	graph.Int64:   {},
	graph.Bool:    {},
}

// NodeTolerances are used for ONNX's node tests: the values ONNX's own
// backend test runner uses (onnx/backend/test/runner: rtol 1e-3, atol 1e-7),
// since the references there were computed in float64 by numpy.
var NodeTolerances = Tolerances{
	graph.Float32: {RTol: 1e-3, ATol: 1e-7},
	graph.Int64:   {},
	graph.Bool:    {},
}

// maxReported is how many mismatching elements an error lists.
const maxReported = 5

// Compare checks got against want: same dtype, same shape, values within the
// dtype's tolerance. The error lists the first few mismatches, their count
// and the largest absolute difference.
func Compare(got, want *graph.Tensor, tols Tolerances) error {
	if got.DType != want.DType {
		return fmt.Errorf("dtype %s, want %s", got.DType, want.DType)
	}
	if !want.DType.Computable() {
		return fmt.Errorf("cannot compare %s tensors (float32, int64, bool)", want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if err := got.Check(); err != nil {
		return fmt.Errorf("malformed result: %w", err)
	}
	tol, ok := tols[want.DType]
	if !ok {
		return fmt.Errorf("no tolerance stated for %s", want.DType)
	}
	n := int(want.Len())
	if want.DType == graph.Float32 {
		tol.ATol += tol.STol * maxAbs(want.F32)
	}
	var bad []string
	count := 0
	worst := 0.0
	for i := range n {
		if equalAt(got, want, i) {
			continue
		}
		g, w := element(got, i), element(want, i)
		if want.DType == graph.Float32 && within(g, w, tol) {
			continue
		}
		count++
		if d := math.Abs(g - w); d > worst || math.IsNaN(d) {
			worst = d
		}
		if len(bad) < maxReported {
			bad = append(bad, fmt.Sprintf("[%s] %v, want %v", index(want.Shape, i), g, w))
		}
	}
	if count == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d values differ beyond rtol %g atol %g (largest |diff| %g): %s",
		count, n, tol.RTol, tol.ATol, worst, strings.Join(bad, "; "))
}

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		a := math.Abs(float64(x))
		if a > m && !math.IsInf(a, 0) {
			m = a
		}
	}
	return m
}

func within(g, w float64, tol Tolerance) bool {
	switch {
	case math.IsNaN(w) || math.IsNaN(g):
		return math.IsNaN(w) && math.IsNaN(g)
	case math.IsInf(w, 0) || math.IsInf(g, 0):
		return g == w
	}
	return math.Abs(g-w) <= tol.ATol+tol.RTol*math.Abs(w)
}

// equalAt compares the i-th elements exactly, int64 without going through
// float64.
func equalAt(got, want *graph.Tensor, i int) bool {
	switch want.DType {
	case graph.Float32:
		return got.F32[i] == want.F32[i]
	case graph.Int64:
		return got.I64[i] == want.I64[i]
	case graph.Bool:
		return got.B[i] == want.B[i]
	}
	return false
}

// element returns the i-th value as float64, for tolerances and messages.
func element(t *graph.Tensor, i int) float64 {
	switch t.DType {
	case graph.Float32:
		return float64(t.F32[i])
	case graph.Int64:
		return float64(t.I64[i])
	case graph.Bool:
		if t.B[i] {
			return 1
		}
		return 0
	}
	panic("runtimetest: element of " + t.DType.String())
}

// index writes the multi-index of flat position i in a row-major shape.
func index(shape []int64, i int) string {
	if len(shape) == 0 {
		return ""
	}
	idx := make([]string, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = fmt.Sprint(int64(i) % shape[d])
			i = int(int64(i) / shape[d])
		}
	}
	return strings.Join(idx, ",")
}
