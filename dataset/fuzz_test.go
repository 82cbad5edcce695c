package dataset

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// checkData is what every loader promises of a data set it returns.
func checkData(t *testing.T, x *graph.Tensor) {
	t.Helper()
	if len(x.Shape) < 2 || x.Shape[0] < 1 || graph.NumElements(x.Shape) != int64(len(x.F32)) {
		t.Fatalf("data of shape %v with %d values", x.Shape, len(x.F32))
	}
	for _, v := range x.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite value %v in data", v)
		}
	}
}

func seedFiles(f *testing.F, patterns ...string) {
	root := testenv.Root(f)
	for _, pattern := range patterns {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil && len(data) < 1<<16 {
				f.Add(data)
			}
		}
	}
}

// FuzzReadCSV: any text is a data set or an error, never a panic.
func FuzzReadCSV(f *testing.F) {
	seedFiles(f, "testdata/hostile/*.csv")
	for _, s := range []string{"x0,x1\n1,2\n3,4\n", "1\n2\n", "\ufeff1,2\n", "\"1\",\"2\"\n", "a,b\n1e39,0\n", "1,,2\n"} {
		f.Add([]byte(s))
	}
	old := membudget.Set(64 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, data []byte) {
		if x, err := ReadCSV(bytes.NewReader(data)); err == nil {
			checkData(t, x)
		}
	})
}

// FuzzReadIDX: any bytes are a data set or an error, never a panic or an
// allocation of what a header claims.
func FuzzReadIDX(f *testing.F) {
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 2, 7, 9})
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4})
	f.Add([]byte{0, 0, 0x0d, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0x3f, 0x80, 0, 0})
	f.Add([]byte{0, 0, 0x0e, 1, 0xff, 0xff, 0xff, 0xff})
	old := membudget.Set(64 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, data []byte) {
		if x, err := ReadIDX(bytes.NewReader(data)); err == nil {
			checkData(t, x)
		}
	})
}

// FuzzLoadPNGDir: a folder holding one image of any bytes loads or fails,
// never panics, and never decodes more pixels than the budget allows.
func FuzzLoadPNGDir(f *testing.F) {
	seedFiles(f, "models/*/samples.png", "testdata/hostile/png16_huge/*.png")
	old := membudget.Set(64 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if x, err := LoadPNGDir(dir); err == nil {
			checkData(t, x)
		}
	})
}

// FuzzLoad: the format dispatcher over gzip, with a name of each format.
func FuzzLoad(f *testing.F) {
	seedFiles(f, "testdata/hostile/*.gz", "testdata/hostile/*.npy")
	// A small budget cuts the gzip bomb among the seeds after 4 MiB: the
	// fuzzer counts an input that takes seconds as a hang.
	old := membudget.Set(4 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, name := range []string{"d.npy", "d.csv", "d.idx"} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if x, err := Load(p); err == nil {
				checkData(t, x)
			}
		}
	})
}
