// Package testenv finds the repository's test data and decides what a test
// does when an external dependency is missing: under CI=true it fails, so a
// missing install step can never hide behind a skip; elsewhere it skips with
// the command that installs the dependency.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// ONNXTestData is where Debian's libonnx-testdata puts ONNX's own
// conformance tests.
const ONNXTestData = "/usr/share/libonnx-testdata/data"

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Root returns the repository root: the nearest folder above the working
// directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Path joins elements onto the repository root.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Root(t)}, elem...)...)
}

// Require checks that path exists. When it does not, the test fails under
// CI=true and is skipped otherwise; hint says how to install it.
func Require(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	Missing(t, path+" is missing; "+hint)
}

// Missing reports a missing dependency: a failure under CI, a skip elsewhere.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing test dependency (CI=true, so this fails): %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// Fixtures lists the fixture folders under testdata/models.
func Fixtures(t testing.TB) []string {
	t.Helper()
	dir := Path(t, "testdata", "models")
	Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "model.onnx")); err == nil {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures under %s", dir)
	}
	return out
}
