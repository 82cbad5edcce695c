// Command serve is the load test of ebmrun serve (issue 14): concurrent
// clients on loopback asking for n = 16 samples each, with the dynamic
// batcher on and off, against one run of n = 4096 samples (the sample
// command's library call: FromSpec, default batch, every core) in the same
// invocation.
//
//	go run ./bench/serve [-model models/swissroll/model.onnx] [-clients 1,16,256] [-duration 20s] [-max-requests 512]
//
// Every figure of throughput is a ratio against that single run. Each
// configuration stops by itself after -duration or -max-requests, whichever
// comes first. Every response is checked, bit for bit, against the samples
// the library draws alone for its seed (each request has a seed of its
// own), so a lost, mixed or altered response shows as a mismatch.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/serve"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/serve: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	model     string
	n         int
	steps     int
	duration  time.Duration
	maxReq    int
	maxBatch  int
	sessions  int
	singleN   int
	clientSet []int
}

func run() error {
	var c config
	var clients string
	flag.StringVar(&c.model, "model", "models/swissroll/model.onnx", "model to serve")
	flag.IntVar(&c.n, "n", 16, "samples per request")
	flag.IntVar(&c.steps, "steps", 0, "ALD steps per level (0: the model's)")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "longest time per configuration")
	flag.IntVar(&c.maxReq, "max-requests", 512, "most requests per configuration")
	flag.IntVar(&c.maxBatch, "max-batch", 1024, "serve --max-batch")
	flag.IntVar(&c.sessions, "sessions", goruntime.GOMAXPROCS(0), "serve --sessions")
	flag.IntVar(&c.singleN, "single", 4096, "samples of the single-run peer")
	flag.StringVar(&clients, "clients", "1,16,256", "concurrent clients")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the load phases to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, s := range strings.Split(clients, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("-clients %q", clients)
		}
		c.clientSet = append(c.clientSet, v)
	}
	be, err := runtime.Get("native")
	if err != nil {
		return err
	}
	m, err := importer.Load(c.model)
	if err != nil {
		return err
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return err
	}
	smp, err := sampler.FromSpec(spec, sampler.Overrides{Steps: c.steps})
	if err != nil {
		return err
	}
	dim := int(graph.NumElements(spec.DataShape))
	init := sampler.Init(sampler.Gaussian{Std: 1})
	if len(spec.DataRange) == 2 {
		init = sampler.Uniform{Lo: spec.DataRange[0], Hi: spec.DataRange[1]}
	}
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		return err
	}
	defer plan.Close()
	src := sampler.ModelSource(plan, spec)
	fmt.Fprintf(os.Stderr, "bench/serve: %s, %s with %d evaluations per sample, native, %d cores\n", c.model, smp.Name(), smp.Evals(), goruntime.GOMAXPROCS(0))

	// The peer: one run of singleN samples, as `ebmrun sample -n 4096`,
	// measured right before each configuration, since the machine's load
	// drifts.
	peer := func() (float64, error) {
		_, st, err := sampler.Collect(context.Background(), smp, src, sampler.Config{N: c.singleN, Dim: dim, Seed: 1, Init: init})
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(os.Stderr, "bench/serve: single run of %d samples: %.3g evaluations/s in %.2fs\n", c.singleN, st.EvalsPerSecond(), st.Seconds)
		return st.EvalsPerSecond(), nil
	}

	body := fmt.Sprintf(`"n": %d`, c.n)
	if c.steps > 0 {
		body += fmt.Sprintf(`, "steps": %d`, c.steps)
	}
	var results []result
	seedBase := uint64(1000)
	for _, batching := range []bool{true, false} {
		for _, cl := range c.clientSet {
			single, err := peer()
			if err != nil {
				return err
			}
			r, err := load(c, be, cl, batching, body, seedBase)
			if err != nil {
				return err
			}
			r.single = single
			r.evalsPerReq = float64(c.n * smp.Evals())
			results = append(results, r)
			fmt.Fprintf(os.Stderr, "bench/serve: batching %v, %d clients: %d requests in %.1fs\n", batching, cl, len(r.ok), r.seconds)
		}
	}

	// Every response against the library's samples for its seed, drawn
	// alone (a batch of n), on every core.
	refs := map[uint64][]float32{}
	for _, r := range results {
		for _, o := range r.ok {
			refs[o.seed] = nil
		}
	}
	seeds := make(chan uint64, len(refs))
	for s := range refs {
		seeds <- s
	}
	close(seeds)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var refErr error
	for range goruntime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seeds {
				x, _, err := sampler.Collect(context.Background(), smp, src, sampler.Config{N: c.n, Dim: dim, Seed: s, Init: init, Workers: 1})
				mu.Lock()
				refs[s] = x
				if err != nil {
					refErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if refErr != nil {
		return refErr
	}
	for i := range results {
		for _, o := range results[i].ok {
			if !equal(o.x, refs[o.seed]) {
				results[i].mismatches++
			}
		}
	}
	report(os.Stdout, c, results)
	return nil
}

type response struct {
	seed uint64
	x    []float32
}

type result struct {
	clients     int
	batching    bool
	ok          []response
	errors      int
	mismatches  int
	seconds     float64
	latencies   []float64
	evalsPerReq float64
	meanBatch   float64
	single      float64 // the peer's evaluations/s, measured just before
}

// load runs one configuration: a fresh server on a loopback port, clients
// asking until the duration or the request count is reached.
func load(c config, be runtime.Backend, clients int, batching bool, body string, seedBase uint64) (result, error) {
	s, err := serve.New(map[string]string{"m": c.model}, serve.Options{Backend: be, Sessions: c.sessions, Threads: 1,
		MaxBatch: c.maxBatch, NoBatching: !batching, MaxN: c.n})
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/v1/models/m/sample"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}, Timeout: 5 * time.Minute}

	r := result{clients: clients, batching: batching}
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(c.duration)
	begin := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				k := next.Add(1) - 1
				if int(k) >= c.maxReq {
					return
				}
				seed := seedBase + uint64(k)
				t0 := time.Now()
				x, err := ask(client, url, fmt.Sprintf(`{%s, "seed": %d}`, body, seed))
				lat := time.Since(t0).Seconds()
				mu.Lock()
				if err != nil {
					r.errors++
					fmt.Fprintf(os.Stderr, "bench/serve: %v\n", err)
				} else {
					r.ok = append(r.ok, response{seed, x})
					r.latencies = append(r.latencies, lat)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.seconds = time.Since(begin).Seconds()
	r.meanBatch = meanBatch(s)
	return r, nil
}

func ask(client *http.Client, url, body string) ([]float32, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out serve.SampleResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	var x []float32
	for _, row := range out.Samples {
		x = append(x, row...)
	}
	if len(x) == 0 {
		return nil, errors.New("no samples")
	}
	return x, nil
}

// meanBatch reads the batcher's mean batch size from /metrics.
func meanBatch(s *serve.Server) float64 {
	rec := &bufferWriter{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	s.Handler().ServeHTTP(rec, req)
	var sum, count float64
	for _, l := range strings.Split(rec.b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, `ebmrun_batch_size_sum{model="m"} `); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(l, `ebmrun_batch_size_count{model="m"} `); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		return 0
	}
	return sum / count
}

type bufferWriter struct {
	h http.Header
	b bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *bufferWriter) WriteHeader(int)             {}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func report(w io.Writer, c config, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "batching\tclients\trequests\terrors\tmismatches\tevals/s ÷ single run\tmean batch\tp50 ms\tp99 ms\t\n")
	for _, r := range rs {
		on := "off"
		if r.batching {
			on = "on"
		}
		tput := float64(len(r.ok)) * r.evalsPerReq / r.seconds
		mb := "-"
		if r.batching {
			mb = fmt.Sprintf("%.0f", r.meanBatch)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%s\t%.0f\t%.0f\t\n", on, r.clients, len(r.ok), r.errors, r.mismatches,
			tput/r.single, mb, 1000*quantile(r.latencies, 0.5), 1000*quantile(r.latencies, 0.99))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nsingle run: %d samples in one sampler.Collect (the sample command's call), every core, measured just before each configuration; n = %d per request\n", c.singleN, c.n)
}
