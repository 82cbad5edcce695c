package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

func fixtureModel(t *testing.T, name string) string {
	t.Helper()
	path := testenv.Path(t, "testdata", "models", name, "model.onnx")
	testenv.Require(t, path, "run `make fixtures`")
	return path
}

func TestSampleNpyJSON(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	out := filepath.Join(t.TempDir(), "s.npy")
	stdout, stderr, code := ebmrun(t, "sample", model, "-n", "50", "-o", out, "--steps", "3", "--backend", "native", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum sampleSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	// The model's own schedule (10 levels) × 3 steps.
	if sum.Backend != "native" || sum.Sampler != "ald" || sum.N != 50 || sum.Evals != 50*30 || sum.Settings["init"] != "uniform:-4,4" {
		t.Errorf("summary %+v", sum)
	}
	x, err := tensorio.ReadNpyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Shape) != 2 || x.Shape[0] != 50 || x.Shape[1] != 2 {
		t.Errorf("samples shaped %v, want [50 2]", x.Shape)
	}
}

// TestSampleDeterministic: the same seed and batch size give the same file
// for any worker count, and shards join into the whole, on both backends.
func TestSampleDeterministic(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	dir := t.TempDir()
	for _, backend := range []string{"native", "ort"} {
		run := func(name string, args ...string) *graph.Tensor {
			t.Helper()
			out := filepath.Join(dir, backend+name)
			args = append([]string{"sample", model, "-n", "90", "-o", out, "--steps", "2", "--seed", "7", "--batch", "16", "--backend", backend}, args...)
			if _, stderr, code := ebmrun(t, args...); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
			x, err := tensorio.ReadNpyFile(out)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		whole := run("a.npy", "--workers", "1")
		if !bitEqual32(whole.F32, run("b.npy", "--workers", "2").F32) {
			t.Errorf("%s: 2 workers differ from 1", backend)
		}
		// The pure-Go backend computes each sample's score the same way in
		// any batch, so there the batch size does not matter either.
		// onnxruntime's kernels round by batch shape, which is why batches
		// are cut from a fixed grid of multiples of --batch.
		if backend == "native" {
			for _, b := range []string{"1", "7", "1000"} {
				if !bitEqual32(whole.F32, run("batch"+b+".npy", "--batch", b, "--workers", "2").F32) {
					t.Errorf("native: --batch %s differs from --batch 16", b)
				}
			}
		}
		var joined []float32
		for i, s := range []string{"0/4", "1/4", "2/4", "3/4"} {
			p := run("shard"+s[:1]+".npy", "--shard", s)
			if want := []int64{22, 23, 22, 23}[i]; p.Shape[0] != want {
				t.Errorf("shard %s has %d samples, want %d", s, p.Shape[0], want)
			}
			joined = append(joined, p.F32...)
		}
		if !bitEqual32(joined, whole.F32) {
			t.Errorf("%s: the shards joined differ from the whole run", backend)
		}
	}
}

func bitEqual32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSampleOutputs(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	dir := t.TempDir()
	csv := filepath.Join(dir, "s.csv")
	if _, stderr, code := ebmrun(t, "sample", model, "-n", "10", "-o", csv, "--steps", "2", "--trace", "5"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(csv)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 11 || lines[0] != "x0,x1" || strings.Count(lines[1], ",") != 1 {
		t.Errorf("csv:\n%s", b)
	}
	// 8 traced chains × 20 steps / 5.
	tr, err := os.ReadFile(filepath.Join(dir, "s.trace.csv"))
	if n := strings.Count(string(tr), "\n"); err != nil || n != 1+8*4 || !strings.HasPrefix(string(tr), "chain,step,level,sigma,x0,x1\n0,5,3,") {
		t.Errorf("trace (%v, %d lines):\n%s", err, n, tr)
	}
	for _, tc := range []struct{ model, n string }{{"ncsn_mlp", "100"}, {"ncsn_mlp", "25000"}, {"conv_score", "7"}} {
		out := filepath.Join(dir, tc.model+tc.n+".png")
		if _, stderr, code := ebmrun(t, "sample", fixtureModel(t, tc.model), "-n", tc.n, "-o", out, "--steps", "1", "--sigmas", "1,0.1"); code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.model, code, stderr)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", out, err)
		}
		f.Close()
	}
}

func TestSampleModels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		model string
		args  []string
		code  int
		msg   string
	}{
		{"ddpm_eps", nil, 0, "ddpm on"},
		{"ncsnv1_labels", []string{"--sigmas", "geom:1,0.01,10", "--steps", "2"}, 0, "ald on"},
		{"ncsnv1_labels", nil, 2, "σ schedule is unknown"},
		{"conv_score", nil, 2, "(--sigmas, or store them in the model with `ebmrun meta --sigmas`)"},
		{"energy_mlp", []string{"--steps", "5"}, 0, "ald on"}, // through −∇x E
		{"ncsn_mlp", []string{"--sampler", "pc"}, 0, "pc on"},
		{"ncsn_mlp", []string{"--sampler", "cas", "--denoise"}, 0, "cas on"},
		{"ncsn_mlp", []string{"--sampler", "ula", "--steps", "50", "--step-lr", "1e30"}, 1,
			"ebmrun: sampler: ula diverged at σ level 1 of 1 (σ=0.01), step 2 of 50: 20 of 20 samples (from index 0) have NaN or Inf in the state\n"},
	} {
		out := filepath.Join(dir, tc.model+".npy")
		args := append([]string{"sample", fixtureModel(t, tc.model), "-n", "20", "-o", out, "--force"}, tc.args...)
		_, stderr, code := ebmrun(t, args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
		if _, err := os.Stat(out); (err == nil) != (tc.code == 0) {
			t.Errorf("%v: output present: %v", tc.args, err == nil)
		}
		os.Remove(out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestSampleRefusesOverwrite(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	out := filepath.Join(t.TempDir(), "s.npy")
	os.WriteFile(out, []byte("keep"), 0o644)
	_, stderr, code := ebmrun(t, "sample", model, "-n", "5", "-o", out, "--steps", "1")
	if code != 1 || !strings.Contains(stderr, "exists; use --force") {
		t.Errorf("exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Error("the existing file was changed")
	}
	if _, stderr, code := ebmrun(t, "sample", model, "-n", "5", "-o", out, "--steps", "1", "--force"); code != 0 {
		t.Errorf("--force: exit %d, %q", code, stderr)
	}
}

func TestSampleUsageErrors(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	out := filepath.Join(t.TempDir(), "s.npy")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-o", out}, "-n: want a positive number"},
		{[]string{"-n", "5"}, "-o OUT is required"},
		{[]string{"-n", "5", "-o", "s.txt"}, "want a .npy, .csv or .png"},
		{[]string{"-n", "5", "-o", out, "--sampler", "hmc"}, `unknown sampler "hmc"`},
		{[]string{"-n", "5", "-o", out, "--shard", "3/3"}, "0 ≤ i < K"},
		{[]string{"-n", "5", "-o", out, "--init", "uniform:1"}, "--init"},
		{[]string{"-n", "5", "-o", out, "--sigmas", "geom:1,2,3"}, "MAX > MIN"},
		{[]string{"-n", "5", "-o", out, "--sampler", "cas", "--step-lr", "2e-5"}, "outside 1−γ < η < 1+γ"},
		{[]string{"-n", "5", "-o", out, "--sampler", "ddpm"}, "needs a model with a time input"},
		{[]string{"-n", "5", "-o", out, "--bogus"}, "unknown flag"},
	} {
		_, stderr, code := ebmrun(t, append([]string{"sample", model}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit 2 and one line with %q", tc.args, code, stderr, tc.msg)
		}
	}
}

// A model trained by ebmrun recommends ALD settings (100 steps per level,
// ε = 5e-6); other samplers keep their own defaults instead.
func TestSampleSamplerDefaults(t *testing.T) {
	t.Parallel()
	model := testenv.Path(t, "models", "swissroll", "model.onnx")
	dir := t.TempDir()
	for _, tc := range []struct {
		sampler string
		key     string
		want    float64
		evals   float64
	}{
		{"ald", "steps", 100, 1001},
		{"pc", "corrector_steps", 1, 20},
		{"ula", "steps", 1000, 1000},
		{"cas", "evaluations_per_sample", 10, 10},
	} {
		out := filepath.Join(dir, tc.sampler+".npy")
		stdout, stderr, code := ebmrun(t, "sample", model, "-n", "8", "-o", out, "--sampler", tc.sampler, "--json", "--backend", "native")
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tc.sampler, code, stderr)
			continue
		}
		var sum struct {
			Settings map[string]any `json:"settings"`
		}
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Settings[tc.key] != tc.want || sum.Settings["evaluations_per_sample"] != tc.evals {
			t.Errorf("%s: %s = %v, %v evaluations; want %v and %v", tc.sampler, tc.key, sum.Settings[tc.key], sum.Settings["evaluations_per_sample"], tc.want, tc.evals)
		}
	}
}

// A shard with no samples (more shards than samples) is written empty, and
// its summary line reads as the others do (it printed %!g(int=1001) for the
// evaluations per sample).
func TestEmptyShardSummary(t *testing.T) {
	t.Parallel()
	model := testenv.Path(t, "models", "swissroll", "model.onnx")
	out := filepath.Join(t.TempDir(), "s.npy")
	_, stderr, code := ebmrun(t, "sample", model, "-n", "2", "--shard", "5/7", "-o", out, "--backend", "native", "--steps", "2")
	if code != 0 || !strings.Contains(stderr, "wrote 0 samples") || !strings.Contains(stderr, " 21 evaluations per sample") || strings.Contains(stderr, "%!") {
		t.Fatalf("exit %d: %q", code, stderr)
	}
}
