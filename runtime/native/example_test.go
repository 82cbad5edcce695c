package native_test

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
)

// A score model for a standard normal perturbed with noise σ: the score of
// N(0, (1+σ²)I) is −x/(1+σ²).
func Example() {
	b := graph.NewBuilder("gaussian_score")
	N := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{N, {Value: 2}})
	sigma := b.Input("sigma", graph.Float32, graph.Shape{N, {Value: 1}})
	one := b.Const("one", graph.ScalarFloat32(1))
	v := b.Op("Add", one, b.Op("Mul", sigma, sigma)[0])[0]
	b.Output("score", b.Op("Neg", b.Op("Div", x, v)[0])[0], graph.Float32, graph.Shape{N, {Value: 2}})

	backend, err := runtime.Get("native")
	if err != nil {
		panic(err)
	}
	plan, err := backend.Prepare(&graph.Model{Graph: b.Graph()}, runtime.Options{})
	if err != nil {
		panic(err)
	}
	sess, err := plan.NewSession()
	if err != nil {
		panic(err)
	}
	defer sess.Close()

	xs := graph.NewFloat32([]int64{2, 2}, []float32{1, 2, -3, 4})
	sig := graph.NewFloat32([]int64{2, 1}, []float32{0, 1})
	score := new(graph.Tensor) // Run sizes it, and reuses it next time
	if err := sess.Run([]*graph.Tensor{xs, sig}, []*graph.Tensor{score}); err != nil {
		panic(err)
	}
	fmt.Println(score.Shape, score.F32)
	// Output: [2 2] [-1 -2 1.5 -2]
}
