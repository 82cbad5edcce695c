package importer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it may refuse them, but it
// must never panic, hang or allocate beyond its limits. Seeded from every
// fixture and malformed file in testdata.
func FuzzDecode(f *testing.F) {
	root := testenv.Root(f)
	for _, pattern := range []string{"testdata/models/*/model.onnx", "testdata/malformed/*.onnx"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	limits := Limits{MaxTensorBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, Options{Limits: limits})
		if err != nil {
			return
		}
		if _, err := Spec(m, Overrides{}); err != nil {
			return
		}
		if _, err := Encode(m); err != nil {
			t.Fatalf("a model that decodes must encode: %v", err)
		}
	})
}
