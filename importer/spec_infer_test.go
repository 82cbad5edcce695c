package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
)

func pytorchExport(t *testing.T, name string) string {
	t.Helper()
	path := testenv.Path(t, "testdata", "pytorch", name, "model.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/pytorch/make_exports.py`")
	return path
}

// A DDPM ε-model whose time input is called labels (int64) reads as a
// label-conditioned score model until its β schedule is known; then it is
// a time-conditioned noise predictor, each with its reason.
func TestSpecDiffusionRoles(t *testing.T) {
	t.Parallel()
	m, err := Load(pytorchExport(t, "ddpm_labels_b16"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(m, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Condition != CondLabels || s.Kind != OutScore || s.FixedBatch != 16 {
		t.Errorf("without betas: %s/%s, fixed batch %d; want labels/score, 16", s.Condition, s.Kind, s.FixedBatch)
	}
	s, err = Spec(m, Overrides{Betas: &Betas{Start: 1e-4, End: 0.02, Steps: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Condition != CondTime || s.CondInput != "labels" || s.Kind != OutEps ||
		!strings.Contains(s.Reasons["condition"], "β schedule") || !strings.Contains(s.Reasons["kind"], "noise ε") {
		t.Errorf("with betas: %s from %q, %s; reasons %v", s.Condition, s.CondInput, s.Kind, s.Reasons)
	}
	// A σ schedule says the integer indexes σ levels: labels stay labels.
	s, err = Spec(m, Overrides{Betas: &Betas{Start: 1e-4, End: 0.02, Steps: 1000}, Sigmas: []float64{1, 0.1}})
	if err != nil || s.Condition != CondLabels {
		t.Errorf("with betas and sigmas: %v, %v", s, err)
	}
	if _, err := Spec(m, Overrides{Betas: &Betas{Start: 0, End: 0.02, Steps: 10}}); err == nil {
		t.Error("β start 0 accepted")
	}
}

// SetMetadata changes the ebmrun.* keys and nothing else.
func TestSetMetadataKeepsTheGraph(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(pytorchExport(t, "resmlp_sigma"))
	if err != nil {
		t.Fatal(err)
	}
	with, err := SetMetadata(data, map[string]string{MetaSigmas: "[2,1]", MetaKind: "score"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(with, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Meta(MetaSigmas); v != "[2,1]" {
		t.Errorf("sigmas %q", v)
	}
	s, err := Spec(m, Overrides{})
	if err != nil || len(s.Sigmas) != 2 || s.Reasons["sigmas"] != "metadata" {
		t.Errorf("spec %+v, %v", s, err)
	}
	a, err1 := SetMetadata(data, nil)
	b, err2 := SetMetadata(with, nil)
	if err1 != nil || err2 != nil || string(a) != string(b) {
		t.Error("the rewritten model differs beyond its metadata")
	}
	if _, err := SetMetadata(data, map[string]string{"producer": "x"}); err == nil {
		t.Error("a key outside ebmrun.* was written")
	}
	if _, err := SetMetadata([]byte("not onnx"), nil); err == nil {
		t.Error("garbage accepted")
	}
}

// Callers tell unsupported features apart by UnsupportedError.Feature, not
// by the message.
func TestUnsupportedErrorFeature(t *testing.T) {
	t.Parallel()
	dir := testenv.Path(t, "testdata", "malformed")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	for file, feature := range map[string]string{"future_opset.onnx": "opset", "old_ir.onnx": "IR version"} {
		_, err := Load(filepath.Join(dir, file))
		var ue *UnsupportedError
		if !errors.As(err, &ue) || ue.Feature != feature || !errors.Is(err, ErrUnsupported) || strings.HasSuffix(err.Error(), ": unsupported") {
			t.Errorf("%s: %v; want an UnsupportedError for %q", file, err, feature)
		}
	}
}
