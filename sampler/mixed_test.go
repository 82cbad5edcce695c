package sampler_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/sampler"
)

// Rows at different noise levels merged into one call get, on the native
// backend, the very bits each gets from a call of its own level: what lets
// a service batch chains that are at different steps.
func TestScoreEachMatchesScore(t *testing.T) {
	m, err := importer.Load("../models/swissroll/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sc, err := sampler.ModelSource(plan, spec)()
	if err != nil {
		t.Fatal(err)
	}
	ms := sc.(*sampler.ModelScorer)
	defer ms.Close()

	const n, d = 37, 2
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(4 * r.NormFloat64())
	}
	noise := make([]sampler.Noise, n)
	for i := range noise {
		l := r.IntN(len(spec.Sigmas))
		noise[i] = sampler.VENoise(l, spec.Sigmas[l])
	}
	got := make([]float32, n*d)
	if err := ms.ScoreEach(got, x, noise); err != nil {
		t.Fatal(err)
	}
	one := make([]float32, d)
	for i := range n {
		if err := ms.Score(one, x[i*d:(i+1)*d], 1, noise[i]); err != nil {
			t.Fatal(err)
		}
		for j := range d {
			if got[i*d+j] != one[j] {
				t.Fatalf("row %d at σ=%g: merged %v, alone %v", i, noise[i].Sigma, got[i*d:(i+1)*d], one)
			}
		}
	}
	if err := ms.ScoreEach(got, x[:3], noise[:2]); err == nil {
		t.Error("3 values as 2 rows: no error")
	}
}
