package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func trainArgs(out string, extra ...string) []string {
	return append([]string{"train", "--data", "8gaussians", "--width", "16", "--depth", "2", "--batch", "64",
		"--sigmas", "geom:3,0.1,4", "--backend", "native", "--threads", "1", "--seed", "3", "--out", out}, extra...)
}

func TestTrainJSONAndExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	stdout, stderr, code := ebmrun(t, trainArgs(out, "--steps", "30", "--log-every", "10", "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s trainSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("bad JSON %q: %v", stdout, err)
	}
	if s.Steps != 30 || s.Backend != "native" || s.Loss != "dsm" || s.Parameters == 0 || s.Checkpoint != filepath.Join(dir, "m.ckpt") {
		t.Errorf("summary %+v", s)
	}
	log, err := os.ReadFile(filepath.Join(dir, "m.train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"sigma_loss":[`) || !strings.Contains(lines[2], `"step":30`) {
		t.Errorf("log:\n%s", log)
	}
	m, err := importer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Sigmas) != 4 || spec.Provenance["dataset"] != "8gaussians" || !strings.Contains(spec.Provenance["command"].(string), "--steps 30") {
		t.Errorf("spec %+v, provenance %v", spec, spec.Provenance)
	}
	// The model is not overwritten without --force.
	if _, stderr, code := ebmrun(t, trainArgs(out, "--steps", "1")...); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("second run: exit %d, %s", code, stderr)
	}
}

// TestTrainResume: 20 steps + a resume to 40 give the weights of 40 steps.
func TestTrainResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	whole, part := filepath.Join(dir, "whole.onnx"), filepath.Join(dir, "part.onnx")
	if _, stderr, code := ebmrun(t, trainArgs(whole, "--steps", "40")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, stderr, code := ebmrun(t, trainArgs(part, "--steps", "20", "--checkpoint", filepath.Join(dir, "p.ckpt"))...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The settings come from the checkpoint; only what differs is said.
	_, stderr, code := ebmrun(t, "train", "--steps", "4e1", "--resume", filepath.Join(dir, "p.ckpt"), "--force")
	if want := "ebmrun: train: resuming " + filepath.Join(dir, "p.ckpt") + " at step 20 with --steps 40 (was 20)\n"; code != 0 || stderr != want {
		t.Fatalf("resume: exit %d: %q; want %q", code, stderr, want)
	}
	a, err := importer.Load(whole)
	if err != nil {
		t.Fatal(err)
	}
	b, err := importer.Load(part)
	if err != nil {
		t.Fatal(err)
	}
	bi := b.Graph.InitializerMap()
	for _, in := range a.Graph.Initializers {
		if !slices.Equal(in.Tensor.F32, bi[in.Name].F32) {
			t.Errorf("initializer %s differs between the whole run and the resumed one", in.Name)
		}
	}
	// Other settings than the checkpoint's are refused.
	_, stderr, code = ebmrun(t, "train", "--lr", "1e-2", "--resume", filepath.Join(dir, "p.ckpt"), "--force")
	if code != 1 || !strings.Contains(stderr, "checkpoint was written with other settings: lr 0.001 in the checkpoint, 0.01 now\n") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("mismatched resume: exit %d, %q", code, stderr)
	}
}

func TestTrainUsageErrors(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "m.onnx")
	for _, args := range [][]string{
		{"train", "--out", out},
		{"train", "--data", "8gaussians"},
		{"train", "--data", "nosuchtoy", "--out", out},
		{"train", "--data", "8gaussians", "--out", out, "--loss", "nce"},
		{"train", "--data", "8gaussians", "--out", out, "--arch", "resnet"},
		{"train", "--data", "8gaussians", "--out", out, "--sigmas", "geom:1,2,3"},
		{"train", "--data", "8gaussians", "--out", out, "--steps", "0"},
	} {
		_, stderr, code := ebmrun(t, args...)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ebmrun: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestTrainNCSNv2Schedule: --sigmas ncsnv2 starts at the data's largest
// pairwise distance (every point of a 40-point set is used), steps down by
// at most Technique 2's ratio, and recommends Technique 4's ε for T = 5.
func TestTrainNCSNv2Schedule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n, d = 40, 16
	r := sampler.Stream(7, 0)
	x := &graph.Tensor{DType: graph.Float32, Shape: []int64{n, d}, F32: make([]float32, n*d)}
	for i := range x.F32 {
		x.F32[i] = float32(r.NormFloat64())
	}
	data := filepath.Join(dir, "x.npy")
	if err := tensorio.WriteNpyFile(data, x); err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for i := range n {
		for k := range n {
			var s float64
			for j := range d {
				v := float64(x.F32[i*d+j]) - float64(x.F32[k*d+j])
				s += v * v
			}
			want = max(want, math.Sqrt(s))
		}
	}
	out := filepath.Join(dir, "m.onnx")
	_, stderr, code := ebmrun(t, "train", "--data", data, "--width", "16", "--depth", "2", "--batch", "8", "--steps", "2",
		"--sigmas", "ncsnv2:0.05", "--backend", "native", "--threads", "1", "--out", out)
	if code != 0 || !strings.Contains(stderr, "levels") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m, err := importer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	s := spec.Sigmas
	gamma, _ := sampler.NCSNv2Gamma(d)
	if math.Abs(s[0]-want) > 1e-5*want || s[len(s)-1] != 0.05 || s[0]/s[1] > gamma*(1+1e-9) || s[0]/s[1] < gamma*0.9 {
		t.Fatalf("σ %v … %v in %d levels (ratio %v), want from %v to 0.05 with ratio ≤ γ = %v", s[0], s[len(s)-1], len(s), s[0]/s[1], want, gamma)
	}
	eps, _ := sampler.NCSNv2StepSize(s, 5)
	if spec.Sampler.Steps != 5 || spec.Sampler.StepLR != eps {
		t.Errorf("sampler defaults %+v, want T = 5 and ε = %v", spec.Sampler, eps)
	}
	// Two dimensions are too few for Technique 2: a usage error.
	if _, stderr, code := ebmrun(t, trainArgs(filepath.Join(dir, "b.onnx"), "--steps", "1", "--sigmas", "ncsnv2")...); code != 2 || !strings.Contains(stderr, "ncsnv2") {
		t.Errorf("2-D data: exit %d, %s", code, stderr)
	}
}
