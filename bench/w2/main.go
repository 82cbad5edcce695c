// Command w2 is benchmark W2 of docs/design.md: the NCSN MLP (x ‖ log σ →
// 3 × 128 SiLU → 2, divided by σ) trained with multi-σ denoising score
// matching on the swiss roll, batch 512, 3 000 Adam steps, by ebmrun's
// trainer and by PyTorch (bench/w2/train_torch.py, the same model, loss,
// schedule, optimiser and weight average) in one invocation.
//
//	go run ./bench/w2 [-steps 3000] [-backends ort,native] [-samples 2000]
//
// It prints two tables. The first compares training: seconds and the ratio
// to PyTorch's, the last losses, and the quality of each trained model —
// MMD² (eval.MMD2: RBF mixture kernel, unbiased, permutation p-value) of
// annealed Langevin samples drawn by the same Go sampler from every model
// (PyTorch's exported to ONNX) against fresh data, with fresh data against
// data as the noise floor. The second compares the cost of one step of each
// loss — dsm, ssm and ssm-vr (second-order autodiff), fd-ssm (forward only)
// — with DSM's, on each runner.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/trainer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w2: %v\n", err)
		os.Exit(1)
	}
}

type settings struct {
	steps, batch, samples, costSteps, threads int
	sigmas                                    []float64
	stepLR                                    float64
	seed                                      uint64
}

// result is one trained model.
type result struct {
	runner    string
	seconds   float64
	finalLoss float64
	model     *graph.Model
	mmd       eval.Estimate
	note      string
}

func run() error {
	var s settings
	flag.IntVar(&s.steps, "steps", 3000, "Adam steps")
	flag.IntVar(&s.batch, "batch", 512, "batch size")
	flag.IntVar(&s.samples, "samples", 2000, "ALD samples per model for MMD²")
	flag.IntVar(&s.costSteps, "cost-steps", 100, "steps timed per loss for the step-cost table")
	flag.IntVar(&s.threads, "threads", goruntime.NumCPU(), "threads of every runner")
	sigmas := flag.String("sigmas", "geom:3,0.01,10", "σ schedule")
	flag.Float64Var(&s.stepLR, "step-lr", 5e-6, "ALD step size ε of the quality check")
	flag.Uint64Var(&s.seed, "seed", 0, "seed of both trainings")
	backends := flag.String("backends", "ort,native", "ebmrun backends to train on")
	torchThreads := flag.String("torch-threads", "1,2", "PyTorch thread counts to run (on a shared machine two OpenBLAS threads can be far slower than one)")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's torch")
	script := flag.String("script", "bench/w2/train_torch.py", "the PyTorch peer")
	flag.Parse()
	var err error
	if s.sigmas, err = sampler.ParseSigmas(*sigmas); err != nil {
		return err
	}
	sampleBackend, err := runtime.Get("auto")
	if err != nil {
		return err
	}
	fmt.Printf("W2: DSM, NCSN MLP 3×128 SiLU, swiss roll, batch %d, %d Adam steps (lr 1e-3), σ %s; %d threads per runner; %d cores, %s, %s\n",
		s.batch, s.steps, *sigmas, s.threads, goruntime.NumCPU(), goruntime.Version(), time.Now().Format("2006-01-02 15:04"))
	fmt.Printf("quality: %d ALD samples (T = %d, ε = %g, denoised; sampled on %s) of each model against %d fresh data points, MMD² (eval.MMD2)\n\n",
		s.samples, sampler.DefaultSteps, s.stepLR, sampleBackend.Name(), s.samples)

	tmp, err := os.MkdirTemp("", "w2")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var results []*result
	cost := map[string]map[string]float64{}
	var runners []string
	for _, f := range strings.Split(*torchThreads, ",") {
		th, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || th < 1 {
			return fmt.Errorf("-torch-threads: %q is not a thread count", f)
		}
		ts := s
		ts.threads = th
		c := map[string]float64{}
		tr, err := torchPeer(*python, *script, ts, filepath.Join(tmp, fmt.Sprintf("torch%d.onnx", th)), c)
		if err != nil {
			return err
		}
		results = append(results, tr)
		cost[tr.runner] = c
		runners = append(runners, tr.runner)
	}
	for _, name := range strings.Split(*backends, ",") {
		r, err := goTrain(strings.TrimSpace(name), s)
		if err != nil {
			results = append(results, &result{runner: "ebmrun " + name, note: "failed: " + err.Error()})
			continue
		}
		results = append(results, r)
	}

	data := swissRoll(s.samples, 1001)
	for _, r := range results {
		if r.model == nil {
			continue
		}
		x, err := ald(r.model, s, sampleBackend)
		if err != nil {
			r.note = "sampling failed: " + err.Error()
			continue
		}
		if r.mmd, err = eval.MMD2(x, data, 2, eval.Options{Seed: 1}); err != nil {
			return err
		}
	}
	floor, err := eval.MMD2(swissRoll(s.samples, 1002), data, 2, eval.Options{Seed: 1})
	if err != nil {
		return err
	}
	printTraining(results, floor, s.steps)

	fmt.Println()
	for _, name := range strings.Split(*backends, ",") {
		name = strings.TrimSpace(name)
		c, err := stepCost(name, s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "w2: step cost on %s: %v\n", name, err)
			continue
		}
		cost["ebmrun "+name] = c
		runners = append(runners, "ebmrun "+name)
	}
	printCost(runners, cost, s)
	return nil
}

func swissRoll(n int, seed uint64) []float32 {
	d, _ := dataset.Toy("swissroll")
	return d.Tensor(n, rand.New(rand.NewPCG(seed, 0))).F32
}

func torchPeer(python, script string, s settings, out string, cost map[string]float64) (*result, error) {
	sj, _ := json.Marshal(s.sigmas)
	fmt.Fprintf(os.Stderr, "w2: pytorch, %d threads …\n", s.threads)
	cmd := exec.Command(python, script, "--steps", strconv.Itoa(s.steps), "--batch", strconv.Itoa(s.batch),
		"--sigmas", string(sj), "--seed", strconv.FormatUint(s.seed, 10), "--threads", strconv.Itoa(s.threads),
		"--cost-steps", strconv.Itoa(s.costSteps), "--out", out)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var r struct {
		Torch     string             `json:"torch"`
		Threads   int                `json:"threads"`
		Seconds   float64            `json:"seconds"`
		FinalLoss float64            `json:"final_loss"`
		Cost      map[string]float64 `json:"cost_ms"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v in %q", script, err, b)
	}
	for k, v := range r.Cost {
		cost[k] = v
	}
	m, err := importer.Load(out)
	if err != nil {
		return nil, err
	}
	return &result{runner: fmt.Sprintf("pytorch %s, %d thr", r.Torch, r.Threads), seconds: r.Seconds, finalLoss: r.FinalLoss, model: m}, nil
}

func goTrain(backend string, s settings) (*result, error) {
	be, err := runtime.Get(backend)
	if err != nil {
		return nil, err
	}
	data, err := trainer.NewToyData("swissroll")
	if err != nil {
		return nil, err
	}
	cfg := trainer.Config{Steps: s.steps, Batch: s.batch, Sigmas: s.sigmas, Seed: s.seed, Threads: s.threads}
	tr, err := trainer.New(cfg, data, be)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var losses []float64
	t0 := time.Now()
	err = tr.Run(context.Background(), trainer.RunOptions{Progress: func(st *trainer.StepStats) { losses = append(losses, st.Loss) }})
	secs := time.Since(t0).Seconds()
	if err != nil {
		return nil, err
	}
	m, err := tr.Model(nil)
	if err != nil {
		return nil, err
	}
	return &result{runner: "ebmrun " + backend, seconds: secs, finalLoss: mean(losses[max(0, len(losses)-100):]), model: m}, nil
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

// ald draws the quality-check samples of a model, uniform starts over the
// data's box, with the Go sampler.
func ald(m *graph.Model, s settings, be runtime.Backend) ([]float32, error) {
	spec, err := importer.Spec(m, importer.Overrides{Sigmas: s.sigmas})
	if err != nil {
		return nil, err
	}
	plan, err := be.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	defer plan.Close()
	workers := goruntime.NumCPU()
	cfg := sampler.Config{N: s.samples, Dim: 2, Seed: 7, Init: sampler.Uniform{Lo: -3.5, Hi: 3.5}, Batch: (s.samples + workers - 1) / workers, Workers: workers}
	x, _, err := sampler.Collect(context.Background(), &sampler.ALD{Sigmas: s.sigmas, StepLR: s.stepLR, Denoise: true}, sampler.ModelSource(plan, spec), cfg)
	return x, err
}

// stepCost times s.costSteps steps of every loss after five warm-up steps.
func stepCost(backend string, s settings) (map[string]float64, error) {
	be, err := runtime.Get(backend)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, loss := range trainer.LossNames {
		data, _ := trainer.NewToyData("swissroll")
		tr, err := trainer.New(trainer.Config{Loss: loss, Batch: s.batch, Sigmas: s.sigmas, Seed: s.seed, Threads: s.threads}, data, be)
		if err != nil {
			return nil, err
		}
		var t0 time.Time
		for i := 0; i < s.costSteps+5; i++ {
			if i == 5 {
				t0 = time.Now()
			}
			if _, err := tr.Step(); err != nil {
				tr.Close()
				return nil, err
			}
		}
		out[loss] = float64(time.Since(t0).Microseconds()) / 1000 / float64(s.costSteps)
		tr.Close()
	}
	return out, nil
}

func printTraining(rs []*result, floor eval.Estimate, steps int) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "runner\tseconds\t× pytorch\tms/step\tloss (last 100)\tMMD² ± se\tp\t")
	// The peer is the fastest PyTorch run.
	var peer float64
	for _, r := range rs {
		if strings.HasPrefix(r.runner, "pytorch") && r.model != nil && (peer == 0 || r.seconds < peer) {
			peer = r.seconds
		}
	}
	for _, r := range rs {
		if r.model == nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\t  %s\n", r.runner, r.note)
			continue
		}
		fmt.Fprintf(w, "%s\t%.1f\t%.2f\t%.2f\t%.4f\t%.2e ± %.1e\t%.3f\t  %s\n", r.runner, r.seconds, r.seconds/peer,
			r.seconds*1000/float64(steps), r.finalLoss, r.mmd.Value, r.mmd.StdErr, r.mmd.PValue, r.note)
	}
	fmt.Fprintf(w, "fresh data (noise floor)\t\t\t\t\t%.2e ± %.1e\t%.3f\t\n", floor.Value, floor.StdErr, floor.PValue)
	w.Flush()
	fmt.Println("\n× pytorch: training seconds divided by the fastest PyTorch run's in this invocation (lower is faster). p: permutation test of \"samples and data are one distribution\".")
}

func printCost(runners []string, cost map[string]map[string]float64, s settings) {
	fmt.Printf("step cost: ms per Adam step, batch %d, mean of %d steps (× dsm: the same runner's DSM step)\n\n", s.batch, s.costSteps)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	head := "loss\t"
	for _, r := range runners {
		head += r + "\t× dsm\t"
	}
	fmt.Fprintln(w, head)
	for _, loss := range trainer.LossNames {
		line := loss + "\t"
		for _, r := range runners {
			c := cost[r]
			if c == nil || c[loss] == 0 {
				line += "-\t-\t"
				continue
			}
			line += fmt.Sprintf("%.2f\t%.2f\t", c[loss], c[loss]/c["dsm"])
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
}
