package tolerance_test

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime/tolerance"
)

func ExampleCompare() {
	want := graph.NewFloat32([]int64{3}, []float32{1, 100, 0})
	got := graph.NewFloat32([]int64{3}, []float32{1.00005, 100.002, 0.002})
	fmt.Println(tolerance.Compare(got, want, tolerance.FixtureTolerances))
	// Output:
	// 1 of 3 values differ beyond rtol 0.0001 atol 0.00101 (largest |diff| 0.0020000000949949026): [2] 0.0020000000949949026, want 0
}
