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

// TestReduceSumParMatchesSerial: the bias-gradient sums split over workers
// give the serial sums' bits ([R1, K, R2] and [K, R]), and other layouts
// are left to the serial code.
func TestReduceSumParMatchesSerial(t *testing.T) {
	p := newPool(2)
	defer p.close()
	r := rand.New(rand.NewPCG(12, 13))
	x := randVec(r, 8*24*50)
	for _, c := range []struct {
		shape []int64
		mask  []bool
		par   bool
	}{
		{[]int64{8, 24, 50}, []bool{true, false, true}, true},
		{[]int64{8, 24, 5, 10}, []bool{true, false, true, true}, true},
		{[]int64{192, 50}, []bool{false, true}, true},
		{[]int64{8, 24, 50}, []bool{false, true, false}, false},
	} {
		var m [maxRank]bool
		copy(m[:], c.mask)
		n := 1
		for i, s := range c.shape {
			if !c.mask[i] {
				n *= int(s)
			}
		}
		want, got := make([]float32, n), make([]float32, n)
		if !reduceSumFast(want, x, c.shape, &m, false) {
			t.Fatalf("%v: not a fast layout", c.shape)
		}
		var task reduceTask
		if ok := reduceSumPar(p, &task, got, x, c.shape, &m); ok != c.par {
			t.Fatalf("%v %v: split %v, want %v", c.shape, c.mask, ok, c.par)
		}
		if !c.par {
			continue
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v: sum %d is %g, serially %g", c.shape, i, got[i], want[i])
			}
		}
	}
}
