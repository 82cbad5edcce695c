package importer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
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
			// The one thing Decode parses that Encode cannot write back is
			// an attribute kind the graph holds no payload for (sparse
			// tensors, type protos); it must be refused as unsupported.
			var ue *UnsupportedError
			if !errors.As(err, &ue) || ue.Feature != "attribute type" {
				t.Fatalf("a model that decodes must encode: %v", err)
			}
		}
	})
}

// FuzzSpec fills a model's ebmrun.* metadata with arbitrary values: Spec
// may refuse them, but never panics, and a spec it returns has the bounds
// its users size loops and buffers by.
func FuzzSpec(f *testing.F) {
	root := testenv.Root(f)
	base, err := os.ReadFile(filepath.Join(root, "testdata", "hostile", "meta_sigmas_empty.onnx"))
	if err != nil {
		f.Fatal(err)
	}
	keys := []string{MetaKind, MetaCondition, MetaXInput, MetaConditionInput, MetaOutput, MetaSigmas,
		MetaDataShape, MetaDataRange, MetaSampler, MetaBetas, MetaProvenance}
	f.Add(uint8(5), "[1, 0.5, 0.1]", uint8(9), `{"start": 0.0001, "end": 0.02, "steps": 1000}`)
	f.Add(uint8(6), "[3, 64, 64]", uint8(8), `{"sampler": "pc", "steps": 2, "snr": 0.16}`)
	f.Add(uint8(9), `{"start": 0.0001, "end": 0.02, "steps": -5}`, uint8(5), "[]")
	f.Add(uint8(7), "[-1, 1]", uint8(1), "labels")
	f.Fuzz(func(t *testing.T, k1 uint8, v1 string, k2 uint8, v2 string) {
		m, err := Decode(base, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m.SetMeta(keys[int(k1)%len(keys)], v1)
		m.SetMeta(keys[int(k2)%len(keys)], v2)
		s, err := Spec(m, Overrides{})
		if err != nil {
			return
		}
		if s.Sigmas != nil && (len(s.Sigmas) == 0 || len(s.Sigmas) > MaxLevels) {
			t.Fatalf("σ schedule of %d levels accepted", len(s.Sigmas))
		}
		if b := s.Betas; b != nil && (b.Steps < 1 || b.Steps > MaxDiffusionSteps || !(b.Start > 0 && b.End < 1)) {
			t.Fatalf("β schedule %+v accepted", *b)
		}
		if s.Sampler.Steps < 0 || s.Sampler.Steps > MaxSamplerSteps {
			t.Fatalf("sampler steps %d accepted", s.Sampler.Steps)
		}
		if s.DataShape != nil {
			n, err := graph.CheckedNumElements(s.DataShape)
			if err != nil || n < 1 || n > MaxSampleElements {
				t.Fatalf("data shape %v accepted", s.DataShape)
			}
		}
	})
}
