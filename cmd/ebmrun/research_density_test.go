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
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

// Tolerances of the research-family density checks.
const (
	// researchLogpTol: native and onnxruntime integrate the same fixed-step
	// ODE with the same probes; only float32 rounding inside the model
	// differs, so log p (≈ −10³ nats for 768 values) agrees to a few 1e-6
	// relative. Measured: ≤ 2e-6 nats apart.
	researchLogpRel, researchLogpAbs = 1e-5, 1e-3
	// niceDim is the NICE energy's d. Its log Z is known exactly:
	// E = ½‖z‖² − Σs with z a volume-preserving coupling map of x scaled by
	// exp(s), so ∫exp(−E)dx = ∫exp(−½‖z‖²)dz = (2π)^(d/2).
	niceDim = 64
	// niceAISTol: AIS with 100 chains and 1 000 temperatures is biased low
	// by about the log of its weights' spread (ESS ≈ 10 of 100 here):
	// seeds 1–3 gave 58.1 … 58.7 against 58.81.
	niceAISTol = 1.5
)

// researchShapes reads each fixture's data shape from MANIFEST.json.
func researchShapes(t *testing.T) map[string][]int64 {
	t.Helper()
	path := testenv.Path(t, "testdata", "research", "MANIFEST.json")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/research/make_research.py`")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Models map[string]struct {
			DataShape []int64 `json:"data_shape"`
		} `json:"models"`
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatalf("MANIFEST.json: %v", err)
	}
	out := map[string][]int64{}
	for k, v := range man.Models {
		out[k] = v.DataShape
	}
	return out
}

// TestResearchDensity runs logp and the ODE, EM and DDIM samplers on every
// research-family fixture (exported without metadata: the σ schedule comes
// from --sigmas, the DDPM β schedule is DDPM's default). Kept cheap: the four
// points of inputs/x.npy, Hutchinson's divergence with 2 probes and 2 fixed
// Heun steps (d = 768: the exact divergence is 768 VJP rows per point, run
// once below), 2–4 sampler steps.
//
//   - σ- and label-conditioned score models: the VE ODE σ 0.01 → 1 on native
//     and onnxruntime, agreeing within researchLogp*; `sample --sampler ode`
//     (2 fixed RK45 steps: 1 + 6·2 evaluations) and `em` (3 geometric levels,
//     between NCSN v1's labels) on native.
//   - DDPM ε-models (int64 and float time): the VP ODE from --time 10 on
//     both backends; `ddim` with η = 0 and η = 0.5 (4 strided steps) on native.
//   - The NICE energy is unconditional: the ODE has no noise levels to
//     integrate over and logp refuses it with the flags that work; grid
//     quadrature is refused at d = 64 > 2; `--method ais` runs on both
//     backends and its log Z is checked against the closed form.
func TestResearchDensity(t *testing.T) {
	t.Parallel()
	shapes := researchShapes(t)
	backends := []string{"native", "ort"}
	if !ortAvailable() {
		testenv.Missing(t, "onnxruntime is not installed (make deps)")
		backends = backends[:1]
	}
	for _, rm := range researchModels {
		t.Run(rm.name, func(t *testing.T) {
			t.Parallel()
			dir := testenv.Path(t, "testdata", "research", rm.name)
			testenv.Require(t, dir, "run `/usr/bin/python3 testdata/research/make_research.py`")
			model := filepath.Join(dir, "model.onnx")
			data := filepath.Join(dir, "inputs", "x.npy")
			shape, ok := shapes[rm.name]
			if !ok {
				t.Fatalf("MANIFEST.json has no %s", rm.name)
			}
			if rm.kind == "energy" {
				researchEnergyLogp(t, model, data, backends)
				return
			}
			researchODELogp(t, rm.name, rm.condition, model, data, rm.flags, backends)
			if rm.condition == "time" {
				// η > 0 draws fresh noise at each step: with the same seed
				// and start it must end elsewhere than η = 0.
				a := researchFlowSample(t, model, rm.flags, shape, "ddim", 4, "--steps", "4", "--eta", "0")
				b := researchFlowSample(t, model, rm.flags, shape, "ddim", 4, "--steps", "4", "--eta", "0.5")
				if slices.Equal(a, b) {
					t.Errorf("ddim: η = 0.5 gave the samples of η = 0")
				}
				return
			}
			researchFlowSample(t, model, rm.flags, shape, "ode", 1+6*2, "--steps", "2")
			researchFlowSample(t, model, rm.flags, shape, "em", 3, "--steps", "3")
		})
	}
}

// researchODELogp runs logp through the probability-flow ODE on each
// backend and checks the summary and the agreement of the backends.
func researchODELogp(t *testing.T, name, condition, model, data string, flags, backends []string) {
	t.Helper()
	args := append([]string{"logp", model, "--data", data, "--json", "--seed", "3",
		"--divergence", "hutchinson", "--probes", "2", "--method", "heun", "--steps", "2"}, flags...)
	wantProcess, wantFrom := "ve", 0.01
	if condition == "time" {
		args = append(args, "--time", "10")
		wantProcess, wantFrom = "vp", 10.0/999
	}
	var means []float64
	var perPoint [][]float32
	for _, be := range backends {
		out := filepath.Join(t.TempDir(), "lp.npy")
		stdout, stderr, code := ebmrun(t, append(args, "--backend", be, "-o", out)...)
		if code != 0 {
			t.Fatalf("logp on %s: exit %d: %s", be, code, stderr)
		}
		var s logpSummary
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("logp on %s: bad JSON: %v", be, err)
		}
		finite := !math.IsNaN(s.MeanLogP) && !math.IsInf(s.MeanLogP, 0) && !math.IsNaN(s.BitsPerDim) && s.StdErr != nil && !math.IsNaN(*s.StdErr)
		// Heun takes 2 evaluations a step; the 4 points are one batch.
		if !finite || s.N != 4 || s.Dim != 768 || s.Backend != be || s.Process != wantProcess ||
			math.Abs(s.From-wantFrom) > 1e-9 || s.To != 1 || s.Divergence != "hutchinson" || s.Probes != 2 ||
			s.Evaluations != 4 || s.EvalsPerPoint != 4 {
			t.Errorf("logp on %s: %+v", be, s)
		}
		if s.Interpolated != (condition == "labels") {
			t.Errorf("logp on %s: interpolated = %v for a %s-conditioned model", be, s.Interpolated, condition)
		}
		lp, err := tensorio.ReadNpyFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(lp.F32) != 4 {
			t.Fatalf("logp on %s: -o holds %v values, want 4", be, lp.Shape)
		}
		var sum float64
		for _, v := range lp.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("logp on %s: a point's log p is %v", be, v)
			}
			sum += float64(v)
		}
		if math.Abs(sum/4-s.MeanLogP) > 1e-3 {
			t.Errorf("logp on %s: -o's mean %v, summary's %v", be, sum/4, s.MeanLogP)
		}
		means, perPoint = append(means, s.MeanLogP), append(perPoint, lp.F32)
	}
	if len(means) == 2 {
		for i := range perPoint[0] {
			a, b := float64(perPoint[0][i]), float64(perPoint[1][i])
			if math.Abs(a-b) > researchLogpRel*math.Abs(b)+researchLogpAbs {
				t.Errorf("logp: point %d is %v on native, %v on ort", i, a, b)
			}
		}
		t.Logf("%s: mean log p %.6f (native), %.6f (ort)", name, means[0], means[1])
	}
	switch name {
	case "ncsnpp_op14":
		researchExactLogp(t, model, flags, backends)
	case "ncsnv2_op14", "ddpm_op13":
		researchMetaLogp(t, model, data, condition, means[0])
	}
}

// researchMetaLogp gives a fixture its facts with `ebmrun meta`, as a user
// would once, and checks logp reads them: a DDPM β schedule (DDPM's own
// gives the numbers of the default exactly; a 500-step one starts the VP
// ODE at 10/499), or a VE model's σ schedule and data range (then
// --dequantize adds log₂(256/2) = 7 bits/dim).
func researchMetaLogp(t *testing.T, model, data, condition string, mean float64) {
	t.Helper()
	logp := func(withMeta string, extra ...string) logpSummary {
		t.Helper()
		args := append([]string{"logp", withMeta, "--data", data, "--json", "--seed", "3", "--divergence", "hutchinson",
			"--probes", "2", "--method", "heun", "--steps", "2", "--backend", "native"}, extra...)
		stdout, stderr, code := ebmrun(t, args...)
		if code != 0 {
			t.Fatalf("logp after meta: exit %d: %s", code, stderr)
		}
		var s logpSummary
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(s.MeanLogP) || math.IsInf(s.MeanLogP, 0) {
			t.Fatalf("logp after meta: %+v", s)
		}
		return s
	}
	meta := func(facts ...string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "meta.onnx")
		if _, stderr, code := ebmrun(t, append([]string{"meta", model, "-o", out}, facts...)...); code != 0 {
			t.Fatalf("meta %v: exit %d: %s", facts, code, stderr)
		}
		return out
	}
	if condition == "time" {
		if s := logp(meta("--betas", "linear:1e-4,0.02,1000"), "--time", "10"); s.MeanLogP != mean {
			t.Errorf("logp with DDPM's β schedule in metadata: %v, without: %v", s.MeanLogP, mean)
		}
		s := logp(meta("--betas", "linear:2e-4,0.04,500"), "--time", "10")
		if math.Abs(s.From-10.0/499) > 1e-12 || s.MeanLogP == mean {
			t.Errorf("logp with a 500-step β schedule: from t=%v (want 10/499), log p %v (the 1000-step one's: %v)", s.From, s.MeanLogP, mean)
		}
		return
	}
	withMeta := meta("--sigmas", "geom:1,0.01,10", "--data-range", "-1,1")
	if s := logp(withMeta); s.MeanLogP != mean || s.Dequantized {
		t.Errorf("logp with the σ schedule in metadata: %v (dequantized %v), with --sigmas: %v", s.MeanLogP, s.Dequantized, mean)
	}
	s := logp(withMeta, "--dequantize", "uniform")
	if want := -s.MeanLogP/(768*math.Ln2) + 7; !s.Dequantized || math.Abs(s.BitsPerDim-want) > 1e-9 {
		t.Errorf("logp --dequantize uniform: %v bits/dim (dequantized %v), want −log p/(d ln 2) + 7 = %v", s.BitsPerDim, s.Dequantized, want)
	}
}

// researchExactLogp runs the exact divergence (768 basis-vector VJPs) once,
// on one point with one Heun step, on each backend, and checks Hutchinson's
// estimate against it: the same point 8 times, 8 probes each (each copy
// draws its own probes), so the summary's standard error is the Monte Carlo
// error of the 64-probe mean, which must cover the exact value.
func researchExactLogp(t *testing.T, model string, flags, backends []string) {
	t.Helper()
	one := randomData(t, model, 1)
	var got []float64
	for _, be := range backends {
		args := append([]string{"logp", model, "--data", one, "--json", "--divergence", "exact",
			"--method", "heun", "--steps", "1", "--backend", be}, flags...)
		stdout, stderr, code := ebmrun(t, args...)
		if code != 0 {
			t.Fatalf("logp --divergence exact on %s: exit %d: %s", be, code, stderr)
		}
		var s logpSummary
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(s.MeanLogP) || math.IsInf(s.MeanLogP, 0) || s.N != 1 || s.Divergence != "exact" || s.Probes != 0 || s.Evaluations != 2 {
			t.Errorf("logp --divergence exact on %s: %+v", be, s)
		}
		got = append(got, s.MeanLogP)
	}
	if len(got) == 2 && math.Abs(got[0]-got[1]) > researchLogpRel*math.Abs(got[1])+researchLogpAbs {
		t.Errorf("logp --divergence exact: %v on native, %v on ort", got[0], got[1])
	}

	x, err := tensorio.ReadNpyFile(one)
	if err != nil {
		t.Fatal(err)
	}
	rep := graph.NewFloat32(append([]int64{8}, x.Shape[1:]...), nil)
	for i := 0; i < 8; i++ {
		copy(rep.F32[i*len(x.F32):], x.F32)
	}
	eight := filepath.Join(t.TempDir(), "eight.npy")
	if err := tensorio.WriteNpyFile(eight, rep); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"logp", model, "--data", eight, "--json", "--divergence", "hutchinson", "--probes", "8",
		"--method", "heun", "--steps", "1", "--seed", "1", "--backend", "native"}, flags...)
	stdout, stderr, code := ebmrun(t, args...)
	if code != 0 {
		t.Fatalf("logp --divergence hutchinson: exit %d: %s", code, stderr)
	}
	var h logpSummary
	if err := json.Unmarshal([]byte(stdout), &h); err != nil {
		t.Fatal(err)
	}
	if h.StdErr == nil || !(*h.StdErr > 0) {
		t.Fatalf("logp --divergence hutchinson: no spread over the copies' probes: %+v", h)
	}
	if d := math.Abs(h.MeanLogP - got[0]); d > 4**h.StdErr {
		t.Errorf("logp: Hutchinson's %v ± %v is %.2g s.e. from the exact %v", h.MeanLogP, *h.StdErr, d / *h.StdErr, got[0])
	}
	t.Logf("exact divergence: log p %.4f; Hutchinson 64 probes %.4f ± %.3f", got[0], h.MeanLogP, *h.StdErr)
}

// researchEnergyLogp checks the unconditional NICE energy: the ODE and grid
// quadrature are refused with errors that say why and what works; AIS
// gives log Z near the closed form on each backend.
func researchEnergyLogp(t *testing.T, model, data string, backends []string) {
	t.Helper()
	_, stderr, code := ebmrun(t, "logp", model, "--data", data, "--json", "--backend", "native")
	if code != 1 || !strings.Contains(stderr, "unconditional") || !strings.Contains(stderr, "--method ais") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("logp (ODE) of an unconditional energy: exit %d, %q; want one line naming --method ais", code, stderr)
	}
	_, stderr, code = ebmrun(t, "logp", model, "--data", data, "--json", "--method", "grid", "--backend", "native")
	if code != 1 || !strings.Contains(stderr, "d ≤ 2") || !strings.Contains(stderr, "d = 64") {
		t.Errorf("logp --method grid at d = 64: exit %d, %q; want a refusal naming the dimension", code, stderr)
	}
	exact := niceDim / 2 * math.Log(2*math.Pi)
	type result struct {
		MeanLogP float64 `json:"mean_logp"`
		N        int     `json:"n"`
		Dim      int     `json:"dim"`
		Evals    int64   `json:"evaluations"`
		LogZ     struct {
			LogZ   float64 `json:"log_z"`
			StdErr float64 `json:"stderr"`
			Method string  `json:"method"`
		} `json:"log_z"`
	}
	var rs []result
	for _, be := range backends {
		stdout, stderr, code := ebmrun(t, "logp", model, "--data", data, "--json", "--method", "ais",
			"--chains", "100", "--temperatures", "1000", "--seed", "1", "--backend", be)
		if code != 0 {
			t.Fatalf("logp --method ais on %s: exit %d: %s", be, code, stderr)
		}
		var r result
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		// 1 000 temperatures + the start, 100 chains each, + 4 points.
		if r.N != 4 || r.Dim != niceDim || r.LogZ.Method != "ais" || r.Evals != 100*1001+4 ||
			math.IsNaN(r.MeanLogP) || math.IsInf(r.MeanLogP, 0) || !(r.LogZ.StdErr > 0) {
			t.Errorf("logp --method ais on %s: %+v", be, r)
		}
		if math.Abs(r.LogZ.LogZ-exact) > niceAISTol {
			t.Errorf("logp --method ais on %s: log Z = %.4f ± %.2g, the closed form is %.4f", be, r.LogZ.LogZ, r.LogZ.StdErr, exact)
		}
		rs = append(rs, r)
	}
	if len(rs) == 2 {
		a, b := rs[0], rs[1]
		// −mean E = mean log p + log Z is a plain forward pass: tight.
		ea, eb := a.MeanLogP+a.LogZ.LogZ, b.MeanLogP+b.LogZ.LogZ
		if math.Abs(ea-eb) > 1e-4*math.Abs(eb)+1e-4 {
			t.Errorf("logp --method ais: −mean E %v on native, %v on ort", ea, eb)
		}
		// AIS runs the same chains on both, but a MALA acceptance within
		// float32 rounding of its threshold can go either way and send a
		// chain elsewhere: the estimates agree within their errors.
		if d := math.Abs(a.LogZ.LogZ - b.LogZ.LogZ); d > 1e-3 && d > 3*math.Hypot(a.LogZ.StdErr, b.LogZ.StdErr) {
			t.Errorf("logp --method ais: log Z %v ± %v on native, %v ± %v on ort", a.LogZ.LogZ, a.LogZ.StdErr, b.LogZ.LogZ, b.LogZ.StdErr)
		}
	}
}

// researchFlowSample draws 2 samples on native with one of the new samplers
// and checks their shape, that they are finite, and the evaluations
// reported (wantEvals per sample). It returns the samples.
func researchFlowSample(t *testing.T, model string, flags []string, shape []int64, smp string, wantEvals int, extra ...string) []float32 {
	t.Helper()
	out := filepath.Join(t.TempDir(), smp+".npy")
	args := append(append([]string{"sample", model, "-n", "2", "-o", out, "--sampler", smp, "--backend", "native",
		"--seed", "5", "--json"}, flags...), extra...)
	stdout, stderr, code := ebmrun(t, args...)
	if code != 0 {
		t.Fatalf("sample --sampler %s %v: exit %d: %s", smp, extra, code, stderr)
	}
	var s sampleSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("sample --sampler %s: bad JSON: %v", smp, err)
	}
	per, _ := s.Settings["evaluations_per_sample"].(float64)
	if s.Sampler != smp || s.N != 2 || s.Evals != int64(2*wantEvals) || per != float64(wantEvals) {
		t.Errorf("sample --sampler %s %v: sampler %s, n %d, %d evaluations (%v per sample); want %d per sample",
			smp, extra, s.Sampler, s.N, s.Evals, s.Settings["evaluations_per_sample"], wantEvals)
	}
	got, err := tensorio.ReadNpyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]int64{2}, shape...); !slices.Equal(got.Shape, want) {
		t.Fatalf("sample --sampler %s: shape %v, want %v", smp, got.Shape, want)
	}
	for i, v := range got.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("sample --sampler %s: value %d is %v", smp, i, v)
		}
	}
	return got.F32
}

// TestEscapeHint: the plausible-box warning suggests a flag the sampler
// takes: --step-lr only for the Langevin samplers, never for the ODE, EM or
// diffusion samplers that have no step size (the research DDPM's DDIM run
// over --times 0,100,500,900 with η = 1 escapes and was told "--step-lr").
func TestEscapeHint(t *testing.T) {
	t.Parallel()
	flags := newSampleCmd().Flags()
	for _, name := range sampler.Names() {
		h := escapeHint(name)
		i := strings.Index(h, "--")
		if i < 0 {
			t.Errorf("%s: hint %q names no flag", name, h)
			continue
		}
		flag := strings.Fields(h[i+2:])[0]
		if flags.Lookup(flag) == nil {
			t.Errorf("%s: hint %q names --%s, which sample lacks", name, h, flag)
		}
		langevin := name == "ald" || name == "ula" || name == "cas"
		if strings.Contains(h, "--step-lr") != langevin {
			t.Errorf("%s: hint %q", name, h)
		}
	}
}
