package runtimetest

import (
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime/tolerance"
)

// The comparison lives in package tolerance, which the command links
// without the testing package; these names keep the suite's own spelling.
type (
	Tolerance  = tolerance.Tolerance
	Tolerances = tolerance.Tolerances
)

var (
	FixtureTolerances = tolerance.FixtureTolerances
	NodeTolerances    = tolerance.NodeTolerances
)

// Compare is tolerance.Compare.
func Compare(got, want *graph.Tensor, tols Tolerances) error {
	return tolerance.Compare(got, want, tols)
}
