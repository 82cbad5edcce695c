package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
)

// TestTrainEnergyAndLogZ trains a small energy by contrastive divergence
// through the CLI, checks it ships as kind energy with the CD settings in
// its provenance, and that logp's two log Z methods agree on it: AIS
// within four of its standard errors (and 0.05) of grid quadrature, and
// the mean log p moving with log Z.
func TestTrainEnergyAndLogZ(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "e.onnx")
	args := []string{"train", "--data", "8gaussians", "--arch", "energy-mlp", "--confine", "0.5", "--loss", "cd", "--width", "16", "--depth", "2",
		"--batch", "64", "--steps", "60", "--buffer", "500", "--energy-reg", "0.1", "--clip", "10", "--lr", "3e-3",
		"--backend", "native", "--threads", "1", "--seed", "3", "--log-every", "20", "--out", out}
	if _, stderr, code := ebmrun(t, args...); code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	m, err := importer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	cd, _ := spec.Provenance["cd"].(map[string]any)
	if spec.Kind != importer.OutEnergy || cd == nil || cd["buffer"] != float64(500) || len(spec.Sigmas) != 1 {
		t.Fatalf("spec %+v, provenance %v", spec, spec.Provenance)
	}
	logp := func(extra ...string) energyLogpSummary {
		t.Helper()
		a := append([]string{"logp", out, "--data", "toy:8gaussians:200", "--backend", "native", "--threads", "1", "--json"}, extra...)
		stdout, stderr, code := ebmrun(t, a...)
		if code != 0 {
			t.Fatalf("logp %v: exit %d: %s", extra, code, stderr)
		}
		var s energyLogpSummary
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("bad JSON %q: %v", stdout, err)
		}
		return s
	}
	grid := logp("--method", "grid", "--grid-points", "300", "--box", "-10,10")
	ais := logp("--method", "ais", "--chains", "400", "--temperatures", "400")
	t.Logf("log Z: grid %.4f (edge mass %.2g), AIS %.4f ± %.4f; mean log p %.4f / %.4f",
		grid.LogZ.LogZ, grid.LogZ.EdgeMass, ais.LogZ.LogZ, ais.LogZ.StdErr, grid.MeanLogP, ais.MeanLogP)
	if d := math.Abs(ais.LogZ.LogZ - grid.LogZ.LogZ); d > math.Max(4*ais.LogZ.StdErr, 0.01) || d > 0.05 {
		t.Errorf("AIS log Z %.4f ± %.4f vs grid %.4f", ais.LogZ.LogZ, ais.LogZ.StdErr, grid.LogZ.LogZ)
	}
	if grid.LogZ.EdgeMass > 1e-6 {
		t.Errorf("grid: %.2g of the mass in the box's outer cells", grid.LogZ.EdgeMass)
	}
	if d := (ais.MeanLogP - grid.MeanLogP) + (ais.LogZ.LogZ - grid.LogZ.LogZ); math.Abs(d) > 1e-9 {
		t.Errorf("mean log p does not move with log Z: residual %g", d)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--method", "nope"}, "want rk45, heun, ais or grid"},
		{[]string{"--method", "grid", "--box", "3,1"}, "--box"},
		{[]string{"--method", "ais", "--chains", "1"}, "--chains"},
		{[]string{"--method", "ais", "--heatmap", filepath.Join(dir, "h.png")}, "--heatmap"},
	} {
		a := append([]string{"logp", out, "--data", "toy:8gaussians:10", "--backend", "native"}, c.args...)
		if _, stderr, code := ebmrun(t, a...); code != 2 || !strings.Contains(stderr, c.msg) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want usage error naming %q", c.args, code, stderr, c.msg)
		}
	}
	// A score model is refused by the energy methods.
	score := filepath.Join(dir, "s.onnx")
	if _, stderr, code := ebmrun(t, trainArgs(score, "--steps", "2")...); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := ebmrun(t, "logp", score, "--data", "toy:8gaussians:10", "--method", "ais"); code != 2 || !strings.Contains(stderr, "energy") {
		t.Errorf("ais on a score model: exit %d, %q", code, stderr)
	}
}
