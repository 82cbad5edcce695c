package trainer_test

import (
	"context"
	"fmt"

	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/trainer"
)

// Train the NCSN MLP on the swiss roll for a few steps with denoising score
// matching and look at the model it would export.
func Example() {
	data, err := trainer.NewToyData("swissroll")
	if err != nil {
		panic(err)
	}
	be, err := runtime.Get("native")
	if err != nil {
		panic(err)
	}
	tr, err := trainer.New(trainer.Config{Steps: 20, Batch: 64, Seed: 1, Threads: 1}, data, be)
	if err != nil {
		panic(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background(), trainer.RunOptions{}); err != nil {
		panic(err)
	}
	m, err := tr.Model(nil)
	if err != nil {
		panic(err)
	}
	kind, _ := m.Meta("ebmrun.kind")
	fmt.Println(tr.Done(), "steps;", len(tr.Net().Params), "parameter tensors;", kind, "model with inputs", m.Graph.Inputs[0].Name, m.Graph.Inputs[1].Name)
	// Output: 20 steps; 8 parameter tensors; score model with inputs x sigma
}
