package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
)

// ebmrun runs the command line in-process and returns stdout, stderr and the
// exit status. The note of which backend "auto" picked is dropped from
// stderr, so tests need not depend on whether onnxruntime is installed;
// TestAutoNote checks it.
func ebmrun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	var kept []string
	for _, line := range strings.SplitAfter(errb.String(), "\n") {
		if !strings.HasPrefix(line, autoNote) {
			kept = append(kept, line)
		}
	}
	return out.String(), strings.Join(kept, ""), code
}

const autoNote = "ebmrun: backend auto: picked "

// TestAutoNote: --backend auto says on stderr, in one line, which backend it
// picked — on the run's own stderr, so tests in parallel do not mix notes.
func TestAutoNote(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "models", "ncsn_mlp", "model.onnx")
	var out, errb bytes.Buffer
	code := run([]string{"sample", path, "-n", "4", "--steps", "1", "-o", filepath.Join(t.TempDir(), "s.npy"), "--backend", "auto"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "ort"
	if _, err := runtime.Get("ort"); err != nil {
		if testenv.InCI() {
			t.Fatalf("onnxruntime is missing under CI: %v", err)
		}
		want = "native"
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], autoNote+want) || !strings.HasPrefix(lines[1], "ebmrun: wrote 4 samples") {
		t.Errorf("want the auto note (ort here) and the summary, got %q", errb.String())
	}
}

func TestInspectFixtures(t *testing.T) {
	t.Parallel()
	kinds := map[string]string{
		"ncsn_mlp": "sigma/score", "ncsn_mlp_op13": "sigma/score", "ncsnv1_labels": "labels/score",
		"conv_score": "sigma/score", "conv_score_op13": "sigma/score", "ddpm_eps": "time/eps", "energy_mlp": "none/energy",
	}
	for _, dir := range testenv.Fixtures(t) {
		name := filepath.Base(dir)
		stdout, stderr, code := ebmrun(t, "inspect", "--json", filepath.Join(dir, "model.onnx"))
		if code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, stderr)
			continue
		}
		var r inspectReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%s: bad JSON: %v", name, err)
		}
		if r.Spec == nil {
			t.Errorf("%s: no spec: %s", name, r.SpecError)
			continue
		}
		if got := r.Spec.Condition + "/" + r.Spec.Kind; got != kinds[name] {
			t.Errorf("%s: roles %s, want %s", name, got, kinds[name])
		}
		for _, role := range []string{"x", "condition", "output", "kind"} {
			if r.Spec.Reasons[role] == "" {
				t.Errorf("%s: no reason given for role %s", name, role)
			}
		}
		if r.Nodes == 0 || len(r.Ops) == 0 || r.IRVersion == 0 {
			t.Errorf("%s: report incomplete: %+v", name, r)
		}
		// Per-op support comes from the op table: the fixtures run on
		// native and differentiate, so every op lists native and has a
		// rule or is constant.
		for op := range r.Ops {
			sup, ok := r.OpSupport[op]
			if !ok || !slices.Contains(sup.Backends, "native") || (sup.Gradient != "rule" && sup.Gradient != "constant") {
				t.Errorf("%s: op %s: support %+v (present %v)", name, op, sup, ok)
			}
		}
	}
}

func TestInspectRefusesMalformed(t *testing.T) {
	t.Parallel()
	dir := testenv.Path(t, "testdata", "malformed")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	for _, f := range files {
		if filepath.Base(f) == "ext_ok.onnx" {
			continue
		}
		stdout, stderr, code := ebmrun(t, "inspect", f)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", f, code)
		}
		if stdout != "" {
			t.Errorf("%s: printed a report for a bad model", f)
		}
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "ebmrun: "+f+": ") {
			t.Errorf("%s: want one line `ebmrun: FILE: reason`, got %q", f, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"inspect"}, {"inspect", "--nope", "x.onnx"}, {"frobnicate"}} {
		_, stderr, code := ebmrun(t, args...)
		if code != 2 || !strings.HasPrefix(stderr, "ebmrun: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, stderr)
		}
	}
	_, stderr, code := ebmrun(t, "inspect", filepath.Join(os.TempDir(), "does-not-exist.onnx"))
	if code != 1 || !strings.Contains(stderr, "does-not-exist.onnx") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

// Why a backend cannot run a model is one short line (onnxruntime's long
// provider errors are not repeated).
func TestInspectBackendReasonsShort(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := ebmrun(t, "inspect", testenv.Path(t, "testdata", "models", "ncsn_mlp", "model.onnx"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.Backends {
		if len(b.Reason) > 300 || strings.Contains(b.Reason, "\n") {
			t.Errorf("%s: reason of %d characters: %q", b.Name, len(b.Reason), b.Reason)
		}
	}
}
