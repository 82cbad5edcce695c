package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

// TestValidateFixtures is the cross-framework check: PyTorch's outputs
// against native and onnxruntime, and the two backends against each other.
func TestValidateFixtures(t *testing.T) {
	for _, dir := range testenv.Fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			stdout, stderr, code := ebmrun(t, "validate", "--json", filepath.Join(dir, "model.onnx"),
				"--inputs", filepath.Join(dir, "inputs"), "--expect", filepath.Join(dir, "expected"))
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			var r validateReport
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			outputs := map[string]bool{}
			for _, row := range r.Rows {
				outputs[row.Output] = true
			}
			if len(outputs) == 0 || len(r.Rows) != 3*len(outputs) || !r.Pass {
				t.Errorf("want 3 passing comparisons per output, got %+v", r.Rows)
			}
		})
	}
}

func TestValidateGeneratedInputs(t *testing.T) {
	path := testenv.Path(t, "testdata", "models", "ncsnv1_labels", "model.onnx")
	testenv.Require(t, path, "run `make fixtures`")
	stdout, stderr, code := ebmrun(t, "validate", path, "--batch", "5")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "generated (seed 1, batch 5)") || !strings.Contains(stdout, "native vs ort") {
		t.Errorf("report does not say what it compared:\n%s", stdout)
	}
}

// TestValidateCatchesAlteredOutput changes one element of a reference output
// and expects a readable FAIL table and exit 1.
func TestValidateCatchesAlteredOutput(t *testing.T) {
	src := testenv.Path(t, "testdata", "models", "ncsn_mlp")
	testenv.Require(t, src, "run `make fixtures`")
	want, err := tensorio.ReadNpyFile(filepath.Join(src, "expected", "score.npy"))
	if err != nil {
		t.Fatal(err)
	}
	altered := want.Clone()
	altered.F32[3] += 0.01 * (1 + abs32(altered.F32[3]))
	dir := t.TempDir()
	if err := tensorio.WriteNpyFile(filepath.Join(dir, "score.npy"), altered); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := ebmrun(t, "validate", filepath.Join(src, "model.onnx"),
		"--inputs", filepath.Join(src, "inputs"), "--expect", dir, "--backends", "native,ort")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "FAIL") || !strings.Contains(stdout, "native vs expected") || !strings.Contains(stdout, "native vs ort") {
		t.Errorf("table does not show the failure:\n%s", stdout)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, "out of tolerance") {
		t.Errorf("stderr should be one line naming the failure, got %q", stderr)
	}
	// A missing reference file is named.
	os.Remove(filepath.Join(dir, "score.npy"))
	_, stderr, code = ebmrun(t, "validate", filepath.Join(src, "model.onnx"), "--expect", dir)
	if code != 1 || !strings.Contains(stderr, "score.npy") {
		t.Errorf("missing reference: exit %d, %q", code, stderr)
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// A folder flag naming no folder says so, not that a file inside is missing.
func TestValidateMissingFolder(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	for flag, want := range map[string]string{
		"--expect": "ebmrun: --expect nosuchdir: no such folder (want a folder of <output name>.npy files)\n",
		"--inputs": "ebmrun: --inputs nosuchdir: no such folder (want a folder of <input name>.npy files)\n",
	} {
		_, stderr, code := ebmrun(t, "validate", model, flag, "nosuchdir")
		if code != 1 || stderr != want {
			t.Errorf("%s: exit %d, %q; want %q", flag, code, stderr, want)
		}
	}
}
