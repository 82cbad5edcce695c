package density_test

import (
	"context"
	"fmt"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// The log-density of two points under the shipped swiss-roll model: one on
// the roll, one in its empty centre.
func ExampleEstimator_LogP() {
	m, err := importer.Load("../models/swissroll/model.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec, _ := importer.Spec(m, importer.Overrides{}) // σ schedule from the metadata
	be, _ := runtime.Get("native")
	e, err := density.New(be, m, spec, runtime.Options{Threads: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	x := []float32{
		-1.9, 0.0, // on the roll's outer arm
		0.3, 0.4, // the hole in the middle
	}
	res, err := e.LogP(context.Background(), x, 2, density.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("on the roll %.1f nats, in the hole %.1f nats (%s divergence, σ %.2g → %.2g)\n",
		res.LogP[0], res.LogP[1], res.Divergence, res.From, res.To)
	fmt.Println("on the roll is likelier:", res.LogP[0] > res.LogP[1])
	// Output:
	// on the roll -2.0 nats, in the hole -6.8 nats (exact divergence, σ 0.01 → 3)
	// on the roll is likelier: true
}
