package eval_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// The score of N(0, I) is −x. Exact score matching, tr(∇s) + ½‖s‖², has
// expectation −d + d/2 = −1 in two dimensions; sliced score matching with
// Rademacher projections estimates it with one VJP per sample.
func ExampleEvaluator() {
	b := graph.NewBuilder("standard_normal")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	b.Output("score", b.Op("Neg", x)[0], graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	m.SetMeta(importer.MetaKind, "score")
	m.SetMeta(importer.MetaCondition, "none")
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		fmt.Println(err)
		return
	}

	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, 20000*2)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	xs := graph.NewFloat32([]int64{20000, 2}, data)

	be, _ := runtime.Get("native")
	e, err := eval.NewEvaluator(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	for _, obj := range []eval.Objective{eval.Exact, eval.SSM} {
		res, err := e.Evaluate(context.Background(), xs, eval.ObjectiveOptions{Objective: obj, Seed: 1})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%-5s %.1f ± %.2f (n = %d)\n", res[0].Objective, res[0].Value, res[0].StdErr, res[0].N)
	}
	// Output:
	// exact -1.0 ± 0.01 (n = 20000)
	// ssm   -1.0 ± 0.01 (n = 20000)
}
