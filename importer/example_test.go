package importer_test

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
)

func ExampleSpec() {
	b := graph.NewBuilder("score")
	x := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	sigma := b.Input("sigma", graph.Float32, graph.Shape{{Param: "N"}, {Value: 1}})
	b.Output("score", b.Op("Div", b.Op("Neg", x)[0], sigma)[0], graph.Float32, graph.Shape{{Param: "N"}, {Value: 2}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}

	// Encode and decode, as a file would travel.
	data, err := importer.Encode(m)
	if err != nil {
		panic(err)
	}
	m, err = importer.Decode(data, importer.Options{})
	if err != nil {
		panic(err)
	}
	s, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.XInput, s.Condition, s.CondInput, s.CondRank, s.Kind)
	fmt.Println(s.Reasons["condition"])
	// Output:
	// x sigma sigma 2 score
	// inferred from name "sigma" (float32)
}
