package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/tensorio"
)

func evalJSON(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := ebmrun(t, append([]string{"eval", "--json", "--backend", "native"}, args...)...)
	if code != 0 {
		t.Fatalf("eval %v: exit %d: %s", args, code, stderr)
	}
	return stdout
}

func TestEvalJSON(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	byObjective := map[string]evalResult{}
	for _, obj := range []string{"ssm", "ssm-vr", "exact", "fd-ssm", "dsm", "fisher"} {
		var r evalResult
		out := evalJSON(t, model, "--data", "toy:8gaussians:300", "--sigma", "0.1", "--objective", obj, "--seed", "3")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v in %q", obj, err, out)
		}
		if r.Objective != obj || r.Sigma == nil || *r.Sigma != 0.1 || r.N != 300 || r.StdErr == nil || !(*r.StdErr > 0) || math.IsNaN(r.Value) {
			t.Errorf("%s: %+v", obj, r)
		}
		byObjective[obj] = r
	}
	// The same seed perturbs the data alike for every objective, so the
	// Fisher divergence is exact score matching's value minus that of the
	// true score, −½E‖∇log p_σ‖² < 0: it lies above the exact value.
	if f, e := byObjective["fisher"].Value, byObjective["exact"].Value; !(f > 0) || !(f > e) {
		t.Errorf("fisher %.6g, exact %.6g: want fisher positive and above exact", f, e)
	}
}

func TestEvalAllSigmasAndFiles(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	var rs []evalResult
	out := evalJSON(t, model, "--data", "toy:ring8:200", "--all-sigmas", "--objective", "dsm")
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if len(rs) != 11 || rs[10].Objective != "dsm-ncsn" || rs[10].Sigma != nil || rs[0].Sigma == nil || *rs[0].Sigma != 1 {
		t.Fatalf("--all-sigmas dsm: %+v; want 10 levels and the NCSN total", rs)
	}

	dir := t.TempDir()
	toy, _ := dataset.Toy("8gaussians")
	file := filepath.Join(dir, "x.npy")
	if err := tensorio.WriteNpyFile(file, toy.Tensor(200, rand.New(rand.NewPCG(1, 1)))); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := ebmrun(t, "eval", model, "--data", file, "--sigma", "0.5", "--objective", "ssm-vr", "--projection", "sphere", "--projections", "2", "--batch", "64")
	if code != 0 || !strings.Contains(stdout, "ssm-vr") || !strings.Contains(stdout, "200 samples") || stderr != "" {
		t.Errorf("table: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestEvalUsageErrors(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	file := filepath.Join(t.TempDir(), "x.npy")
	toy, _ := dataset.Toy("moons")
	if err := tensorio.WriteNpyFile(file, toy.Tensor(20, rand.New(rand.NewPCG(1, 1)))); err != nil {
		t.Fatal(err)
	}
	toyData := []string{"--data", "toy:8gaussians:10"}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--sigma", "0.1"}, "--data FILE is required"},
		{toyData, "give --sigma S or --all-sigmas"},
		{append([]string{"--sigma", "0.1", "--all-sigmas"}, toyData...), "exclude each other"},
		{append([]string{"--sigma", "-1"}, toyData...), "positive noise level"},
		{append([]string{"--sigma", "0.1", "--objective", "sm"}, toyData...), `--objective "sm"`},
		{append([]string{"--sigma", "0.1", "--projection", "uniform"}, toyData...), `--projection "uniform"`},
		{append([]string{"--sigma", "0.1", "--projections", "0"}, toyData...), "--projections is 0"},
		{[]string{"--sigma", "0.1", "--objective", "fisher", "--data", file}, "fisher needs an exact score"},
		{[]string{"--sigma", "0.1", "--objective", "fisher", "--data", "toy:moons:10"}, "fisher needs an exact score"},
		{[]string{"--sigma", "0.1", "--data", "toy:8gaussians"}, "toy:NAME:N"},
		{[]string{"--sigma", "0.1", "--data", "toy:blobs:10"}, "no toy distribution"},
	} {
		_, stderr, code := ebmrun(t, append([]string{"eval", model}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit 2 and one line with %q", tc.args, code, stderr, tc.msg)
		}
	}
	// A model the evaluation cannot read is an error (exit 1), in one line.
	_, stderr, code := ebmrun(t, "eval", file, "--data", file, "--sigma", "0.1")
	if code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("not a model: exit %d, %q", code, stderr)
	}
}
