package importer

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
)

// TestDecodeONNXConformanceSuite parses every model and every TensorProto of
// ONNX's own test data. Each model must parse; Check may refuse it (old
// opsets, other domains, unsupported types), which is reported, not failed.
func TestDecodeONNXConformanceSuite(t *testing.T) {
	testenv.Require(t, testenv.ONNXTestData, "install it with `apt-get install libonnx-testdata`")
	models, _ := filepath.Glob(filepath.Join(testenv.ONNXTestData, "*", "*", "model.onnx"))
	if len(models) < 500 {
		t.Fatalf("found only %d conformance models under %s", len(models), testenv.ONNXTestData)
	}
	refused := map[string]int{}
	var tensors, accepted int
	for _, path := range models {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(data, Options{Dir: filepath.Dir(path)})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if err := Check(m); err != nil {
			refused[reasonClass(err)]++
		} else {
			accepted++
		}
		pbs, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "test_data_set_*", "*.pb"))
		for _, p := range pbs {
			if _, err := ReadTensorFile(p); err != nil {
				// Sequences and optionals are stored as other protos; a
				// TensorProto reader must refuse them cleanly, which
				// reaching here without a panic shows.
				continue
			}
			tensors++
		}
	}
	var classes []string
	for c := range refused {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	t.Logf("parsed %d conformance models: %d accepted, refused by class:", len(models), accepted)
	for _, c := range classes {
		t.Logf("  %4d %s", refused[c], c)
	}
	t.Logf("read %d TensorProto files", tensors)
	if accepted < len(models)/2 {
		t.Errorf("only %d of %d conformance models accepted", accepted, len(models))
	}
}

func reasonClass(err error) string {
	switch {
	case IsUnknownOps(err):
		return "unknown or newer-opset operators"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
