package trainer

import (
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
)

// Model returns the inference graph with the averaged weights (see
// EMAParams) and the ebmrun.* metadata: kind score, σ condition, the
// schedule, data shape and range, the recommended sampler and the
// provenance (data set, loss, steps, seed, batch, learning rate,
// architecture, backend, ebmrun version). extra is merged into the
// provenance (the command line, say).
func (t *Trainer) Model(extra map[string]any) (*graph.Model, error) {
	src := t.net.Model
	g := *src.Graph
	g.Initializers = nil
	w := t.EMAParams()
	for i, v := range w {
		if j := firstNonFinite(v, false); j >= 0 {
			return nil, fmt.Errorf("trainer: export: weight %d of %s is %v; a model with non-finite weights is not written", j, t.net.Params[i], v[j])
		}
	}
	idx := map[string]int{}
	for i, p := range t.net.Params {
		idx[p] = i
	}
	for _, in := range src.Graph.Initializers {
		if i, ok := idx[in.Name]; ok {
			in.Tensor = graph.NewFloat32(t.shapes[i], append([]float32(nil), w[i]...))
		}
		g.Initializers = append(g.Initializers, in)
	}
	m := *src
	m.Graph = &g
	m.Metadata = nil
	m.ProducerName, m.ProducerVersion = "ebmrun", Version()
	m.Doc = fmt.Sprintf("NCSN score network (%s) trained by ebmrun on %s with %s", archString(t.cfg.Arch), t.data.Name(), t.cfg.Loss)
	prov := map[string]any{
		"trainer":  "ebmrun " + Version(),
		"dataset":  t.data.Name(),
		"loss":     t.cfg.Loss,
		"steps":    t.done,
		"seed":     t.cfg.Seed,
		"batch":    t.cfg.Batch,
		"lr":       t.cfg.LR,
		"arch":     archString(t.cfg.Arch),
		"ema":      t.cfg.EMA,
		"backend":  t.backend.Name(),
		"opset":    Opset,
		"weighted": "lambda(sigma)=sigma^2",
	}
	if t.cfg.Loss != LossDSM {
		prov["projection"] = t.cfg.Projection
	}
	for k, v := range extra {
		prov[k] = v
	}
	spec := &importer.ModelSpec{
		XInput: InputX, CondInput: InputSigma, Condition: importer.CondSigma, CondRank: 1,
		Output: OutScore, Kind: importer.OutScore,
		Sigmas: t.cfg.Sigmas, DataShape: t.data.Shape(), DataRange: t.data.Range(),
		Sampler: t.cfg.Sampler, Provenance: prov,
	}
	if err := spec.WriteMetadata(&m); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	return &m, nil
}

// Export writes Model(extra) to path as ONNX, atomically.
func (t *Trainer) Export(path string, extra map[string]any) error {
	m, err := t.Model(extra)
	if err != nil {
		return err
	}
	if err := importer.Save(path, m); err != nil {
		return fmt.Errorf("trainer: export: %w", err)
	}
	return nil
}

func archString(a Arch) string {
	if s, ok := a.(fmt.Stringer); ok {
		return s.String()
	}
	return a.Name()
}
