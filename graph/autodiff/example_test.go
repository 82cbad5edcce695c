package autodiff_test

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/runtime"
)

// The gradient of y = 3·x² is a graph too; run it on the pure-Go backend.
func ExampleVJP() {
	b := graph.NewBuilder("square")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}})
	y := b.Op("Mul", b.Op("Mul", x, x)[0], b.Const("three", graph.ScalarFloat32(3)))[0]
	b.Output("y", y, graph.Float32, graph.Shape{{Param: "N"}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}

	gm, res, err := autodiff.VJP(m, []string{"y"}, []string{"x"}, autodiff.Options{GradsOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("inputs:", gm.Graph.Inputs[0].Name, res.Cotangents[0], "outputs:", res.Grads[0])

	be, _ := runtime.Get("native")
	plan, err := be.Prepare(gm, runtime.Options{Threads: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plan.Close()
	sess, _ := plan.NewSession()
	defer sess.Close()
	xs := graph.NewFloat32([]int64{3}, []float32{1, 2, 3})
	ones := graph.NewFloat32([]int64{3}, []float32{1, 1, 1})
	grad := &graph.Tensor{}
	if err := sess.Run([]*graph.Tensor{xs, ones}, []*graph.Tensor{grad}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("dy/dx:", grad.F32)
	// Output:
	// inputs: x cot_y outputs: grad_x
	// dy/dx: [6 12 18]
}
