package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestReduceSumFastAgainstWalk checks the merged-axes sums against the
// general walk, in float64, on the layouts they take and on ones they
// leave to the walk.
func TestReduceSumFastAgainstWalk(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(6, 6))
	for _, c := range []struct {
		shape []int64
		axes  []int
	}{
		{[]int64{4, 3, 5, 5}, []int{2, 3}},
		{[]int64{4, 3, 5, 5}, []int{0, 2, 3}},
		{[]int64{4, 3, 5, 5}, []int{0}},
		{[]int64{4, 3, 5, 5}, []int{1}},
		{[]int64{4, 3, 5, 5}, []int{0, 1, 2, 3}},
		{[]int64{4, 1, 5, 1}, []int{0, 3}},
		{[]int64{7}, []int{0}},
		{[]int64{2, 3, 4, 5}, []int{0, 2}}, // R K R K: the walk's
		{[]int64{1, 1}, []int{1}},
	} {
		var m [maxRank]bool
		for _, a := range c.axes {
			m[a] = true
		}
		n := 1
		out := 1
		for i, s := range c.shape {
			n *= int(s)
			if !m[i] {
				out *= int(s)
			}
		}
		x := randVec(r, n)
		want := make([]float64, out)
		reduceWalk(x, c.shape, &m, func(o int, v float32) { want[o] += float64(v) })
		got := make([]float32, out)
		name := fmt.Sprint(c.shape, c.axes)
		if !reduceSumFast(got, x, c.shape, &m, false) {
			if name != "[2 3 4 5] [0 2]" {
				t.Errorf("%s: not taken", name)
			}
			continue
		}
		for i := range got {
			if math.Abs(float64(got[i])-want[i]) > 1e-5*float64(n) {
				t.Fatalf("%s: out[%d] = %g, want %g", name, i, got[i], want[i])
			}
		}
	}
}
