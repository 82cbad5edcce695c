package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Model is one model the server answers for: loaded and prepared once,
// shared by every request.
type Model struct {
	Name string
	Path string
	Spec *importer.ModelSpec
	Dim  int // values per sample

	graph *graph.Model
	plan  runtime.Plan
	sched *scheduler
	evals chan struct{} // one evaluator run at a time
}

// FindModels lists the models in dir: every DIR/NAME/model.onnx, named
// NAME, and every DIR/NAME.onnx, named NAME, sorted by name.
func FindModels(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("serve: models: %w", err)
	}
	out := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows links to model folders
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir():
			if _, err := os.Stat(filepath.Join(p, "model.onnx")); err == nil {
				out[e.Name()] = filepath.Join(p, "model.onnx")
			}
		case strings.HasSuffix(e.Name(), ".onnx"):
			out[strings.TrimSuffix(e.Name(), ".onnx")] = p
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("serve: no */model.onnx or *.onnx in %s", dir)
	}
	return out, nil
}

// loadModel loads, checks and prepares one model.
func loadModel(name, path string, be runtime.Backend, ro runtime.Options) (*Model, error) {
	m, err := importer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", path, err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", path, err)
	}
	if m, spec, err = sampler.EnergyScoreModel(m, spec); err != nil {
		return nil, fmt.Errorf("serve: %s: %w", path, err)
	}
	if len(spec.DataShape) == 0 {
		return nil, fmt.Errorf("serve: %s: the shape of one sample is unknown (no ebmrun.data_shape metadata)", path)
	}
	plan, err := be.Prepare(m, ro)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", path, err)
	}
	return &Model{Name: name, Path: path, Spec: spec, Dim: int(graph.NumElements(spec.DataShape)),
		graph: m, plan: plan, evals: make(chan struct{}, 1)}, nil
}

func sortedNames(ms map[string]*Model) []string {
	out := make([]string, 0, len(ms))
	for k := range ms {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
