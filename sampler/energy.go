package sampler

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
)

// EnergyScoreModel makes an energy model samplable: for spec.Kind energy it
// returns the model whose output "score" is −∇x E(x), built by the graph
// autodiff (so it runs on every backend), and the spec that says so; any
// other model comes back as it is. Prepare the result and use ModelSource as
// for any score model:
//
//	m, spec, err := sampler.EnergyScoreModel(m, spec)
//	plan, err := backend.Prepare(m, runtime.Options{})
//	src := sampler.ModelSource(plan, spec)
func EnergyScoreModel(m *graph.Model, spec *importer.ModelSpec) (*graph.Model, *importer.ModelSpec, error) {
	if spec.Kind != importer.OutEnergy {
		return m, spec, nil
	}
	sm, err := autodiff.ScoreFromEnergy(m, spec.XInput, spec.Output)
	if err != nil {
		return nil, nil, fmt.Errorf("sampler: score of energy model: %w", err)
	}
	s := *spec
	s.Kind, s.Output = importer.OutScore, autodiff.ScoreOutput
	return sm, &s, nil
}
