//go:build cgo

package ort_test

import (
	"fmt"
	"log"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)

// A score network's session on onnxruntime. Run it after
// scripts/install-onnxruntime.sh (it has no Output block because it needs the
// library, which the tests may skip without).
func Example() {
	b := graph.NewBuilder("gaussian_score")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	b.Output("score", b.Op("Neg", x)[0], graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}}) // s(x) = −x
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: b.Graph()}

	backend, err := runtime.Get("ort")
	if err != nil {
		log.Fatal(err) // lists every library path tried
	}
	plan, err := backend.Prepare(m, runtime.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	score := new(graph.Tensor) // reused by every Run
	in := graph.NewFloat32([]int64{2, 2}, []float32{1, 2, 3, 4})
	if err := sess.Run([]*graph.Tensor{in}, []*graph.Tensor{score}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(score.Shape, score.F32)
}
