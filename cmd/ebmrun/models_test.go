package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

// modelSamples is how many samples the shipped-model check draws: enough
// for MMD² to tell a wrong model from the data, few enough for make test.
const modelSamples = 2000

// modelPValue is the smallest MMD² permutation p-value a shipped model's
// samples may have against fresh data: below it the samples and the data
// are told apart, and the card's claim (MMD² at the noise floor) fails.
// modelPermutations makes p-values down to 1/1001 possible, so a wrong
// model (seen: p < 0.005 for samples of too few Langevin steps) fails.
// Seeds are fixed and native is batch-invariant, so the test is repeatable.
const (
	modelPValue       = 0.01
	modelPermutations = 1000
)

// TestShippedModels samples every model in models/ with its own defaults on
// the pure-Go backend and checks the samples cannot be told from the data
// by MMD², as each model's card reports.
func TestShippedModels(t *testing.T) {
	t.Parallel()
	dirs := shippedScoreModels(t)
	if len(dirs) < 4 {
		t.Fatalf("found %d shipped models, want at least 4", len(dirs))
	}
	for _, path := range dirs {
		dir := filepath.Dir(path)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join(dir, "CARD.md")); err != nil {
				t.Errorf("no model card: %v", err)
			}
			out := filepath.Join(t.TempDir(), "s.npy")
			if isImageModel(t, path) {
				// 1 001 U-Net evaluations a sample are minutes for enough
				// samples to test MMD²; the card gives the figure and its
				// command. Here: the model loads, samples, and stays finite.
				if _, stderr, code := ebmrun(t, "sample", path, "-n", "2", "-o", out, "--steps", "2", "--backend", "native"); code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				got, err := tensorio.ReadNpyFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Shape) != 4 || got.Shape[0] != 2 {
					t.Errorf("image samples shaped %v, want [2 C H W]", got.Shape)
				}
				return
			}
			if _, stderr, code := ebmrun(t, "sample", path, "-n", "2000", "-o", out, "--seed", "3", "--backend", "native"); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got, err := tensorio.ReadNpyFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var data []float32
			if held := filepath.Join(dir, "data.npy"); fileExists(held) {
				d, err := tensorio.ReadNpyFile(held)
				if err != nil {
					t.Fatal(err)
				}
				data = d.F32[:2*modelSamples]
			} else {
				toy, err := dataset.Toy(toyName(t, path, name))
				if err != nil {
					t.Fatalf("no held-out data.npy and no toy distribution called %q: %v", name, err)
				}
				data = toy.Tensor(modelSamples, rand.New(rand.NewPCG(11, 12))).F32
			}
			r, err := eval.Compare(got.F32, data, 2, eval.Options{Seed: 5, Permutations: modelPermutations})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: MMD² %.2g ± %.1g, p = %.3f", name, r.MMD2.Value, r.MMD2.StdErr, r.MMD2.PValue)
			if r.MMD2.PValue < modelPValue {
				t.Errorf("samples differ from the data: MMD² %.3g ± %.2g, p = %.4f", r.MMD2.Value, r.MMD2.StdErr, r.MMD2.PValue)
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// shippedScoreModels lists models/*/model.onnx except the classifiers,
// which measure samples and make none (TestShippedClassifier checks them).
func shippedScoreModels(t *testing.T) []string {
	t.Helper()
	paths, _ := filepath.Glob(testenv.Path(t, "models", "*", "model.onnx"))
	var out []string
	for _, p := range paths {
		m, err := importer.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !importer.IsClassifier(m) {
			out = append(out, p)
		}
	}
	return out
}

// isImageModel reports whether a model's samples are images (a data shape
// of rank 3), as inspect decides it.
func isImageModel(t *testing.T, path string) bool {
	t.Helper()
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return len(s.DataShape) == 3
}

// toyName is the toy distribution a shipped model was trained on: the
// folder's name, or for several models of one distribution (the energy
// models beside the score model) the data set its provenance names.
func toyName(t *testing.T, path, name string) string {
	t.Helper()
	if _, err := dataset.Toy(name); err == nil {
		return name
	}
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := s.Provenance["dataset"].(string); ok {
		return d
	}
	return name
}
