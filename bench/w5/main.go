// Command w5 is benchmark W5: log-likelihoods through the probability-flow
// ODE, and the ODE sampler's quality against annealed Langevin at equal
// numbers of score evaluations.
//
//	go run ./bench/w5 [-n 1000] [-images 64] [-image-steps 3] [-samples 2000]
//
// It prints tables. Every time is a ratio against the peer run in the same
// invocation on the same machine: the PyTorch + scipy reference
// (testdata/density/ref_logp.py; needs python3-torch, python3-onnx and
// python3-scipy — scipy.integrate.solve_ivp RK45 over the
// whole batch, torch autograd through the same ONNX graph), at the same
// tolerances or the same fixed steps, on the same points:
//
//   - 2-D: n swiss-roll points under models/swissroll, exact divergence,
//     rtol = atol = 1e-5, one batch;
//   - images: the first Fashion-MNIST test images under models/fashion_mnist,
//     Hutchinson's divergence with one Rademacher probe per image (ebmrun's
//     and the reference's probes differ, so their means agree within
//     standard errors, not exactly), -image-steps fixed RK45 steps in both
//     (adaptive steps at 1e-5 take hundreds of U-Net VJPs per image: tens of
//     minutes on two shared cores).
//
// The sampling table draws -samples points from each 2-D shipped model with
// the adaptive ODE sampler, then with ALD at the same number of evaluations
// (10 levels, evaluations/10 steps each) and at its default 1 000, and gives
// MMD² against the data (eval.Compare; lower is better).
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
	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w5: %v\n", err)
		os.Exit(1)
	}
}

type flags struct {
	n, images, imageSteps, samples int
	threads                        int
	python, script                 string
	skipImages, skipSampling       bool
}

func run() error {
	var f flags
	flag.IntVar(&f.n, "n", 1000, "2-D points")
	flag.IntVar(&f.images, "images", 64, "Fashion-MNIST test images")
	flag.IntVar(&f.imageSteps, "image-steps", 3, "fixed RK45 steps for the images")
	flag.IntVar(&f.samples, "samples", 2000, "samples per model in the sampling table")
	flag.StringVar(&f.python, "python", "/usr/bin/python3", "Python with Debian's torch, scipy and onnx")
	flag.StringVar(&f.script, "script", "testdata/density/ref_logp.py", "the PyTorch + scipy reference")
	flag.IntVar(&f.threads, "threads", 1, "threads of every runner (torch's thread pool spin-waits badly on a loaded machine: 2 threads were 15× slower than 1 here)")
	flag.BoolVar(&f.skipImages, "skip-images", false, "leave out the image workload")
	flag.BoolVar(&f.skipSampling, "skip-sampling", false, "leave out the sampling table")
	flag.Parse()
	fmt.Printf("W5: log p through the probability-flow ODE; %d cores, %s\n\n", goruntime.NumCPU(), goruntime.Version())

	toy, _ := dataset.Toy("swissroll")
	x2 := toy.Tensor(f.n, rand.New(rand.NewPCG(5, 5)))
	if err := workload(f, "2-D", "models/swissroll/model.onnx", x2, density.Options{Divergence: density.Exact}, nil); err != nil {
		return err
	}
	if !f.skipImages {
		imgs, err := fashion(f.images)
		if err != nil {
			return err
		}
		o := density.Options{Divergence: density.Hutchinson, Probes: 1, Steps: f.imageSteps, Seed: 1}
		if err := workload(f, "images", "models/fashion_mnist/model.onnx", imgs, o, []string{"--steps", strconv.Itoa(f.imageSteps), "--divergence", "hutchinson"}); err != nil {
			return err
		}
	}
	if !f.skipSampling {
		return sampling(f)
	}
	return nil
}

// fashion is the first n Fashion-MNIST test images scaled to [0, 1].
func fashion(n int) (*graph.Tensor, error) {
	t, err := dataset.LoadIDX("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install dataset-fashion-mnist)", err)
	}
	per := int(graph.NumElements(t.Shape[1:]))
	x := graph.NewFloat32([]int64{int64(n), 1, 28, 28}, append([]float32(nil), t.F32[:n*per]...))
	if _, err := dataset.ScaleFromRange(x, [2]float64{0, 255}, 0, 1); err != nil {
		return nil, err
	}
	return x, nil
}

type row struct {
	runner       string
	seconds      float64
	mean, stderr float64
	evals        float64
	note         string
}

func workload(f flags, name, model string, x *graph.Tensor, o density.Options, refArgs []string) error {
	m, err := importer.Load(model)
	if err != nil {
		return err
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return err
	}
	n := int(x.Shape[0])
	o.Batch, o.Workers = n, 1 // one batch, as the reference integrates it
	threads := f.threads
	ref, refPoints, err := reference(f, model, x, refArgs)
	if err != nil {
		return err
	}
	rows := []row{ref}
	for _, be := range []string{"ort", "native"} {
		r, pts, err := ebmrun(m, spec, x, o, be, threads)
		if err != nil {
			rows = append(rows, row{runner: "ebmrun " + be, note: "failed: " + err.Error()})
			continue
		}
		if o.Divergence == density.Exact {
			var worst float64
			for i := range pts {
				worst = math.Max(worst, math.Abs(pts[i]-float64(refPoints[i])))
			}
			r.note = fmt.Sprintf("largest per-point difference from the reference %.2g nats", worst)
		} else {
			se := math.Hypot(r.stderr, ref.stderr)
			r.note = fmt.Sprintf("mean differs from the reference's by %.2g s.e. (different probes)", math.Abs(r.mean-ref.mean)/se)
		}
		rows = append(rows, r)
	}
	tol := "rtol = atol = 1e-5"
	if o.Steps > 0 {
		tol = fmt.Sprintf("%d fixed RK45 steps", o.Steps)
	}
	fmt.Printf("%s: %d points of %v under %s, %s divergence, %s, one batch, %d threads\n\n", name, n, x.Shape[1:], model, o.Divergence, tol, threads)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "runner\tseconds\t× reference\tmean log p\tstderr\tODE evals\t")
	for _, r := range rows {
		if r.seconds == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t  %s\n", r.runner, r.note)
			continue
		}
		fmt.Fprintf(w, "%s\t%.3f\t%.3f\t%.6g\t%.2g\t%.0f\t  %s\n", r.runner, r.seconds, r.seconds/ref.seconds, r.mean, r.stderr, r.evals, r.note)
	}
	w.Flush()
	fmt.Println("\n× reference: seconds divided by the PyTorch + scipy reference's in this run (lower is faster).")
	fmt.Println()
	return nil
}

func reference(f flags, model string, x *graph.Tensor, extra []string) (row, []float32, error) {
	dir, err := os.MkdirTemp("", "w5")
	if err != nil {
		return row{}, nil, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "x.npy"), filepath.Join(dir, "logp.npy")
	if err := tensorio.WriteNpyFile(in, x); err != nil {
		return row{}, nil, err
	}
	args := append([]string{f.script, model, in, "--out", out, "--batch", strconv.Itoa(int(x.Shape[0])), "--threads", strconv.Itoa(f.threads)}, extra...)
	cmd := exec.Command(f.python, args...)
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		return row{}, nil, fmt.Errorf("%s %s: %w", f.python, f.script, err)
	}
	var r struct {
		Mean    float64 `json:"mean_logp"`
		StdErr  float64 `json:"stderr"`
		NFE     float64 `json:"nfe"`
		Seconds float64 `json:"seconds"`
		Threads int     `json:"torch_threads"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return row{}, nil, fmt.Errorf("%s: %v in %q", f.script, err, raw)
	}
	pts, err := tensorio.ReadNpyFile(out)
	if err != nil {
		return row{}, nil, err
	}
	return row{runner: fmt.Sprintf("pytorch + scipy solve_ivp (%d threads)", r.Threads), seconds: r.Seconds, mean: r.Mean, stderr: r.StdErr, evals: r.NFE}, pts.F32, nil
}

// ebmrun times density.Estimator.LogP, the path `ebmrun logp` takes, after
// the graph is prepared (the reference's time excludes its imports too).
func ebmrun(m *graph.Model, spec *importer.ModelSpec, x *graph.Tensor, o density.Options, backend string, threads int) (row, []float64, error) {
	b, err := runtime.Get(backend)
	if err != nil {
		return row{}, nil, err
	}
	e, err := density.New(b, m, spec, runtime.Options{Threads: threads})
	if err != nil {
		return row{}, nil, err
	}
	defer e.Close()
	start := time.Now()
	res, err := e.LogP(context.Background(), x.F32, int(x.Shape[0]), o)
	if err != nil {
		return row{}, nil, err
	}
	return row{runner: "ebmrun " + backend, seconds: time.Since(start).Seconds(), mean: res.Mean, stderr: res.StdErr, evals: res.EvalsPerPoint}, res.LogP, nil
}

// sampling compares the ODE sampler with ALD at equal evaluations.
func sampling(f flags) error {
	be, err := runtime.Get("native")
	if err != nil {
		return err
	}
	fmt.Printf("Sampling: %d samples per model on native; MMD² against %d data points (lower is better; ± one s.e.)\n\n", f.samples, f.samples)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "model\tsampler\tevals/sample\tMMD²\t× ALD at equal evals\t")
	for _, name := range []string{"swissroll", "8gaussians", "checkerboard", "swissroll_torch"} {
		path := filepath.Join("models", name, "model.onnx")
		m, err := importer.Load(path)
		if err != nil {
			return err
		}
		spec, err := importer.Spec(m, importer.Overrides{})
		if err != nil {
			return err
		}
		plan, err := be.Prepare(m, runtime.Options{Threads: 1})
		if err != nil {
			return err
		}
		data, err := modelData(name, f.samples)
		if err != nil {
			plan.Close()
			return err
		}
		sig := spec.Sigmas
		draw := func(smp sampler.Sampler, init sampler.Init) ([]float32, float64, error) {
			x, st, err := sampler.Collect(context.Background(), smp, sampler.ModelSource(plan, spec), sampler.Config{N: f.samples, Dim: 2, Seed: 3, Init: init})
			if err != nil {
				return nil, 0, err
			}
			return x, float64(st.Evals) / float64(f.samples), nil
		}
		mmd := func(x []float32) (float64, float64, error) {
			r, err := eval.Compare(x, data, 2, eval.Options{Seed: 5, Permutations: -1})
			if err != nil {
				return 0, 0, err
			}
			return r.MMD2.Value, r.MMD2.StdErr, nil
		}
		xo, evals, err := draw(&sampler.ODE{Sigmas: sig}, sampler.Gaussian{Std: sig[0]})
		if err != nil {
			plan.Close()
			return err
		}
		steps := max(1, int(math.Round(evals/float64(len(sig)))))
		uni := sampler.Uniform{Lo: spec.DataRange[0], Hi: spec.DataRange[1]}
		rec := spec.Sampler
		xa, ea, err := draw(&sampler.ALD{Sigmas: sig, Steps: steps, StepLR: rec.StepLR, Denoise: rec.Denoise}, uni)
		if err != nil {
			plan.Close()
			return err
		}
		xd, ed, err := draw(&sampler.ALD{Sigmas: sig, Steps: rec.Steps, StepLR: rec.StepLR, Denoise: rec.Denoise}, uni)
		plan.Close()
		if err != nil {
			return err
		}
		vo, so, err := mmd(xo)
		if err != nil {
			return err
		}
		va, sa, _ := mmd(xa)
		vd, sd, _ := mmd(xd)
		fmt.Fprintf(w, "%s\tode (RK45, 1e-5)\t%.0f\t%.2g ± %.1g\t%.2f\t\n", name, evals, vo, so, vo/va)
		fmt.Fprintf(w, "\tald (T = %d)\t%.0f\t%.2g ± %.1g\t1\t\n", steps, ea, va, sa)
		fmt.Fprintf(w, "\tald (the model's T = %d)\t%.0f\t%.2g ± %.1g\t%.2f\t\n", rec.Steps, ed, vd, sd, vd/va)
	}
	w.Flush()
	fmt.Println("\n× ALD at equal evals: MMD² divided by ALD's with the ODE's number of evaluations (lower is better).")
	return nil
}

// modelData is held-out data for a shipped 2-D model: its data.npy, else
// its toy distribution.
func modelData(name string, n int) ([]float32, error) {
	if t, err := tensorio.ReadNpyFile(filepath.Join("models", name, "data.npy")); err == nil {
		return t.F32[:2*n], nil
	}
	toy, err := dataset.Toy(name)
	if err != nil {
		return nil, err
	}
	return toy.Tensor(n, rand.New(rand.NewPCG(11, 12))).F32, nil
}
