package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// sched is the σ schedule the research fixtures stand for, given as a user
// must: without metadata only the training code knows it.
var sched = []string{"--sigmas", "geom:1,0.01,10"}

// researchModels are the research-family fixtures of testdata/research,
// exported by plain torch.onnx.export without ebmrun metadata: the roles
// ebmrun must infer, and the flags a user adds (the σ schedule that NCSN v1's
// labels index and the σ-conditioned models are sampled on).
var researchModels = []struct {
	name, condition, kind string
	flags                 []string
}{
	{"ncsnv1_op13", "labels", "score", sched},
	{"ncsnv1_op17", "labels", "score", sched},
	{"ncsnv2_op14", "sigma", "score", sched},
	{"ncsnpp_op14", "sigma", "score", sched},
	{"ncsnpp_op17", "sigma", "score", sched},
	{"ddpm_op13", "time", "eps", nil},
	{"ddpm_float_op17", "time", "eps", nil},
	{"nice_op14", "none", "energy", nil},
	{"ncsnv2_nofold_op13", "sigma", "score", sched},
	{"ncsnpp_nofold_op17", "sigma", "score", sched},
}

// TestResearchModels takes every research family the way a user would:
// inspect decides the roles, validate compares native and onnxruntime with
// PyTorch's outputs, sample draws a few points on native, and eval gives
// the SSM objective on both backends (DDPM models at step 10), which must
// agree. Kept small: batch 4, two Langevin steps per level.
func TestResearchModels(t *testing.T) {
	t.Parallel()
	backends := "native"
	if _, err := runtime.Get("ort"); err != nil {
		testenv.Missing(t, "onnxruntime: "+err.Error())
	} else {
		backends = "native,ort"
	}
	for _, rm := range researchModels {
		t.Run(rm.name, func(t *testing.T) {
			t.Parallel()
			dir := testenv.Path(t, "testdata", "research", rm.name)
			testenv.Require(t, dir, "run `/usr/bin/python3 testdata/research/make_research.py`")
			model := filepath.Join(dir, "model.onnx")

			stdout, stderr, code := ebmrun(t, "inspect", "--json", model)
			if code != 0 {
				t.Fatalf("inspect: exit %d: %s", code, stderr)
			}
			var r struct {
				Spec struct {
					X         string `json:"x_input"`
					Condition string `json:"condition"`
					Kind      string `json:"kind"`
				} `json:"spec"`
				Backends []struct {
					Name   string `json:"name"`
					Runs   bool   `json:"runs"`
					Reason string `json:"reason"`
				} `json:"backends"`
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("inspect: bad JSON: %v", err)
			}
			if r.Spec.X != "x" || r.Spec.Condition != rm.condition || r.Spec.Kind != rm.kind {
				t.Errorf("inspect: roles x=%q %s/%s, want x %s/%s", r.Spec.X, r.Spec.Condition, r.Spec.Kind, rm.condition, rm.kind)
			}
			for _, b := range r.Backends {
				if b.Name == "native" && !b.Runs {
					t.Errorf("inspect: native cannot run it: %s", b.Reason)
				}
			}

			if _, stderr, code := ebmrun(t, "validate", model, "--inputs", filepath.Join(dir, "inputs"),
				"--expect", filepath.Join(dir, "expected"), "--backends", backends); code != 0 {
				t.Errorf("validate: exit %d: %s", code, stderr)
			}

			researchSample(t, rm.name, model, rm.flags)

			evalArgs := append([]string{"eval", model, "--data", filepath.Join(dir, "inputs", "x.npy"), "--json", "--seed", "2"}, rm.flags...)
			switch rm.condition {
			case "sigma":
				evalArgs = append(evalArgs, "--sigma", "0.1")
			case "labels":
				evalArgs = append(evalArgs, "--sigma", "1") // the schedule's first level
			case "time":
				evalArgs = append(evalArgs, "--time", "10")
			}
			var vals []float64
			for _, be := range []string{"native", "ort"} {
				if be == "ort" && backends == "native" {
					continue
				}
				stdout, stderr, code := ebmrun(t, append(evalArgs, "--backend", be)...)
				if code != 0 {
					t.Fatalf("eval on %s: exit %d: %s", be, code, stderr)
				}
				var res struct {
					Objective string  `json:"objective"`
					Value     float64 `json:"value"`
					N         int     `json:"n"`
				}
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatalf("eval: bad JSON %q: %v", stdout, err)
				}
				if res.Objective != "ssm" || res.N != 4 || math.IsNaN(res.Value) || math.IsInf(res.Value, 0) {
					t.Errorf("eval on %s: %+v", be, res)
				}
				vals = append(vals, res.Value)
			}
			if len(vals) == 2 && math.Abs(vals[0]-vals[1]) > 1e-3*math.Abs(vals[1])+1e-3 {
				t.Errorf("eval: SSM %v on native, %v on ort", vals[0], vals[1])
			}
		})
	}
}

// researchSample draws two samples on native with the CLI: two Langevin
// steps per σ level, or four strided DDPM steps.
func researchSample(t *testing.T, name, model string, flags []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "s.npy")
	steps := "2"
	if strings.HasPrefix(name, "ddpm") {
		steps = "4"
	}
	args := append([]string{"sample", model, "-n", "2", "--steps", steps, "--backend", "native", "--seed", "1", "-o", out}, flags...)
	if _, stderr, code := ebmrun(t, args...); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	s, err := tensorio.ReadNpyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dim := int(graph.NumElements(s.Shape[1:]))
	if s.Shape[0] != 2 || len(s.F32) != 2*dim {
		t.Fatalf("sample: shape %v, want 2 samples", s.Shape)
	}
	for i, v := range s.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("sample: value %d is %v", i, v)
		}
	}
	if s.F32[0] == s.F32[dim] {
		t.Errorf("sample: the two chains start alike: %v", strconv.FormatFloat(float64(s.F32[0]), 'g', -1, 32))
	}
}
