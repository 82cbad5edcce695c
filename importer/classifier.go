package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// Classifiers. A model whose ebmrun.kind is "classifier" is not a score
// model: it takes images x and gives class logits and a feature vector, and
// ebmrun uses it to measure samples (the Fréchet distance of its features,
// the class histogram of its predictions), never to make them.
const (
	KindClassifier = "classifier"
	MetaClasses    = "ebmrun.classes"  // JSON list of class names, in logit order
	MetaLogits     = "ebmrun.logits"   // name of the logits output [N, K]
	MetaFeatures   = "ebmrun.features" // name of the feature output [N, F]
)

// ErrClassifier is wrapped by Spec's error for a classifier: it has no
// score-model roles.
var ErrClassifier = errors.New("the model is a classifier (ebmrun.kind = classifier), not a score model: it measures samples (ebmrun compare --classifier, ebmrun classify), it does not make them")

// ClassifierSpec is what a classifier's metadata says.
type ClassifierSpec struct {
	XInput    string   // the image input, [N, …DataShape]
	Logits    string   // output [N, len(Classes)]
	Features  string   // output [N, F]
	Classes   []string // class names in logit order
	DataShape []int64  // one image's shape
	DataRange []float64
	// Provenance is the training record (ebmrun.provenance), nil when absent.
	Provenance map[string]any
}

// IsClassifier reports whether m's metadata marks it as a classifier.
func IsClassifier(m *graph.Model) bool {
	v, _ := m.Meta(MetaKind)
	return strings.TrimSpace(v) == KindClassifier
}

// Classifier reads a classifier's roles from its metadata and checks them
// against the graph.
func Classifier(m *graph.Model) (*ClassifierSpec, error) {
	if !IsClassifier(m) {
		return nil, fmt.Errorf("importer: not a classifier: its %s is not %q", MetaKind, KindClassifier)
	}
	meta := func(k string) string { v, _ := m.Meta(k); return strings.TrimSpace(v) }
	s := &ClassifierSpec{XInput: meta(MetaXInput), Logits: meta(MetaLogits), Features: meta(MetaFeatures)}
	if s.XInput == "" || s.Logits == "" || s.Features == "" {
		return nil, fmt.Errorf("importer: classifier: metadata %s, %s and %s are all required", MetaXInput, MetaLogits, MetaFeatures)
	}
	if err := json.Unmarshal([]byte(meta(MetaClasses)), &s.Classes); err != nil || len(s.Classes) < 2 {
		return nil, fmt.Errorf("importer: classifier: metadata %s %q: want a JSON list of at least two class names", MetaClasses, meta(MetaClasses))
	}
	if v := meta(MetaDataShape); v != "" {
		if err := json.Unmarshal([]byte(v), &s.DataShape); err != nil {
			return nil, fmt.Errorf("importer: classifier: metadata %s: %v", MetaDataShape, err)
		}
	}
	if v := meta(MetaDataRange); v != "" {
		if err := json.Unmarshal([]byte(v), &s.DataRange); err != nil || len(s.DataRange) != 2 {
			return nil, fmt.Errorf("importer: classifier: metadata %s %q: want [lo, hi]", MetaDataRange, v)
		}
	}
	if v := meta(MetaProvenance); v != "" {
		if err := json.Unmarshal([]byte(v), &s.Provenance); err != nil {
			return nil, fmt.Errorf("importer: classifier: metadata %s: %v", MetaProvenance, err)
		}
	}
	ins := m.Graph.RuntimeInputs()
	if len(ins) != 1 || ins[0].Name != s.XInput || ins[0].DType != graph.Float32 {
		return nil, fmt.Errorf("importer: classifier: want one float32 input %q, have %s", s.XInput, names(ins))
	}
	outs := map[string]graph.ValueInfo{}
	for _, o := range m.Graph.Outputs {
		outs[o.Name] = o
	}
	for _, o := range []string{s.Logits, s.Features} {
		v, ok := outs[o]
		if !ok {
			return nil, fmt.Errorf("importer: classifier: %q is not an output of the model", o)
		}
		if v.DType != graph.Float32 {
			return nil, fmt.Errorf("importer: classifier: output %q is %s, want float32", o, v.DType)
		}
	}
	if lo := outs[s.Logits]; lo.HasShape && (len(lo.Shape) != 2 || lo.Shape[1].Known() && lo.Shape[1].Value != int64(len(s.Classes))) {
		return nil, fmt.Errorf("importer: classifier: logits %q have shape %s for %d classes", s.Logits, lo.Shape, len(s.Classes))
	}
	return s, nil
}

// Metadata is the classifier spec as ebmrun.* metadata.
func (s *ClassifierSpec) Metadata() (map[string]string, error) {
	kv := map[string]string{MetaKind: KindClassifier, MetaXInput: s.XInput, MetaLogits: s.Logits, MetaFeatures: s.Features}
	vals := map[string]any{MetaClasses: s.Classes}
	if s.DataShape != nil {
		vals[MetaDataShape] = s.DataShape
	}
	if s.DataRange != nil {
		vals[MetaDataRange] = s.DataRange
	}
	if s.Provenance != nil {
		vals[MetaProvenance] = s.Provenance
	}
	for k, v := range vals {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("importer: classifier metadata %s: %w", k, err)
		}
		kv[k] = string(b)
	}
	return kv, nil
}
