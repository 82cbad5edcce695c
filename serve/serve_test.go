package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/serve"
	"github.com/ebmrun/ebmrun/tensorio"
)

func native(t testing.TB) runtime.Backend {
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	return be
}

var toyModels = map[string]string{
	"swissroll":  "../models/swissroll/model.onnx",
	"8gaussians": "../models/8gaussians/model.onnx",
}

func newServer(t testing.TB, paths map[string]string, o serve.Options) (*serve.Server, *httptest.Server) {
	t.Helper()
	o.Backend = native(t)
	s, err := serve.New(paths, o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

// do sends a request and checks the answer against the OpenAPI document.
func do(t testing.TB, ts *httptest.Server, method, path, body string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAPI(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), b); err != nil {
		t.Errorf("%s %s → %d: %v\n%s", method, path, resp.StatusCode, err, trunc(b))
	}
	return resp.StatusCode, b, resp.Header
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// cliSamples are what `ebmrun sample` computes for the options: FromSpec,
// the default init, Collect with the default batch.
func cliSamples(t testing.TB, path string, ov sampler.Overrides, n int, seed uint64) []float32 {
	t.Helper()
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampler.FromSpec(spec, ov)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := native(t).Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	x, _, err := sampler.Collect(context.Background(), smp, sampler.ModelSource(plan, spec),
		sampler.Config{N: n, Dim: 2, Seed: seed, Init: sampler.DefaultInit(spec, smp)})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// Concurrent requests of different samplers, sizes and seeds share the
// batcher's model calls — at different σ levels and steps — and each still
// gets bit for bit the samples it would get alone from the sample command.
func TestBatchedSamplesAreTheCLIs(t *testing.T) {
	s, ts := newServer(t, toyModels, serve.Options{Sessions: 1, MaxBatch: 64, MaxDelay: 5 * time.Millisecond})
	_ = s
	type job struct {
		model, body string
		ov          sampler.Overrides
		n           int
		seed        uint64
	}
	jobs := []job{
		{"swissroll", `{"n": 16, "seed": 1, "steps": 20}`, sampler.Overrides{Steps: 20}, 16, 1},
		{"swissroll", `{"n": 5, "seed": 2, "steps": 20}`, sampler.Overrides{Steps: 20}, 5, 2},
		{"swissroll", `{"n": 40, "seed": 3, "steps": 7, "step_lr": 1e-5}`, sampler.Overrides{Steps: 7, StepLR: 1e-5}, 40, 3},
		{"swissroll", `{"n": 1500, "seed": 8, "steps": 2}`, sampler.Overrides{Steps: 2}, 1500, 8},
		{"swissroll", `{"n": 9, "seed": 4, "sampler": "pc"}`, sampler.Overrides{Sampler: "pc"}, 9, 4},
		{"swissroll", `{"n": 3, "seed": 5, "sampler": "ula", "steps": 50}`, sampler.Overrides{Sampler: "ula", Steps: 50}, 3, 5},
		{"swissroll", `{"n": 8, "seed": 9, "sampler": "ode", "method": "heun", "steps": 20}`, sampler.Overrides{Sampler: "ode", Method: "heun", Steps: 20}, 8, 9},
		{"swissroll", `{"n": 8, "seed": 10, "sampler": "ode"}`, sampler.Overrides{Sampler: "ode"}, 8, 10},
		{"8gaussians", `{"n": 6, "seed": 2, "sampler": "em", "steps": 30}`, sampler.Overrides{Sampler: "em", Steps: 30}, 6, 2},
		{"8gaussians", `{"n": 12, "seed": 1, "steps": 15}`, sampler.Overrides{Steps: 15}, 12, 1},
		{"8gaussians", `{"n": 12, "seed": 6, "sampler": "cas"}`, sampler.Overrides{Sampler: "cas"}, 12, 6},
	}
	var wg sync.WaitGroup
	got := make([]serve.SampleResponse, len(jobs))
	codes := make([]int, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Staggered, so requests join while others are mid-run.
			time.Sleep(time.Duration(i) * time.Millisecond)
			code, b, _ := do(t, ts, "POST", "/v1/models/"+j.model+"/sample", j.body)
			codes[i] = code
			if code == 200 {
				if err := json.Unmarshal(b, &got[i]); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i, j := range jobs {
		if codes[i] != 200 {
			t.Fatalf("%s %s: status %d", j.model, j.body, codes[i])
		}
		want := cliSamples(t, toyModels[j.model], j.ov, j.n, j.seed)
		r := got[i]
		if len(r.Samples) != j.n || fmt.Sprint(r.Shape) != fmt.Sprint([]int64{int64(j.n), 2}) {
			t.Fatalf("%s: shape %v with %d rows", j.body, r.Shape, len(r.Samples))
		}
		for k, row := range r.Samples {
			if row[0] != want[2*k] || row[1] != want[2*k+1] {
				t.Fatalf("%s %s: sample %d is %v, the sample command's %v", j.model, j.body, k, row, want[2*k:2*k+2])
			}
		}
	}
	// The batcher did merge: some model call held more than one request's chains.
	_, metrics, _ := do(t, ts, "GET", "/metrics", "")
	if !bytes.Contains(metrics, []byte(`ebmrun_batch_size_bucket{model="swissroll",le="64"}`)) {
		t.Fatalf("no batch size histogram in /metrics")
	}
	alone := 0.0 // model calls the requests make each on its own
	for _, j := range jobs {
		alone += float64(evalsOf(t, toyModels[j.model], j.ov))
	}
	calls := metricValue(metrics, `ebmrun_batch_size_count{model="swissroll"}`) + metricValue(metrics, `ebmrun_batch_size_count{model="8gaussians"}`)
	if calls <= 0 || calls > 0.8*alone {
		t.Errorf("%v model calls for requests that make %v alone: the requests' chains were not merged", calls, alone)
	}
}

func evalsOf(t testing.TB, path string, ov sampler.Overrides) int {
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampler.FromSpec(spec, ov)
	if err != nil {
		t.Fatal(err)
	}
	return smp.Evals()
}

func metricValue(text []byte, name string) float64 {
	for _, line := range strings.Split(string(text), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

// The .npy answer is the sample command's file, bytes and all.
func TestSampleNpyAndPNG(t *testing.T) {
	_, ts := newServer(t, toyModels, serve.Options{})
	code, b, h := do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 6, "seed": 9, "steps": 5}`, "Accept", "application/x-npy")
	if code != 200 || h.Get("Content-Type") != "application/x-npy" {
		t.Fatalf("status %d, %s: %s", code, h.Get("Content-Type"), trunc(b))
	}
	tt, err := tensorio.ReadNpy(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	want := cliSamples(t, toyModels["swissroll"], sampler.Overrides{Steps: 5}, 6, 9)
	if fmt.Sprint(tt.Shape) != "[6 2]" || fmt.Sprint(tt.F32) != fmt.Sprint(want) {
		t.Fatalf("npy %v %v, want %v", tt.Shape, tt.F32, want)
	}
	code, b, h = do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 50, "steps": 2}`, "Accept", "image/png")
	if code != 200 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("png: status %d, %s", code, h.Get("Content-Type"))
	}
}
