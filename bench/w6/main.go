// Command w6 is benchmark W6: the cost of one training step of an energy
// network E(x, σ) = f(x ‖ log σ)/σ + ½c‖x‖² (f: 3 × 128 SiLU → 1, 8 Gaussians,
// batch 256) by ebmrun's trainer against the same step in PyTorch
// (bench/w6/w6_torch.py), in one invocation:
//
//   - dsm: denoising score matching on −∇x E (the parameter gradient is
//     second order in the energy), then Adam;
//
//   - cd: contrastive divergence with K = 20 Langevin steps from a 10 000-point
//     replay buffer, energy penalty 0.1, gradient clipped to 10, then Adam.
//
//     go run ./bench/w6 [-steps 50] [-backends ort,native] [-threads 1]
//
// It prints ms per step and each runner's ratio to PyTorch's.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/trainer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w6: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	steps := flag.Int("steps", 50, "steps timed per loss (after 5 untimed)")
	batch := flag.Int("batch", 256, "batch size")
	threads := flag.Int("threads", 1, "threads of every runner")
	backends := flag.String("backends", "ort,native", "ebmrun backends")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's torch")
	script := flag.String("script", "bench/w6/w6_torch.py", "the PyTorch peer")
	flag.Parse()
	fmt.Printf("W6: one energy-network training step, f 3×128 SiLU, 8 Gaussians, batch %d, mean of %d steps; %d thread(s) per runner; %d cores, %s, %s\n\n",
		*batch, *steps, *threads, goruntime.NumCPU(), goruntime.Version(), time.Now().Format("2006-01-02 15:04"))

	fmt.Fprintln(os.Stderr, "w6: pytorch …")
	cmd := exec.Command(*python, *script, "--threads", strconv.Itoa(*threads), "--steps", strconv.Itoa(*steps), "--batch", strconv.Itoa(*batch))
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %w", *python, *script, err)
	}
	var torch struct {
		Torch string  `json:"torch"`
		DSM   float64 `json:"dsm_ms"`
		CD    float64 `json:"cd_ms"`
	}
	if err := json.Unmarshal(b, &torch); err != nil {
		return fmt.Errorf("%s: %v in %q", *script, err, b)
	}
	type row struct {
		runner  string
		dsm, cd float64
		note    string
	}
	rows := []row{{runner: "pytorch " + torch.Torch, dsm: torch.DSM, cd: torch.CD}}
	for _, name := range strings.Split(*backends, ",") {
		name = strings.TrimSpace(name)
		fmt.Fprintf(os.Stderr, "w6: ebmrun %s …\n", name)
		be, err := runtime.Get(name)
		if err != nil {
			rows = append(rows, row{runner: "ebmrun " + name, note: err.Error()})
			continue
		}
		dsm, err := stepMS(be, trainer.Config{Arch: trainer.EnergyMLP{}, Loss: trainer.LossDSM, Sigmas: geom(5, 0.01, 10),
			Batch: *batch, Threads: *threads}, *steps)
		if err != nil {
			return err
		}
		cd, err := stepMS(be, trainer.Config{Arch: trainer.EnergyMLP{Confine: 1}, Loss: trainer.LossCD, Batch: *batch, Threads: *threads,
			ClipNorm: 10, CD: trainer.CDConfig{K: 20, StepSize: 0.01, Buffer: 10000, Reg: 0.1}}, *steps)
		if err != nil {
			return err
		}
		rows = append(rows, row{runner: "ebmrun " + name, dsm: dsm, cd: cd})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "runner\tdsm ms/step\t× pytorch\tcd ms/step\t× pytorch\t")
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(w, "%s\t%s\t\t\t\t\n", r.runner, r.note)
			continue
		}
		fmt.Fprintf(w, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.runner, r.dsm, r.dsm/torch.DSM, r.cd, r.cd/torch.CD)
	}
	w.Flush()
	fmt.Println("\n× pytorch: ms per step divided by PyTorch's in this invocation (lower is faster; target ≤ 1).")
	return nil
}

func geom(hi, lo float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = hi * pow(lo/hi, float64(i)/float64(n-1))
	}
	return s
}

func pow(a, b float64) float64 { return math.Pow(a, b) }

func stepMS(be runtime.Backend, cfg trainer.Config, steps int) (float64, error) {
	data, err := trainer.NewToyData("8gaussians")
	if err != nil {
		return 0, err
	}
	tr, err := trainer.New(cfg, data, be)
	if err != nil {
		return 0, err
	}
	defer tr.Close()
	for i := 0; i < 5; i++ {
		if _, err := tr.Step(); err != nil {
			return 0, err
		}
	}
	t := time.Now()
	for i := 0; i < steps; i++ {
		if _, err := tr.Step(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t).Microseconds()) / 1000 / float64(steps), nil
}
