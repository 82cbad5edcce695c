package sampler_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native" // registers the pure-Go backend
	_ "github.com/ebmrun/ebmrun/runtime/ort"    // registers onnxruntime, used when it loads
	"github.com/ebmrun/ebmrun/sampler"
)

// A Go service sampling a shipped model in-process: load, decide roles,
// prepare once on a backend, then make the sampler the model recommends —
// with its σ schedule and settings, as `ebmrun sample` does — and run it.
// The body of sampleModel is the README's snippet (TestReadmeSnippet).
func ExampleFromSpec() {
	if err := sampleModel(context.Background(), "../models/swissroll/model.onnx", os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output: ald: 500 samples of 2 values, 1001 score evaluations each
}

func sampleModel(ctx context.Context, path string, w io.Writer) error {
	m, err := importer.Load(path)
	if err != nil {
		return err
	}
	spec, err := importer.Spec(m, importer.Overrides{}) // roles from the model's metadata
	if err != nil {
		return err
	}
	backend, err := runtime.Get("auto") // onnxruntime when it loads, else pure Go
	if err != nil {
		return err
	}
	plan, err := backend.Prepare(m, runtime.Options{}) // immutable, shared by goroutines
	if err != nil {
		return err
	}
	defer plan.Close()
	// The model's recommended sampler and settings, as `ebmrun sample` uses
	// them; sampler.Overrides{Sampler: "pc", Steps: 2} chooses others.
	smp, err := sampler.FromSpec(spec, sampler.Overrides{})
	if err != nil {
		return err
	}
	x, stats, err := sampler.Collect(ctx, smp, sampler.ModelSource(plan, spec),
		sampler.Config{N: 500, Dim: 2, Seed: 1, Init: sampler.Uniform{Lo: -3, Hi: 3}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s: %d samples of %d values, %d score evaluations each\n",
		smp.Name(), len(x)/2, 2, stats.Evals/int64(stats.End-stats.Start))
	return err
}
