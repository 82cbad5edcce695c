package sampler_test

import (
	"context"
	"fmt"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/sampler"
)

// A Go service sampling a shipped model in-process: load, decide roles,
// prepare once on a backend, then run annealed Langevin with the model's own
// σ schedule and recommended settings.
func ExampleModelSource() {
	m, err := importer.Load("../models/swissroll/model.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		fmt.Println(err)
		return
	}
	backend, err := runtime.Get("native") // or "auto": onnxruntime when it loads
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := backend.Prepare(m, runtime.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plan.Close()
	ald := &sampler.ALD{Sigmas: spec.Sigmas, Steps: spec.Sampler.Steps, StepLR: spec.Sampler.StepLR, Denoise: spec.Sampler.Denoise}
	x, st, err := sampler.Collect(context.Background(), ald, sampler.ModelSource(plan, spec), sampler.Config{
		N: 500, Dim: 2, Seed: 1, Init: sampler.Uniform{Lo: spec.DataRange[0], Hi: spec.DataRange[1]},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d samples of %d values, %d score evaluations each\n", len(x)/2, 2, st.Evals/int64(st.End-st.Start))
	// Output: 500 samples of 2 values, 1001 score evaluations each
}
