package main

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/tensorio"
)

// TestTrainEnergyConv trains the convolutional energy on a file of small
// images through the CLI, by DSM and by CD, and checks the export is an
// energy model of the images' shape that sample runs; a ReLU energy is a
// usage error.
func TestTrainEnergyConv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	img := graph.NewFloat32([]int64{32, 1, 8, 8}, nil)
	for i := range img.F32 {
		img.F32[i] = float32(r.IntN(256))
	}
	data := filepath.Join(dir, "img.npy")
	if err := tensorio.WriteNpyFile(data, img); err != nil {
		t.Fatal(err)
	}
	for _, loss := range []string{"dsm", "cd"} {
		out := filepath.Join(dir, loss+".onnx")
		args := []string{"train", "--data", data, "--arch", "energy-conv", "--channels", "4", "--depth", "2", "--loss", loss,
			"--batch", "8", "--steps", "5", "--backend", "native", "--threads", "1", "--out", out}
		if loss == "cd" {
			args = append(args, "--cd-steps", "3", "--buffer", "16")
		}
		if _, stderr, code := ebmrun(t, args...); code != 0 {
			t.Fatalf("train %s: exit %d: %s", loss, code, stderr)
		}
		m, err := importer.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := importer.Spec(m, importer.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		if spec.Kind != importer.OutEnergy || !slices.Equal(spec.DataShape, []int64{1, 8, 8}) {
			t.Fatalf("%s: kind %q, data shape %v; want energy of [1 8 8]", loss, spec.Kind, spec.DataShape)
		}
		s := filepath.Join(dir, loss+".npy")
		if _, stderr, code := ebmrun(t, "sample", out, "-n", "2", "--steps", "2", "-o", s, "--backend", "native"); code != 0 {
			t.Fatalf("sample %s: exit %d: %s", loss, code, stderr)
		}
	}
	if _, _, code := ebmrun(t, "train", "--data", data, "--arch", "energy-conv", "--act", "relu", "--out", filepath.Join(dir, "r.onnx")); code != 2 {
		t.Errorf("--act relu: exit %d, want 2", code)
	}
}
