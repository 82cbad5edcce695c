package importer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// The shipped classifier's metadata reads back; each broken key is refused
// with a message naming it; Spec refuses a classifier as a score model.
func TestClassifierSpec(t *testing.T) {
	path := testenv.Path(t, "models", "fashion_classifier", "model.onnx")
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := importer.Classifier(m)
	if err != nil {
		t.Fatal(err)
	}
	if s.XInput != "x" || s.Logits != "logits" || s.Features != "features" || len(s.Classes) != 10 || s.Classes[9] != "Ankle boot" ||
		len(s.DataShape) != 3 || s.DataShape[1] != 28 || len(s.DataRange) != 2 || s.DataRange[1] != 1 {
		t.Errorf("spec %+v", s)
	}
	if _, err := importer.Spec(m, importer.Overrides{}); !errors.Is(err, importer.ErrClassifier) {
		t.Errorf("Spec: %v, want ErrClassifier", err)
	}
	for _, c := range []struct{ key, value, want string }{
		{importer.MetaClasses, `["a","b","c"]`, "for 3 classes"},
		{importer.MetaClasses, `"T-shirt"`, importer.MetaClasses},
		{importer.MetaFeatures, "", importer.MetaFeatures},
		{importer.MetaFeatures, "nope", `"nope" is not an output`},
		{importer.MetaXInput, "y", `want one float32 input "y"`},
		{importer.MetaDataRange, "[0]", importer.MetaDataRange},
	} {
		bad, err := importer.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		bad.SetMeta(c.key, c.value)
		if _, err := importer.Classifier(bad); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "importer: ") {
			t.Errorf("%s = %q: error %v, want one with %q", c.key, c.value, err, c.want)
		}
	}
	bad, _ := importer.Load(path)
	bad.SetMeta(importer.MetaKind, "score")
	if _, err := importer.Classifier(bad); err == nil {
		t.Error("a score model read as a classifier")
	}
}
