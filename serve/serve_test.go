package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
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
	send := func(i int, j job) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b, _ := do(t, ts, "POST", "/v1/models/"+j.model+"/sample", j.body)
			codes[i] = code
			if code == 200 {
				if err := json.Unmarshal(b, &got[i]); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// All but the last two requests queue their first calls before any batch
	// forms, so they are merged however fast the machine; the last two are
	// sent once the others run, and join them between steps.
	release := serve.HoldBatches(s)
	early, streams := len(jobs)-2, 0
	for i, j := range jobs[:early] {
		send(i, j)
		// Each batch of chains is a stream with a call of its own.
		streams += (j.n + sampler.DefaultBatch - 1) / sampler.DefaultBatch
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		_, metrics, _ := do(t, ts, "GET", "/metrics", "")
		q := metricValue(metrics, `ebmrun_queue_depth{model="swissroll"}`) + metricValue(metrics, `ebmrun_queue_depth{model="8gaussians"}`)
		if q == float64(streams) {
			break
		}
		if time.Now().After(deadline) {
			release()
			t.Fatalf("%v calls queued after 30 s, want %d", q, streams)
		}
	}
	release()
	for i := early; i < len(jobs); i++ {
		time.Sleep(time.Millisecond)
		send(i, jobs[i])
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
	t.Logf("%v model calls for requests that make %v alone", calls, alone)
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
func TestSampleNpy(t *testing.T) {
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
}

// A PNG answer is the picture `ebmrun sample -o x.png` draws of the same
// samples: for 2-D points a titled scatter plot, for images a grid.
func TestSamplePNG(t *testing.T) {
	_, ts := newServer(t, map[string]string{"swissroll": toyModels["swissroll"],
		"fashion_mnist": "../models/fashion_mnist/model.onnx"}, serve.Options{})
	code, b, h := do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 50, "seed": 3, "steps": 2}`, "Accept", "image/png")
	if code != 200 || h.Get("Content-Type") != "image/png" {
		t.Fatalf("png: status %d, %s: %s", code, h.Get("Content-Type"), trunc(b))
	}
	var want bytes.Buffer
	x := cliSamples(t, toyModels["swissroll"], sampler.Overrides{Steps: 2}, 50, 3)
	if err := plot.WriteSamples(&want, x, []int64{2}, nil, "50 samples (ald)"); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, b)
	if wb := decodePNG(t, want.Bytes()).Bounds(); img.Bounds() != wb || img.Bounds().Dx() < 200 {
		t.Fatalf("png %v, the sample command's %v", img.Bounds(), wb)
	}
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("served PNG (%d bytes) differs from the sample command's picture (%d bytes)", len(b), want.Len())
	}

	// Images: the grid of the very samples the .npy answer holds.
	body := `{"n": 4, "seed": 5, "steps": 1}`
	code, b, _ = do(t, ts, "POST", "/v1/models/fashion_mnist/sample", body, "Accept", "application/x-npy")
	if code != 200 {
		t.Fatalf("npy: status %d: %s", code, trunc(b))
	}
	tt, err := tensorio.ReadNpy(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	code, b, _ = do(t, ts, "POST", "/v1/models/fashion_mnist/sample", body, "Accept", "image/png")
	if code != 200 {
		t.Fatalf("png: status %d: %s", code, trunc(b))
	}
	img = decodePNG(t, b)
	ch, hgt, wid, ok := plot.ImageShape(tt.Shape[1:])
	if !ok {
		t.Fatalf("npy shape %v", tt.Shape)
	}
	if grid := plot.ImageGrid(tt.F32, ch, hgt, wid, nil, plot.GridMax).Bounds(); img.Bounds() != grid {
		t.Fatalf("png %v, a 2×2 grid of %d×%d images is %v", img.Bounds(), hgt, wid, grid)
	}
	want.Reset()
	m, err := importer.Load("../models/fashion_mnist/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plot.WriteSamples(&want, tt.F32, spec.DataShape, spec.DataRange, ""); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("served PNG (%d bytes) differs from the sample command's grid of the same samples (%d bytes)", len(b), want.Len())
	}
}

// decodePNG decodes a PNG and fails unless it shows something: at least
// two distinct colours, and at least a thousandth of its pixels off the
// background colour.
func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("png: %v", err)
	}
	r := img.Bounds()
	bg := img.At(r.Min.X, r.Min.Y)
	colours, off := map[color.Color]bool{}, 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y))
			colours[c] = true
			if c != color.RGBAModel.Convert(bg) {
				off++
			}
		}
	}
	if len(colours) < 2 || off < r.Dx()*r.Dy()/1000 {
		t.Fatalf("png %v is blank: %d colours, %d pixels off the background", r, len(colours), off)
	}
	return img
}

// A classifier in the models folder (models/fashion_classifier) is passed
// over: it measures samples and has no score to sample from. Given alone,
// there is nothing to serve, which is an error.
func TestServeSkipsClassifiers(t *testing.T) {
	paths, err := serve.FindModels("../models")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := paths["fashion_classifier"]; !ok {
		t.Fatalf("models/fashion_classifier not found among %v", paths)
	}
	s, err := serve.New(map[string]string{"swissroll": toyModels["swissroll"], "fashion_classifier": paths["fashion_classifier"]}, serve.Options{Backend: native(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Models(); len(got) != 1 || got[0] != "swissroll" {
		t.Errorf("served %v, want only swissroll", got)
	}
	if _, err := serve.New(map[string]string{"c": paths["fashion_classifier"]}, serve.Options{Backend: native(t)}); err == nil || !strings.Contains(err.Error(), "classifier") {
		t.Errorf("only a classifier: error %v, want one saying so", err)
	}
}
