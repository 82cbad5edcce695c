package sampler_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
)

// ebmrunSpec is what a model trained by ebmrun says of itself: a σ input,
// its schedule, and annealed-Langevin settings tuned for it.
func ebmrunSpec() *importer.ModelSpec {
	return &importer.ModelSpec{
		Condition: importer.CondSigma, Kind: importer.OutScore,
		Sigmas:  sampler.Geometric(3, 0.01, 10),
		Sampler: importer.SamplerDefaults{Sampler: "ald", Steps: 100, StepLR: 5e-6, Denoise: true},
	}
}

// A model's recommendations are for the sampler it names; another sampler
// keeps its own defaults rather than the ALD step count or step size.
func TestFromSpecDefaultsPerSampler(t *testing.T) {
	t.Parallel()
	spec := ebmrunSpec()
	for _, tc := range []struct {
		name  string
		ov    sampler.Overrides
		want  map[string]any
		evals int
	}{
		{"ald", sampler.Overrides{}, map[string]any{"steps": 100, "step_lr": 5e-6, "denoise": true}, 10*100 + 1},
		{"pc", sampler.Overrides{Sampler: "pc"}, map[string]any{"corrector_steps": 1, "snr": sampler.DefaultSNR}, 10 * 2},
		{"ula", sampler.Overrides{Sampler: "ula"}, map[string]any{"steps": 1000, "step_lr": sampler.DefaultStepLR, "sigma": 0.01}, 1000},
		{"cas", sampler.Overrides{Sampler: "cas"}, map[string]any{"denoise": false}, 10},
		{"ald overridden", sampler.Overrides{Steps: 7, StepLR: 1e-5, Denoise: new(bool)}, map[string]any{"steps": 7, "step_lr": 1e-5, "denoise": false}, 70},
		{"pc overridden", sampler.Overrides{Sampler: "pc", Steps: -1, SNR: 0.3}, map[string]any{"corrector_steps": 0, "snr": 0.3}, 10},
	} {
		smp, err := sampler.FromSpec(spec, tc.ov)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := sampler.Describe(smp)
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v (all: %v)", tc.name, k, got[k], v, got)
			}
		}
		if smp.Evals() != tc.evals || got["evaluations_per_sample"] != tc.evals {
			t.Errorf("%s: %d evaluations per sample, want %d", tc.name, smp.Evals(), tc.evals)
		}
	}
}

// CAS's default η lies inside its band for the model's own schedule, which
// the ALD step size of the metadata (η = 5e-6/0.01² = 0.05) does not.
func TestFromSpecCASInBand(t *testing.T) {
	t.Parallel()
	smp, err := sampler.FromSpec(ebmrunSpec(), sampler.Overrides{Sampler: "cas"})
	if err != nil {
		t.Fatal(err)
	}
	g := sampler.Describe(smp)
	eta := g["step_lr"].(float64) / (0.01 * 0.01)
	gamma := 0.01 / 0.0188467163784312
	if !(1-gamma < eta && eta < 1+gamma) {
		t.Errorf("η = %v outside (%v, %v)", eta, 1-gamma, 1+gamma)
	}
	cas := &sampler.CAS{Sigmas: sampler.Geometric(3, 0.01, 10), StepLR: 5e-6}
	if cas.Validate() == nil {
		t.Error("the ALD step size should be outside CAS's band")
	}
}

func TestFromSpecRefusals(t *testing.T) {
	t.Parallel()
	noSched := &importer.ModelSpec{Condition: importer.CondSigma, Kind: importer.OutScore}
	labels := &importer.ModelSpec{Condition: importer.CondLabels, Kind: importer.OutScore}
	timeSpec := &importer.ModelSpec{Condition: importer.CondTime, Kind: importer.OutEps}
	for _, tc := range []struct {
		spec *importer.ModelSpec
		ov   sampler.Overrides
		msg  string
	}{
		{noSched, sampler.Overrides{}, "--sigmas"},
		{noSched, sampler.Overrides{Sampler: "pc"}, "ebmrun meta --sigmas"},
		{labels, sampler.Overrides{Sampler: "ula"}, "σ schedule is unknown"},
		{timeSpec, sampler.Overrides{Sampler: "ald"}, "time-conditioned"},
		{ebmrunSpec(), sampler.Overrides{Sampler: "ddpm"}, "needs a model with a time input"},
		{ebmrunSpec(), sampler.Overrides{Sampler: "hmc"}, "unknown sampler \"hmc\" (want ald, cas, ddim, ddpm, em, ode, pc, ula)"},
		{ebmrunSpec(), sampler.Overrides{Sampler: "cas", StepLR: 5e-6}, "outside 1−γ < η < 1+γ"},
	} {
		_, err := sampler.FromSpec(tc.spec, tc.ov)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "sampler: ") {
			t.Errorf("%s %+v: %v; want an error with %q", tc.spec.Condition, tc.ov, err, tc.msg)
		}
	}
	if _, err := sampler.FromSpec(noSched, sampler.Overrides{}); !errors.Is(err, sampler.ErrNoSchedule) {
		t.Errorf("%v is not ErrNoSchedule", err)
	}
	// A schedule from the caller is enough; an unconditional model needs none.
	if _, err := sampler.FromSpec(noSched, sampler.Overrides{Sigmas: []float64{2, 1}}); err != nil {
		t.Error(err)
	}
	if _, err := sampler.FromSpec(&importer.ModelSpec{Condition: importer.CondNone}, sampler.Overrides{}); err != nil {
		t.Error(err)
	}
	// The probability flow and the reverse SDE follow s(x, σ) over σ: an
	// unconditional model (the NICE energy, say) has none to follow.
	for _, name := range []string{"ode", "em"} {
		_, err := sampler.FromSpec(&importer.ModelSpec{Condition: importer.CondNone}, sampler.Overrides{Sampler: name})
		if err == nil || !strings.Contains(err.Error(), "takes no noise condition") {
			t.Errorf("%s on an unconditional model: %v; want a refusal", name, err)
		}
	}
}

func TestFromSpecDDPM(t *testing.T) {
	t.Parallel()
	spec := &importer.ModelSpec{Condition: importer.CondTime, Kind: importer.OutEps, Betas: &importer.Betas{Start: 1e-3, End: 0.05, Steps: 40}}
	smp, err := sampler.FromSpec(spec, sampler.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	d := sampler.Describe(smp)
	if smp.Name() != "ddpm" || d["steps"] != 40 || d["beta_start"] != 1e-3 || d["beta_end"] != 0.05 {
		t.Errorf("%s %v", smp.Name(), d)
	}
}

// The README's Go snippet is the body of sampleModel in
// example_model_test.go, so it compiles and runs as ExampleFromSpec.
func TestReadmeSnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```go\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```go block")
	}
	src, err := os.ReadFile("example_model_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "func sampleModel(ctx context.Context, path string, w io.Writer) error {\n")
	body, _, _ = strings.Cut(body, "\n}\n")
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if want := strings.Join(lines, "\n") + "\n"; block != want {
		t.Errorf("README.md's Go snippet is not sampleModel's body; README:\n%s\nexample:\n%s", block, want)
	}
}
