package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/serve"
)

// A time-conditioned ε-model: the batcher merges chains at different DDPM
// steps (a time step per row) and ε becomes a score per row; each request
// still gets the library's samples bit for bit.
func TestBatchedDDPMIsTheLibrarys(t *testing.T) {
	path := testenv.Path(t, "testdata", "models", "ddpm_eps", "model.onnx")
	testenv.Require(t, path, "run `make fixtures`")
	_, ts := newServer(t, map[string]string{"ddpm": path}, serve.Options{Sessions: 1, MaxBatch: 256})
	type job struct {
		body string
		ov   sampler.Overrides
		n    int
		seed uint64
	}
	jobs := []job{
		{`{"n": 7, "seed": 1, "steps": 40}`, sampler.Overrides{Steps: 40}, 7, 1},
		{`{"n": 20, "seed": 2, "steps": 40}`, sampler.Overrides{Steps: 40}, 20, 2},
		{`{"n": 5, "seed": 3, "sampler": "ddim", "steps": 25}`, sampler.Overrides{Sampler: "ddim", Steps: 25}, 5, 3},
		{`{"n": 9, "seed": 4, "sampler": "ddim", "times": [0, 10, 50, 99], "eta": 0.5}`, sampler.Overrides{Sampler: "ddim", Times: []int{0, 10, 50, 99}, Eta: 0.5}, 9, 4},
	}
	got := make([]serve.SampleResponse, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b, _ := do(t, ts, "POST", "/v1/models/ddpm/sample", j.body)
			if code != 200 {
				t.Errorf("%s: %d %s", j.body, code, b)
				return
			}
			json.Unmarshal(b, &got[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := native(t).Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	for i, j := range jobs {
		smp, err := sampler.FromSpec(spec, j.ov)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := sampler.Collect(context.Background(), smp, sampler.ModelSource(plan, spec),
			sampler.Config{N: j.n, Dim: 2, Seed: j.seed, Init: sampler.DefaultInit(spec, smp)})
		if err != nil {
			t.Fatal(err)
		}
		var flat []float32
		for _, r := range got[i].Samples {
			flat = append(flat, r...)
		}
		if fmt.Sprint(flat) != fmt.Sprint(want) {
			t.Errorf("%s: served %v…, the library's %v…", j.body, flat[:2], want[:2])
		}
	}
}
