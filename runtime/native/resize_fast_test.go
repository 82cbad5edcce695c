package native

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
)

// TestResize2DMatchesGeneral: the image fast path gives the general loop's
// bits. The same data as a rank-5 tensor with a unit leading axis takes
// the general loop, as a rank-4 one the fast path.
func TestResize2DMatchesGeneral(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 9))
	x := randVec(r, 2*3*5*7)
	x[11] = float32(math.Inf(1)) // a corner with weight 0 must stay out of the sum
	for _, c := range []struct {
		mode, coord string
		scale       float32
	}{
		{"linear", "half_pixel", 2},
		{"linear", "align_corners", 2},
		{"linear", "half_pixel", 0.5},
		{"linear", "asymmetric", 1.5},
		{"nearest", "asymmetric", 2},
	} {
		attrs := []*graph.Attribute{graph.StringAttr("mode", c.mode), graph.StringAttr("coordinate_transformation_mode", c.coord)}
		run := func(shape []int64, scales []float32) *graph.Tensor {
			got, err := runOp(t, opCase{name: "resize", op: "Resize", opset: 13, attrs: attrs,
				in:   []*graph.Tensor{graph.NewFloat32(shape, x), nil, f32(sh(int64(len(scales))), scales...)},
				want: []*graph.Tensor{nil}}, false)
			if err != nil {
				t.Fatal(err)
			}
			return got[0]
		}
		fast := run(sh(2, 3, 5, 7), []float32{1, 1, c.scale, c.scale})
		general := run(sh(1, 2, 3, 5, 7), []float32{1, 1, 1, c.scale, c.scale})
		if len(fast.F32) != len(general.F32) {
			t.Fatalf("%v: %d and %d values", c, len(fast.F32), len(general.F32))
		}
		for i := range fast.F32 {
			if math.Float32bits(fast.F32[i]) != math.Float32bits(general.F32[i]) {
				t.Fatalf("%v: value %d is %v, the general loop's %v", c, i, fast.F32[i], general.F32[i])
			}
		}
	}
}
