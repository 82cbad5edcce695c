// Command w3 is benchmark W3 of docs/design.md: the sliced score matching
// objective of the toy NCSN MLP testdata/models/ncsn_mlp/model.onnx on
// 10 000 points at one σ, one Rademacher projection per point.
//
//	go run ./bench/w3 [-n 10000] [-sigma 0.1] [-reps 5]
//
// It prints a table. Every figure is a ratio against a peer run in the same
// invocation on the same machine (these machines are shared and noisy): the
// same objective in PyTorch autograd (bench/w3/ssm_torch.py, which loads the
// same weights from the ONNX file and checks them against the fixture's
// expected outputs first). ebmrun's eval.Evaluator runs on onnxruntime and
// on the pure-Go backend, all points in one batch as PyTorch does. The
// points are 8gaussians perturbed at σ; the perturbed points and the
// projections are exactly what the Evaluator draws (eval.Draws), handed to
// PyTorch as .npy files, so the values must agree too. Times are the best of
// -reps runs after a warm-up run (which prepares ebmrun's graphs).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/tensorio"
)

// agreeRel is how close ebmrun's value must be to PyTorch's on the same
// points and projections (float32 throughout, different summation orders).
const agreeRel = 1e-4

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w3: %v\n", err)
		os.Exit(1)
	}
}

type row struct {
	runner        string
	seconds, prep float64
	value, stderr float64
	note          string
}

func run() error {
	model := flag.String("model", "testdata/models/ncsn_mlp/model.onnx", "the W1/W3 model")
	n := flag.Int("n", 10000, "points")
	sigma := flag.Float64("sigma", 0.1, "noise level σ")
	reps := flag.Int("reps", 5, "timed runs of each runner (the best counts)")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's torch and onnx")
	script := flag.String("script", "bench/w3/ssm_torch.py", "the PyTorch peer")
	flag.Parse()

	m, err := importer.Load(*model)
	if err != nil {
		return err
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return err
	}
	toy, _ := dataset.Toy("8gaussians")
	x := toy.Tensor(*n, rand.New(rand.NewPCG(1, 1)))
	o := eval.ObjectiveOptions{Objective: eval.SSM, Sigmas: []float64{*sigma}, Projections: 1,
		Projection: eval.Rademacher, Seed: 1, Batch: *n}
	threads := goruntime.NumCPU()
	fmt.Printf("W3: SSM objective of %s on %d 8gaussians points at σ = %g, 1 Rademacher projection; %d cores, %s; one batch, %d threads\n\n",
		*model, *n, *sigma, threads, goruntime.Version(), threads)

	torch, err := torchPeer(*python, *script, *model, x, o, *reps, threads)
	if err != nil {
		return err
	}
	rows := []row{torch}
	for _, be := range []string{"ort", "native"} {
		r, err := ebmrun(m, spec, x, o, be, *reps, threads)
		if err != nil {
			rows = append(rows, row{runner: "ebmrun " + be, note: "failed: " + err.Error()})
			continue
		}
		if d := math.Abs(r.value-torch.value) / math.Abs(torch.value); d <= agreeRel {
			r.note = fmt.Sprintf("value agrees with PyTorch's (rel. diff %.1g)", d)
		} else {
			r.note = fmt.Sprintf("VALUE DIFFERS from PyTorch's by %.2g (relative), more than %g", d, agreeRel)
		}
		rows = append(rows, r)
	}
	printTable(rows)
	return nil
}

// torchPeer writes the Evaluator's draws and runs the PyTorch objective on
// them.
func torchPeer(python, script, model string, x *graph.Tensor, o eval.ObjectiveOptions, reps, threads int) (row, error) {
	xt, v, err := eval.Draws(x, o, 0)
	if err != nil {
		return row{}, err
	}
	dir, err := os.MkdirTemp("", "w3")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(dir)
	xf, vf := filepath.Join(dir, "xt.npy"), filepath.Join(dir, "v.npy")
	for _, f := range []struct {
		path string
		data []float32
	}{{xf, xt}, {vf, v}} {
		if err := tensorio.WriteNpyFile(f.path, graph.NewFloat32(x.Shape, f.data)); err != nil {
			return row{}, err
		}
	}
	cmd := exec.Command(python, script, "--model", model, "--x", xf, "--v", vf, "--sigma", strconv.FormatFloat(o.Sigmas[0], 'g', -1, 64),
		"--reps", strconv.Itoa(reps), "--threads", strconv.Itoa(threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return row{}, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var r struct {
		Seconds, Value, StdErr float64
		Torch                  string
		Threads                int
		Err                    float64 `json:"check_rel_err"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return row{}, fmt.Errorf("%s: %v in %q", script, err, out)
	}
	return row{runner: fmt.Sprintf("pytorch %s autograd (%d threads)", r.Torch, r.Threads), seconds: r.Seconds, value: r.Value, stderr: r.StdErr,
		note: fmt.Sprintf("weights checked against the ONNX outputs (rel. error %.2g)", r.Err)}, nil
}

// ebmrun times eval.Evaluator.Evaluate, the path `ebmrun eval` takes: the
// first call prepares the sliced-score-matching graph, the timed ones reuse
// it.
func ebmrun(m *graph.Model, spec *importer.ModelSpec, x *graph.Tensor, o eval.ObjectiveOptions, backend string, reps, threads int) (row, error) {
	b, err := runtime.Get(backend)
	if err != nil {
		return row{}, err
	}
	e, err := eval.NewEvaluator(b, m, spec, runtime.Options{Threads: threads})
	if err != nil {
		return row{}, err
	}
	defer e.Close()
	ctx := context.Background()
	start := time.Now()
	if _, err := e.Evaluate(ctx, x, o); err != nil {
		return row{}, err
	}
	first := time.Since(start).Seconds()
	best := math.Inf(1)
	var res []eval.ObjectiveResult
	for range reps {
		start := time.Now()
		if res, err = e.Evaluate(ctx, x, o); err != nil {
			return row{}, err
		}
		best = min(best, time.Since(start).Seconds())
	}
	return row{runner: "ebmrun " + backend, seconds: best, prep: first - best, value: res[0].Value, stderr: res[0].StdErr}, nil
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "runner\tseconds\t× pytorch\tSSM value\tstderr\t")
	peer := rows[0].seconds
	for _, r := range rows {
		if r.seconds == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t  %s\n", r.runner, r.note)
			continue
		}
		note := r.note
		if r.prep > 0 {
			note = fmt.Sprintf("%s; first call %.3fs more (graph building and preparation)", note, r.prep)
		}
		fmt.Fprintf(w, "%s\t%.4f\t%.2f\t%.6g\t%.2g\t  %s\n", r.runner, r.seconds, r.seconds/peer, r.value, r.stderr, note)
	}
	w.Flush()
	fmt.Println("\n× pytorch: seconds divided by PyTorch's in this run (lower is faster).")
}
