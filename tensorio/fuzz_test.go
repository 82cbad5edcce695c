package tensorio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// FuzzReadNpy: any bytes, of known or unknown size, end in a tensor that
// agrees with its header or an error — never a panic or an allocation
// beyond the budget. A tensor read back round-trips through WriteNpy.
// Seeded from every .npy in testdata and the hostile ones.
func FuzzReadNpy(f *testing.F) {
	root := testenv.Root(f)
	for _, pattern := range []string{"testdata/models/*/*/*.npy", "testdata/hostile/*.npy"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil && len(data) < 1<<16 {
				f.Add(data)
			}
		}
	}
	old := membudget.Set(64 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []int64{int64(len(data)), -1} {
			x, err := ReadNpySized(bytes.NewReader(data), size)
			if err != nil {
				continue
			}
			if n := graph.NumElements(x.Shape); int(n) != max(len(x.F32), len(x.I64), len(x.B)) {
				t.Fatalf("shape %v with %d values", x.Shape, max(len(x.F32), len(x.I64), len(x.B)))
			}
			var buf bytes.Buffer
			if err := WriteNpy(&buf, x); err != nil {
				t.Fatalf("a tensor read must write: %v", err)
			}
			if _, err := ReadNpy(&buf); err != nil {
				t.Fatalf("written tensor does not read back: %v", err)
			}
		}
	})
}
