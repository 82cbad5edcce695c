package main

import (
	"testing"

	"github.com/ebmrun/ebmrun/importer"
)

const fixturePath = "../../testdata/models/ncsn_mlp/model.onnx"

// The h variant, with its Go-side pre- and post-processing, computes the
// fixture's score: on native, and on onnx-go at a batch size where its Gemm
// does not drift, and onnx-go's drift at batch 1 is caught and worked around.
func TestVariantHMatchesFixture(t *testing.T) {
	fix, err := importer.Load(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := variantH(fix)
	if err != nil {
		t.Fatal(err)
	}
	data, err := importer.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7} {
		d := makeBatch(n, 3)
		ref, err := newEbmrunFixture(native, fix, d, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		if err := ref.Eval(); err != nil {
			t.Fatal(err)
		}
		tol := agreeRel * max(1, maxAbs(ref.Score()))

		nh, err := newEbmrunH(native, h, d, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		if err := nh.Eval(); err != nil {
			t.Fatal(err)
		}
		if diff := maxDiff(nh.Score(), ref.Score()); diff > tol {
			t.Errorf("batch %d: native on h is %g from native on the fixture (tolerance %g)", n, diff, tol)
		}

		og, err := newOnnxGo(data, hVar, d, gemmBiases(h))
		if err != nil {
			t.Fatal(err)
		}
		if err := og.Eval(); err != nil {
			t.Fatal(err)
		}
		if diff := maxDiff(og.Score(), ref.Score()); diff > tol {
			t.Errorf("batch %d: onnx-go's first run on h is %g from native on the fixture (tolerance %g)", n, diff, tol)
		}
		dr, err := drift(og, 3)
		if err != nil {
			t.Fatal(err)
		}
		if drifts := dr > tol; drifts != (n == 1) {
			t.Errorf("batch %d: onnx-go drift %g; want drift only at batch 1 (tolerance %g)", n, dr, tol)
		}
		og.restore = true
		if err := og.Eval(); err != nil {
			t.Fatal(err)
		}
		if diff := maxDiff(og.Score(), ref.Score()); diff > tol {
			t.Errorf("batch %d: onnx-go with its biases restored is %g from native on the fixture (tolerance %g)", n, diff, tol)
		}
	}
}
