package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
)

func TestBench(t *testing.T) {
	path := testenv.Path(t, "testdata", "models", "ncsn_mlp", "model.onnx")
	testenv.Require(t, path, "run `make fixtures`")
	stdout, stderr, code := ebmrun(t, "bench", path, "--batch", "1,7", "--time", "1ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rows []benchRow
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("want 2 backends × 2 batch sizes, got %d rows", len(rows))
	}
	for _, r := range rows {
		if r.Error != "" || r.Runs < 3 || r.EvalsPerSec <= 0 {
			t.Errorf("%+v", r)
		}
		// The model's metadata gives 10 σ levels; its sampler defaults are
		// absent, so NCSN's 100 steps per level apply.
		if got := r.EvalsPerSec / r.SamplesPerSec; got < 999 || got > 1001 {
			t.Errorf("evaluations per sample %.1f, want 1000", got)
		}
	}
	// A batch past the memory budget is a row's error, and a bench with no
	// row measured exits 1 (it allocated 8 TB and died before).
	stdout, stderr, code = ebmrun(t, "bench", path, "--batch", "1000000000000", "--backends", "native")
	if code != 1 || !strings.Contains(stdout, "memory budget") || !strings.Contains(stderr, "no backend and batch size could be measured") {
		t.Errorf("batch 10¹²: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = ebmrun(t, "bench", path, "--batch", "0")
	if code != 2 || !strings.Contains(stderr, "--batch") {
		t.Errorf("bad --batch: exit %d, %q", code, stderr)
	}
}
