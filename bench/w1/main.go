// Command w1 is benchmark W1 of docs/design.md: annealed Langevin dynamics
// (L = 10 levels, T = 100 steps, ε = 2e-5) on the toy NCSN MLP
// testdata/models/ncsn_mlp/model.onnx for N = 1 000 and 10 000 2-D samples.
//
//	go run ./bench/w1 [-n 1000,10000] [-steps 100]
//
// It prints a table. Every figure is a ratio against a peer run in the same
// invocation on the same machine (these machines are shared and noisy): the
// same ALD loop in PyTorch (bench/w1/ald_torch.py, loading the same weights
// from the ONNX file and checking them against the fixture's expected
// outputs first), ebmrun on onnxruntime and on the pure-Go backend, and the
// time onnxruntime itself computed inside ebmrun, which shows the Go-side
// overhead of the sampler.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/sampler"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w1: %v\n", err)
		os.Exit(1)
	}
}

type row struct {
	n       int
	runner  string
	seconds float64
	evals   float64
	note    string
}

func run() error {
	model := flag.String("model", "testdata/models/ncsn_mlp/model.onnx", "the W1 model")
	ns := flag.String("n", "1000,10000", "sample counts")
	steps := flag.Int("steps", sampler.DefaultSteps, "ALD steps per σ level (T)")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's torch and onnx")
	script := flag.String("script", "bench/w1/ald_torch.py", "the PyTorch peer")
	workers := flag.Int("workers", goruntime.NumCPU(), "ebmrun workers (one session of one thread each)")
	flag.Parse()

	m, err := importer.Load(*model)
	if err != nil {
		return err
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return err
	}
	ald := &sampler.ALD{Sigmas: spec.Sigmas, Steps: *steps}
	fmt.Printf("W1: ALD, L = %d levels, T = %d, ε = %g on %s; %d cores, %s; ebmrun: %d workers × 1 thread\n\n",
		len(ald.WithDefaults().Sigmas), *steps, ald.WithDefaults().StepLR, *model, goruntime.NumCPU(), goruntime.Version(), *workers)

	var rows []row
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-n: %q is not a sample count", f)
		}
		// OpenBLAS's threads spin-wait, so on a busy machine one thread can
		// beat two: run both and take the faster as the peer.
		for _, th := range []int{1, goruntime.NumCPU()} {
			torch, err := torchPeer(*python, *script, *model, n, *steps, th)
			if err != nil {
				return err
			}
			rows = append(rows, torch)
			if th == goruntime.NumCPU() {
				break
			}
		}
		for _, be := range []string{"ort", "native"} {
			r, compute, err := ebmrun(m, spec, ald, be, n, *workers)
			if err != nil {
				rows = append(rows, row{n: n, runner: "ebmrun " + be, note: "failed: " + err.Error()})
				continue
			}
			rows = append(rows, r)
			if compute > 0 {
				rows = append(rows, row{n: n, runner: "  " + be + " Run inside ebmrun", seconds: compute, evals: r.evals * r.seconds / compute,
					note: fmt.Sprintf("Go-side overhead %.1f%% of ebmrun's time", 100*(1-compute/r.seconds))})
			}
		}
	}
	printTable(rows)
	return nil
}

// torchPeer runs the PyTorch ALD loop.
func torchPeer(python, script, model string, n, steps, threads int) (row, error) {
	cmd := exec.Command(python, script, "--model", model, "--n", strconv.Itoa(n), "--steps", strconv.Itoa(steps),
		"--threads", strconv.Itoa(threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return row{}, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var r struct {
		Seconds float64 `json:"seconds"`
		Evals   float64 `json:"evaluations_per_second"`
		Torch   string  `json:"torch"`
		Threads int     `json:"threads"`
		Err     float64 `json:"check_rel_err"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return row{}, fmt.Errorf("%s: %v in %q", script, err, out)
	}
	unit := "threads"
	if r.Threads == 1 {
		unit = "thread"
	}
	return row{n: n, runner: fmt.Sprintf("pytorch %s (%d %s)", r.Torch, r.Threads, unit), seconds: r.Seconds, evals: r.Evals,
		note: fmt.Sprintf("weights checked against the ONNX outputs (rel. error %.2g)", r.Err)}, nil
}

// ebmrun samples N points with the sampler package as `ebmrun sample` does,
// batches split evenly over the workers, and returns the backend's own
// compute time per worker when it reports one.
func ebmrun(m *graph.Model, spec *importer.ModelSpec, ald *sampler.ALD, backend string, n, workers int) (row, float64, error) {
	b, err := runtime.Get(backend)
	if err != nil {
		return row{}, 0, err
	}
	plan, err := b.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		return row{}, 0, err
	}
	defer plan.Close()
	cfg := sampler.Config{N: n, Dim: 2, Seed: 1, Init: sampler.Uniform{Lo: -4, Hi: 4},
		Batch: (n + workers - 1) / workers, Workers: workers}
	// Warm up: sessions, allocations, onnxruntime's first-run costs.
	warm := cfg
	warm.N = min(n, 100)
	if _, _, err := sampler.Collect(context.Background(), &sampler.ALD{Sigmas: ald.Sigmas, Steps: 2}, sampler.ModelSource(plan, spec), warm); err != nil {
		return row{}, 0, err
	}
	st, err := sampler.Run(context.Background(), ald, sampler.ModelSource(plan, spec), cfg, func([]float32, int, int) error { return nil })
	if err != nil {
		return row{}, 0, err
	}
	return row{n: n, runner: "ebmrun " + backend, seconds: st.Seconds, evals: st.EvalsPerSecond()},
		st.ComputeSeconds / float64(workers), nil
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "N\trunner\tseconds\t× pytorch\tevals/s\t")
	peer := map[int]float64{} // the fastest PyTorch run per N
	for _, r := range rows {
		if strings.HasPrefix(r.runner, "pytorch") && (peer[r.n] == 0 || r.seconds < peer[r.n]) {
			peer[r.n] = r.seconds
		}
	}
	for _, r := range rows {
		if r.seconds == 0 {
			fmt.Fprintf(w, "%d\t%s\t-\t-\t-\t  %s\n", r.n, r.runner, r.note)
			continue
		}
		fmt.Fprintf(w, "%d\t%s\t%.2f\t%.2f\t%.3g\t  %s\n", r.n, r.runner, r.seconds, r.seconds/peer[r.n], r.evals, r.note)
	}
	w.Flush()
	fmt.Println("\n× pytorch: seconds divided by the faster PyTorch run of the same N in this invocation (lower is faster).")
}
