package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// densityCase is a model logp and the new samplers must run on: the flags
// its metadata lacks, and the samplers that fit its condition.
type densityCase struct {
	path     string
	flags    []string // roles the model's metadata does not give
	logp     []string // logp's own flags for this model
	samplers []string
	refuse   string // logp's error, for models it cannot take
}

func densityCases(t *testing.T) []densityCase {
	var cases []densityCase
	shipped := shippedScoreModels(t)
	if len(shipped) < 4 {
		t.Fatalf("found %d shipped models, want at least 4", len(shipped))
	}
	for _, p := range shipped {
		c := densityCase{path: p, samplers: []string{"ode", "em"}}
		if oneLevelEnergy(t, p) {
			// An energy trained at one σ (contrastive divergence) has no
			// σ range for the ODE: its log p is −E − log Z.
			c.logp = []string{"--method", "grid", "--grid-points", "100"}
			c.samplers = []string{"ald"}
		}
		cases = append(cases, c)
	}
	fx := func(name string) string { return testenv.Path(t, "testdata", "models", name, "model.onnx") }
	ve := []string{"--sigmas", "geom:1,0.01,10"}
	return append(cases,
		densityCase{path: fx("ncsn_mlp"), samplers: []string{"ode", "em"}},
		densityCase{path: fx("ncsn_mlp_op13"), flags: ve, samplers: []string{"ode", "em"}},
		densityCase{path: fx("conv_score"), flags: ve, samplers: []string{"ode", "em"}},
		densityCase{path: fx("conv_score_op13"), flags: ve, samplers: []string{"ode", "em"}},
		densityCase{path: fx("ncsnv1_labels"), flags: []string{"--sigmas", "geom:1,0.01,10"}, samplers: []string{"ode", "em"}},
		densityCase{path: fx("ddpm_eps"), samplers: []string{"ddim", "ddpm"}},
		densityCase{path: fx("energy_mlp"), refuse: "unconditional"},
	)
}

// randomData writes n points of the model's data shape, uniform in [−1, 1].
func randomData(t *testing.T, path string, n int) string {
	t.Helper()
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	shape := append([]int64{int64(n)}, s.DataShape...)
	x := graph.NewFloat32(shape, nil)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range x.F32 {
		x.F32[i] = float32(2*r.Float64() - 1)
	}
	out := filepath.Join(t.TempDir(), "data.npy")
	if err := tensorio.WriteNpyFile(out, x); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDensityEveryModel: logp and the ODE, EM and DDIM samplers run on every
// shipped model and fixture and give finite numbers, on both backends.
func TestDensityEveryModel(t *testing.T) {
	t.Parallel()
	for _, c := range densityCases(t) {
		name := filepath.Base(filepath.Dir(c.path))
		image := isImageModel(t, c.path)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := randomData(t, c.path, 4)
			for _, be := range []string{"native", "ort"} {
				args := append(append([]string{"logp", c.path, "--data", data, "--json", "--backend", be}, c.flags...), c.logp...)
				if image {
					// Four U-Net VJPs per point: fixed steps keep it short.
					args = append(args, "--steps", "2")
				}
				if be == "ort" && !ortAvailable() {
					testenv.Missing(t, "onnxruntime is not installed (make deps)")
					continue
				}
				stdout, stderr, code := ebmrun(t, args...)
				if c.refuse != "" {
					if code != 1 || !strings.Contains(stderr, c.refuse) {
						t.Errorf("%s: exit %d, stderr %q; want a refusal naming %q", be, code, stderr, c.refuse)
					}
					continue
				}
				if code != 0 {
					t.Fatalf("%s: logp exit %d: %s", be, code, stderr)
				}
				var sum logpSummary
				if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
					t.Fatal(err)
				}
				if math.IsNaN(sum.MeanLogP) || math.IsInf(sum.MeanLogP, 0) || sum.N != 4 || sum.Evaluations < 1 || sum.Backend != be {
					t.Errorf("%s: %+v", be, sum)
				}
			}
			for _, smp := range c.samplers {
				out := filepath.Join(t.TempDir(), smp+".npy")
				args := append([]string{"sample", c.path, "-n", "3", "-o", out, "--sampler", smp, "--backend", "native"}, c.flags...)
				if image || smp == "ddim" || smp == "ddpm" {
					args = append(args, "--steps", "3")
				}
				if smp == "ode" && !image {
					args = append(args, "--rtol", "1e-3", "--atol", "1e-3")
				}
				if _, stderr, code := ebmrun(t, args...); code != 0 {
					t.Fatalf("sample --sampler %s: exit %d: %s", smp, code, stderr)
				}
				got, err := tensorio.ReadNpyFile(out)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range got.F32 {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%s: a sample is %v", smp, v)
					}
				}
			}
		})
	}
}

func ortAvailable() bool {
	_, err := runtime.Get("ort")
	return err == nil
}

// eval --time evaluates the DDPM ε-fixture at a diffusion step; without it
// the model is a usage error, and ddpm honours --steps.
func TestEvalTimeAndStridedDDPM(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "models", "ddpm_eps", "model.onnx")
	stdout, stderr, code := ebmrun(t, "eval", path, "--data", "toy:8gaussians:200", "--time", "100", "--objective", "exact", "--json", "--backend", "native")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r evalResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Time == nil || *r.Time != 100 || math.IsNaN(r.Value) || r.Sigma == nil || !(*r.Sigma > 0 && *r.Sigma < 1) {
		t.Errorf("eval --time 100: %s", stdout)
	}
	if _, stderr, code := ebmrun(t, "eval", path, "--data", "toy:8gaussians:20", "--backend", "native"); code != 2 || !strings.Contains(stderr, "--time") {
		t.Errorf("no --time: exit %d, %q", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "s.npy")
	stdout, stderr, code = ebmrun(t, "sample", path, "-n", "4", "-o", out, "--steps", "7", "--json", "--backend", "native")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"evaluations": 28`) {
		t.Errorf("ddpm --steps 7 on 4 samples: %s", stdout)
	}
	// DDIM on a sub-sequence of its own choosing, and one that does not ascend.
	stdout, stderr, code = ebmrun(t, "sample", path, "-n", "4", "-o", out, "--force", "--sampler", "ddim", "--times", "0,5,50,400,999", "--eta", "0.5", "--json", "--backend", "native")
	if code != 0 || !strings.Contains(stdout, `"evaluations": 20`) {
		t.Errorf("ddim --times: exit %d, %s %s", code, stdout, stderr)
	}
	if _, _, code := ebmrun(t, "sample", path, "-n", "4", "-o", out, "--force", "--sampler", "ddim", "--times", "5,3", "--backend", "native"); code != 2 {
		t.Errorf("ddim --times 5,3: exit %d, want 2", code)
	}
}

// logp writes per-point values and a heat map, and refuses bad flags with
// exit 2 and one line.
func TestLogpOutputsAndUsage(t *testing.T) {
	t.Parallel()
	model := testenv.Path(t, "models", "swissroll", "model.onnx")
	dir := t.TempDir()
	out, png := filepath.Join(dir, "lp.npy"), filepath.Join(dir, "hm.png")
	stdout, stderr, code := ebmrun(t, "logp", model, "--data", "toy:swissroll:30", "-o", out, "--heatmap", png, "--grid", "8", "--backend", "native")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "log p") || !strings.Contains(stdout, "bits/dim") {
		t.Errorf("summary: %q", stdout)
	}
	lp, err := tensorio.ReadNpyFile(out)
	if err != nil || len(lp.F32) != 30 {
		t.Fatalf("per-point file: %v %v", err, lp)
	}
	if !fileExists(png) {
		t.Error("no heat map written")
	}
	// Existing outputs are kept without --force.
	if _, stderr, code := ebmrun(t, "logp", model, "--data", "toy:swissroll:3", "-o", out, "--backend", "native"); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("overwrite: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"--data", "toy:swissroll:3", "--divergence", "trace"},
		{"--data", "toy:swissroll:3", "--method", "heun"},
		{"--data", "toy:swissroll:3", "--rtol", "0"},
		{"--data", "toy:swissroll:3", "--time", "5"},
		{"--data", "toy:swissroll:3", "-o", filepath.Join(dir, "x.csv")},
		{},
	} {
		_, stderr, code := ebmrun(t, append([]string{"logp", model, "--backend", "native"}, args...)...)
		if code != 2 || !strings.HasPrefix(stderr, "ebmrun: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}

// oneLevelEnergy reports whether a model is an energy with a one-level
// σ schedule.
func oneLevelEnergy(t *testing.T, path string) bool {
	t.Helper()
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Kind == importer.OutEnergy && len(s.Sigmas) == 1
}
