package serve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/serve"
)

// Bad input is answered 4xx with a JSON error naming the field, never 5xx.
func TestBadInput(t *testing.T) {
	_, ts := newServer(t, toyModels, serve.Options{MaxN: 100, MaxBody: 2000})
	big := `{"x": [` + strings.Repeat(`[1, 2],`, 400) + `[1, 2]], "sigma": 1}`
	for _, c := range []struct {
		path, body string
		code       int
		field      string
		hdr        []string
	}{
		{"/v1/models/nope/sample", `{"n": 1}`, 404, "name", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "colour": 3}`, 400, "colour", nil},
		{"/v1/models/swissroll/sample", `{"n": "many"}`, 400, "n", nil},
		{"/v1/models/swissroll/sample", `{"n": 1`, 400, "body", nil},
		{"/v1/models/swissroll/sample", ``, 400, "body", nil},
		{"/v1/models/swissroll/sample", `{"n": 0}`, 400, "n", nil},
		{"/v1/models/swissroll/sample", `{"n": 101}`, 400, "n", nil},
		{"/v1/models/swissroll/sample", `{"n": -3}`, 400, "n", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "seed": -1}`, 400, "seed", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "sampler": "magic"}`, 400, "sampler", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "sampler": "ddpm"}`, 400, "sampler", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "steps": -1}`, 400, "steps", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "step_lr": -1}`, 400, "step_lr", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "sigmas": "geom:1"}`, 400, "sigmas", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "sigmas": [1, 2]}`, 400, "sigmas", nil},
		{"/v1/models/swissroll/sample", `{"n": 1, "init": "uniform:3,1"}`, 400, "init", nil},
		{"/v1/models/swissroll/sample", `{"n": 1}`, 406, "Accept", []string{"Accept", "text/html"}},
		{"/v1/models/swissroll/score", `{"x": [[1, 2, 3]], "sigma": 1}`, 400, "x", nil},
		{"/v1/models/swissroll/score", `{"x": [[1, 2]]}`, 400, "sigma", nil},
		{"/v1/models/swissroll/score", `{"x": [[1, 2]], "sigma": -1}`, 400, "sigma", nil},
		{"/v1/models/swissroll/score", `{"x": []}`, 400, "x", nil},
		{"/v1/models/swissroll/score", big, 413, "body", nil},
		{"/v1/models/swissroll/eval", `{"x": [[1, 2]], "sigma": 1, "objective": "vibes"}`, 400, "objective", nil},
		{"/v1/models/swissroll/eval", `{"x": [[1, 2]]}`, 400, "sigma", nil},
		{"/v1/models/swissroll/eval", `{"x": [[1, 2]], "sigma": 1, "objective": "ssm", "projections": 1000000000}`, 400, "projections", nil},
	} {
		code, b, _ := do(t, ts, "POST", c.path, c.body, c.hdr...)
		var e struct{ Error, Field string }
		if err := json.Unmarshal(b, &e); err != nil || code != c.code || e.Field != c.field || e.Error == "" {
			t.Errorf("%s %.60s: %d %s; want %d naming %q", c.path, c.body, code, b, c.code, c.field)
		}
	}
	if code, _, _ := do(t, ts, "GET", "/v1/nothing", ""); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// An eval whose projections do not fit the memory budget is answered 413,
// not run (10⁹ projections took a server's memory before the bound). Not
// parallel: it lowers the process's budget.
func TestEvalOverBudget(t *testing.T) {
	_, ts := newServer(t, toyModels, serve.Options{})
	defer membudget.Set(membudget.Set(16 << 10))
	code, b, _ := do(t, ts, "POST", "/v1/models/swissroll/eval", `{"x": [[1, 2], [3, 4], [5, 6]], "sigma": 1, "objective": "ssm", "projections": 1000}`)
	if code != 413 || !strings.Contains(string(b), "memory budget") {
		t.Fatalf("%d %s; want 413 naming the memory budget", code, b)
	}
}

// The shipped models all load, and each answers sample, score and eval.
func TestEveryShippedModel(t *testing.T) {
	paths, err := serve.FindModels("../models")
	if err != nil {
		t.Fatal(err)
	}
	s, ts := newServer(t, paths, serve.Options{})
	// Classifiers (models/fashion_classifier) are passed over.
	served := 0
	for _, p := range paths {
		m, err := importer.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !importer.IsClassifier(m) {
			served++
		}
	}
	code, b, _ := do(t, ts, "GET", "/v1/models", "")
	var list struct{ Models []struct{ Name string } }
	if json.Unmarshal(b, &list); code != 200 || len(list.Models) != served || served < 5 {
		t.Fatalf("%d %s", code, trunc(b))
	}
	for _, name := range s.Models() {
		code, b, _ := do(t, ts, "GET", "/v1/models/"+name, "")
		var info struct {
			DataShape []int64 `json:"data_shape"`
		}
		if json.Unmarshal(b, &info); code != 200 {
			t.Fatalf("%s: %d %s", name, code, b)
		}
		dim := int64(1)
		for _, d := range info.DataShape {
			dim *= d
		}
		row := "[" + strings.TrimSuffix(strings.Repeat("0.1,", int(dim)), ",") + "]"
		for _, c := range []struct{ ep, body string }{
			{"sample", `{"n": 2, "steps": 1, "seed": 3}`},
			{"score", `{"x": [` + row + `,` + row + `], "sigma": 0.5}`},
			{"eval", `{"x": [` + row + `,` + row + `], "sigma": 0.5, "objective": "dsm"}`},
		} {
			if code, b, _ := do(t, ts, "POST", "/v1/models/"+name+"/"+c.ep, c.body); code != 200 {
				t.Errorf("%s %s: %d %s", name, c.ep, code, trunc(b))
			}
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
		if code, _, _ := do(t, ts, "GET", p, ""); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	s.Drain()
	if code, _, h := do(t, ts, "GET", "/readyz", ""); code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("draining /readyz: %d", code)
	}
	if code, _, _ := do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 1}`); code != 503 {
		t.Errorf("a sample while draining: %d, want 503", code)
	}
}

// A long request holds its chains; another past the bound gets 429 with
// Retry-After; the first one's client going away frees them at once; a
// request past the time limit gets 503.
func TestOverloadCancelTimeout(t *testing.T) {
	s, ts := newServer(t, toyModels, serve.Options{MaxChains: 20, Timeout: time.Second})
	_ = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/models/swissroll/sample",
			strings.NewReader(`{"n": 16, "sampler": "ula", "steps": 100000000}`))
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	inflight := func() float64 {
		_, b, _ := do(t, ts, "GET", "/metrics", "")
		return metricValue(b, "ebmrun_inflight_chains")
	}
	deadline := time.Now().Add(5 * time.Second)
	for inflight() != 16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code, b, h := do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 8, "steps": 1}`)
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("over the bound: %d %s, Retry-After %q", code, b, h.Get("Retry-After"))
	}
	cancel()
	<-done
	for inflight() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if v := inflight(); v != 0 {
		t.Fatalf("%v chains still in flight after the client left", v)
	}
	_, m, _ := do(t, ts, "GET", "/metrics", "")
	if metricValue(m, `ebmrun_errors_total{cause="canceled"}`) != 1 || metricValue(m, `ebmrun_errors_total{cause="overload"}`) != 1 {
		t.Errorf("errors by cause not counted:\n%s", grep(m, "ebmrun_errors_total"))
	}
	begin := time.Now()
	code, b, h = do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 4, "sampler": "ula", "steps": 100000000}`)
	if code != 503 || h.Get("Retry-After") == "" || time.Since(begin) > 5*time.Second {
		t.Fatalf("past the time limit: %d %s after %s", code, b, time.Since(begin))
	}
}

func grep(b []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// With a token, /v1 and /metrics need it and the probes do not.
func TestToken(t *testing.T) {
	_, ts := newServer(t, toyModels, serve.Options{Token: "s3cret"})
	if code, _, h := do(t, ts, "GET", "/v1/models", ""); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d", code)
	}
	if code, _, _ := do(t, ts, "GET", "/v1/models", "", "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _, _ := do(t, ts, "GET", "/v1/models", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, _, _ := do(t, ts, "GET", "/healthz", ""); code != 200 {
		t.Errorf("probe: %d", code)
	}
	if code, _, _ := do(t, ts, "GET", "/metrics", ""); code != 401 {
		t.Errorf("metrics without the token: %d", code)
	}
	if code, _, _ := do(t, ts, "POST", "/v1/models/swissroll/sample", `{"n": 1, "steps": 1}`, "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("sample with the token: %d", code)
	}
}
