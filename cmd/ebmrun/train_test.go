package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
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
