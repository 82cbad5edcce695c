package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

func pytorchExport(t *testing.T, name string) string {
	t.Helper()
	path := testenv.Path(t, "testdata", "pytorch", name, "model.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/pytorch/make_exports.py`")
	return path
}

// The exports' networks are exact for data N(mu, 0.5² I) (make_exports.py).
var exportMu = [2]float64{1.5, -1}

const exportStd = 0.5

// checkMoments reads samples [n,2] and compares their mean and spread with
// the exports' Gaussian, within tol standard errors.
func checkMoments(t *testing.T, path string, n int) {
	t.Helper()
	x, err := tensorio.ReadNpyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Shape) != 2 || x.Shape[0] != int64(n) || x.Shape[1] != 2 {
		t.Fatalf("%s: shape %v", path, x.Shape)
	}
	for j := 0; j < 2; j++ {
		var s, s2 float64
		for i := 0; i < n; i++ {
			v := float64(x.F32[2*i+j])
			s += v
			s2 += v * v
		}
		mean := s / float64(n)
		std := math.Sqrt(s2/float64(n) - mean*mean)
		// 5 standard errors of the mean; the spread within 15% (ALD and
		// DDPM are both close to exact on a Gaussian).
		if se := exportStd / math.Sqrt(float64(n)); math.Abs(mean-exportMu[j]) > 5*se || math.Abs(std-exportStd) > 0.15*exportStd {
			t.Errorf("%s: coordinate %d: mean %.3f, std %.3f; want %.3f ± %.3f, %.3f", path, j, mean, std, exportMu[j], 5*se, exportStd)
		}
	}
}

// A PyTorch σ-conditioned score network exported without metadata: sample
// refuses it for want of its schedule, inspect says so, and one ebmrun meta
// makes it sample correctly.
func TestMetaPyTorchRoundTrip(t *testing.T) {
	t.Parallel()
	model := pytorchExport(t, "resmlp_sigma")
	dir := t.TempDir()
	out := filepath.Join(dir, "s.npy")
	_, stderr, code := ebmrun(t, "sample", model, "-n", "10", "-o", out)
	if code != 2 || !strings.Contains(stderr, "--sigmas") || !strings.Contains(stderr, "ebmrun meta") {
		t.Errorf("sample without a schedule: exit %d, %q", code, stderr)
	}
	if stdout, _, _ := ebmrun(t, "inspect", model); !strings.Contains(stdout, "no σ schedule: sample refuses this σ-conditioned model") {
		t.Errorf("inspect does not warn of the missing schedule:\n%s", stdout)
	}
	withMeta := filepath.Join(dir, "model.onnx")
	if _, stderr, code := ebmrun(t, "meta", model, "-o", withMeta, "--sigmas", "geom:20,0.01,12", "--data-range=-4,4"); code != 0 {
		t.Fatalf("meta: exit %d, %s", code, stderr)
	}
	stdout, stderr, code := ebmrun(t, "meta", withMeta, "--show")
	for _, want := range []string{"ebmrun.condition        sigma\n", "ebmrun.condition_input  sigma\n", "ebmrun.data_range       [-4,4]\n",
		"ebmrun.data_shape       [2]\n", "ebmrun.kind             score\n", "ebmrun.output           out\n", "ebmrun.sigmas           [20,10.02", "ebmrun.x_input          x\n"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("--show: exit %d (%s), missing %q in:\n%s", code, stderr, want, stdout)
		}
	}
	if _, stderr, code := ebmrun(t, "sample", withMeta, "-n", "2000", "-o", out, "--backend", "native", "--seed", "1"); code != 0 {
		t.Fatalf("sample after meta: exit %d, %s", code, stderr)
	}
	checkMoments(t, out, 2000)

	// A step size far too large for the σ_L = 0.01 level (α·|s'| = 0.52/0.25
	// > 2) makes ULA oscillate outward: a warning, with level and step.
	_, stderr, code = ebmrun(t, "sample", withMeta, "-n", "50", "-o", out, "--force", "--backend", "native",
		"--sampler", "ula", "--step-lr", "0.52", "--steps", "300")
	if code != 0 || !strings.Contains(stderr, "ebmrun: warning: samples left the plausible box [-40, 40] (10× the data range, ±10σ while noisy) at σ level 1 of 1 (σ=0.01), step ") ||
		!strings.Contains(stderr, "50 of 50 samples end outside it (a smaller --step-lr may help)") {
		t.Errorf("exploding ula: exit %d, %q", code, stderr)
	}
	if _, stderr, _ := ebmrun(t, "sample", withMeta, "-n", "50", "-o", out, "--force", "--backend", "native"); strings.Contains(stderr, "warning") {
		t.Errorf("a good run warned: %q", stderr)
	}

	// A second meta keeps what the first wrote and changes only the sampler.
	if _, stderr, code := ebmrun(t, "meta", withMeta, "-o", withMeta, "--sampler", "pc", "--snr", "0.2"); code != 0 {
		t.Fatalf("meta in place: exit %d, %s", code, stderr)
	}
	stdout, _, _ = ebmrun(t, "inspect", withMeta, "--json")
	var r inspectReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Metadata["ebmrun.sampler"] != `{"sampler":"pc","snr":0.2}` || r.Spec == nil || len(r.Spec.Sigmas) != 12 || len(r.Warnings) != 0 {
		t.Errorf("after the second meta: %v, warnings %v", r.Metadata, r.Warnings)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left in the folder: %v", entries)
	}
}

// A DDPM ε-model with its time input called labels and a batch fixed at 16:
// with its β schedule it is read as time-conditioned and samples for any
// --batch, the same samples as in batches of 16.
func TestMetaDDPMFixedBatch(t *testing.T) {
	t.Parallel()
	model := pytorchExport(t, "ddpm_labels_b16")
	dir := t.TempDir()
	stdout, _, _ := ebmrun(t, "inspect", model)
	if !strings.Contains(stdout, `fixed batch: input "x" was exported for batches of exactly 16`) || !strings.Contains(stdout, "dynamic_axes") {
		t.Errorf("inspect does not warn of the fixed batch:\n%s", stdout)
	}
	withMeta := filepath.Join(dir, "model.onnx")
	if _, stderr, code := ebmrun(t, "meta", model, "-o", withMeta, "--betas", "linear:1e-4,0.02,1e3"); code != 0 {
		t.Fatalf("meta: exit %d, %s", code, stderr)
	}
	stdout, _, _ = ebmrun(t, "inspect", withMeta, "--json")
	var r inspectReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if s := r.Spec; s == nil || s.Condition != "time" || s.CondInput != "labels" || s.Kind != "eps" || s.FixedBatch != 16 || s.Betas == nil || s.Betas.Steps != 1000 {
		t.Fatalf("roles after meta: %+v", r.Spec)
	}
	var outs []string
	for _, batch := range []string{"16", "30", "1000"} {
		out := filepath.Join(dir, "b"+batch+".npy")
		if _, stderr, code := ebmrun(t, "sample", withMeta, "-n", "200", "-o", out, "--batch", batch, "--backend", "native", "--workers", "1"); code != 0 {
			t.Fatalf("--batch %s: exit %d, %s", batch, code, stderr)
		}
		b, _ := os.ReadFile(out)
		outs = append(outs, string(b))
	}
	if outs[0] != outs[1] || outs[0] != outs[2] {
		t.Error("padded batches changed the samples")
	}
	checkMoments(t, filepath.Join(dir, "b30.npy"), 200)
}

func TestMetaUsageErrors(t *testing.T) {
	t.Parallel()
	model := pytorchExport(t, "resmlp_sigma")
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	os.WriteFile(filepath.Join(dir, "exists.onnx"), []byte("keep"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "give -o OUT to write the metadata, or --show"},
		{[]string{"--sigmas", "1,0.1"}, 2, "-o OUT is required"},
		{[]string{"-o", out, "--betas", "cosine:1"}, 2, "--betas \"cosine:1\": want linear:START,END,STEPS"},
		{[]string{"-o", out, "--data-range", "3,1"}, 2, "LO < HI"},
		{[]string{"-o", out, "--data-shape", "2,x"}, 2, "--data-shape"},
		{[]string{"-o", out, "--sigmas", "1,2"}, 2, "not below level"},
		{[]string{"-o", out, "--condition", "labels"}, 2, "label input \"sigma\" is float32, want int64"},
		{[]string{"-o", out, "--sigmas", "1,0.1", "--sampler", "cas", "--step-lr", "1"}, 2, "outside 1−γ < η < 1+γ"},
		{[]string{"-o", filepath.Join(dir, "exists.onnx"), "--sigmas", "1,0.1"}, 1, "exists; use --force"},
	} {
		_, stderr, code := ebmrun(t, append([]string{"meta", model}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d and one line with %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "exists.onnx")); string(b) != "keep" {
		t.Error("an existing file was overwritten")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left in the folder: %v", entries)
	}
}
