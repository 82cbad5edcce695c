package trainer_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/trainer"
)

// Tolerances, by name.
const (
	// exportTol bounds max|exported − trainer| / max|trainer| on one backend:
	// the same graph with the weights as initializers instead of inputs.
	exportTol = 1e-6
	// crossBackendTol bounds the same between native and onnxruntime, whose
	// kernels sum in different orders.
	crossBackendTol = 1e-4
	// keepFisher is the most of the initial held-out Fisher divergence
	// (heldOutFisher) that 400 steps may leave.
	keepFisher = 0.3
)

// small is a quick configuration: a 2 × 32 MLP on 8 Gaussians.
func small(loss string) trainer.Config {
	return trainer.Config{Arch: trainer.MLP{Width: 32, Depth: 2}, Loss: loss, Batch: 128, LR: 3e-3, Steps: 150, Seed: 7, Threads: 1,
		Sigmas: []float64{3, 1, 0.3, 0.1}}
}

func toy(t *testing.T, name string) trainer.Data {
	t.Helper()
	d, err := trainer.NewToyData(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// heldOutFisher is the σ²-weighted Fisher divergence of the trainer's
// current score from the exact score of 8 Gaussians perturbed at σ,
// ½σ²‖s_θ(x̃,σ) − ∇log p_σ(x̃)‖², averaged over a fixed set of perturbed
// points and every σ of the schedule: a yardstick outside the trainer that
// every score-matching loss drives down.
func heldOutFisher(t *testing.T, tr *trainer.Trainer) float64 {
	t.Helper()
	gmm := toy(t, "8gaussians").(*trainer.ToyData).Dist.GMM
	sigmas := tr.Config().Sigmas
	const per = 512
	n := per * len(sigmas)
	r := rand.New(rand.NewPCG(11, 11))
	clean := gmm.Sample(nil, n, r)
	x, sig := make([]float32, 2*n), make([]float32, n)
	for i := range sig {
		sig[i] = float32(sigmas[i/per])
		for j := 0; j < 2; j++ {
			x[2*i+j] = float32(clean[2*i+j] + float64(sig[i])*r.NormFloat64())
		}
	}
	s, err := tr.Score(nil, x, sig, n, false)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	exact := make([]float64, 2)
	for i := 0; i < n; i++ {
		sg := float64(sig[i])
		gmm.Score(exact, []float64{float64(x[2*i]), float64(x[2*i+1])}, sg)
		for j := 0; j < 2; j++ {
			d := float64(s[2*i+j]) - exact[j]
			sum += 0.5 * sg * sg * d * d
		}
	}
	return sum / float64(n)
}

// TestLossDecreases trains each loss twice from the same start, once as
// configured and once with the learning rate cut a hundredfold, and
// measures both against the exact score (heldOutFisher). The real run must
// remove most of the initial divergence and end far below the hobbled one:
// an optimizer that does not step, steps the wrong way or steps much too
// little cannot pass; nor can a loss whose gradient is wrong, since the
// yardstick is the exact score, not the loss itself.
func TestLossDecreases(t *testing.T) {
	for _, b := range backends(t) {
		for _, loss := range trainer.LossNames {
			t.Run(b.Name()+"/"+loss, func(t *testing.T) {
				run := func(lr float64) (start, end float64) {
					cfg := small(loss)
					cfg.LR *= lr
					cfg.Steps = 400
					tr, err := trainer.New(cfg, toy(t, "8gaussians"), b)
					if err != nil {
						t.Fatal(err)
					}
					defer tr.Close()
					start = heldOutFisher(t, tr)
					for i := 0; i < cfg.Steps; i++ {
						if _, err := tr.Step(); err != nil {
							t.Fatal(err)
						}
					}
					return start, heldOutFisher(t, tr)
				}
				start, end := run(1)
				_, hobbled := run(0.01)
				t.Logf("held-out Fisher divergence %.4f → %.4f (learning rate ÷100: %.4f)", start, end, hobbled)
				if !(end < keepFisher*start) {
					t.Errorf("held-out Fisher divergence %.4f → %.4f: kept more than %g of it", start, end, keepFisher)
				}
				if !(end < 0.5*hobbled) {
					t.Errorf("held-out Fisher divergence %.4f, with the learning rate cut a hundredfold %.4f: training does not clearly beat a hobbled optimizer", end, hobbled)
				}
			})
		}
	}
}

func maxRel(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

func TestExportRoundTrip(t *testing.T) {
	bs := backends(t)
	cfg := small(trainer.LossDSM)
	cfg.Steps = 20
	tr, err := trainer.New(cfg, toy(t, "checkerboard"), bs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background(), trainer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := tr.Export(path, map[string]any{"command": "test"}); err != nil {
		t.Fatal(err)
	}
	m, err := importer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Kind != importer.OutScore || spec.Condition != importer.CondSigma || spec.XInput != "x" || spec.CondInput != "sigma" ||
		!slices.Equal(spec.Sigmas, cfg.Sigmas) || !slices.Equal(spec.DataShape, []int64{2}) || spec.Reasons["kind"] != "metadata" {
		t.Errorf("spec from metadata: %+v", spec)
	}
	if spec.Provenance["dataset"] != "checkerboard" || spec.Provenance["loss"] != "dsm" || spec.Provenance["steps"] != float64(20) || spec.Provenance["seed"] != float64(7) {
		t.Errorf("provenance: %v", spec.Provenance)
	}
	if spec.Sampler.Sampler != "ald" || spec.DataRange == nil {
		t.Errorf("sampler defaults %+v, data range %v", spec.Sampler, spec.DataRange)
	}

	const n = 64
	r := rand.New(rand.NewPCG(3, 4))
	x, sigma := make([]float32, 2*n), make([]float32, n)
	for i := range x {
		x[i] = float32(4 * r.NormFloat64())
	}
	for i := range sigma {
		sigma[i] = float32(cfg.Sigmas[i%len(cfg.Sigmas)])
	}
	want, err := tr.Score(nil, x, sigma, n, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		plan, err := b.Prepare(m, runtimeOptions())
		if err != nil {
			t.Fatal(err)
		}
		sess, err := plan.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out := &graph.Tensor{}
		if err := sess.Run([]*graph.Tensor{graph.NewFloat32([]int64{n, 2}, x), graph.NewFloat32([]int64{n}, sigma)}, []*graph.Tensor{out}); err != nil {
			t.Fatal(err)
		}
		tol := exportTol
		if b.Name() != tr.Backend().Name() {
			tol = crossBackendTol
		}
		if e := maxRel(out.F32, want); e > tol {
			t.Errorf("%s: exported model differs from the trainer's forward by %.3g relative (tolerance %g)", b.Name(), e, tol)
		}
		// The same backend as the trainer's own forward pass: ask both.
		tb, err := trainer.New(cfg, toy(t, "checkerboard"), b)
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Run(context.Background(), trainer.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		own, err := tb.Score(nil, x, sigma, n, true)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxRel(out.F32, own); e > exportTol {
			t.Errorf("%s: exported model differs from the trainer's forward on the same backend by %.3g relative", b.Name(), e)
		}
		tb.Close()
		sess.Close()
		plan.Close()
	}
}

// TestResumeBitIdentical trains 2k steps in one go and k + k through a
// checkpoint, on every backend and loss family, and wants the same bits.
func TestResumeBitIdentical(t *testing.T) {
	const k = 15
	for _, b := range backends(t) {
		for _, loss := range []string{trainer.LossDSM, trainer.LossSSM} {
			t.Run(b.Name()+"/"+loss, func(t *testing.T) {
				cfg := small(loss)
				cfg.Steps, cfg.ClipNorm, cfg.Warmup, cfg.WeightDecay = 2*k, 1, 10, 1e-4
				whole, err := trainer.New(cfg, toy(t, "swissroll"), b)
				if err != nil {
					t.Fatal(err)
				}
				defer whole.Close()
				if err := whole.Run(context.Background(), trainer.RunOptions{}); err != nil {
					t.Fatal(err)
				}

				ckpt := filepath.Join(t.TempDir(), "run.ckpt")
				first, err := trainer.New(cfg, toy(t, "swissroll"), b)
				if err != nil {
					t.Fatal(err)
				}
				// Interrupt after k steps, as Ctrl-C would.
				ctx, cancel := context.WithCancel(context.Background())
				err = first.Run(ctx, trainer.RunOptions{Checkpoint: ckpt, Progress: func(s *trainer.StepStats) {
					if s.Step == k {
						cancel()
					}
				}})
				first.Close()
				if !errors.Is(err, trainer.ErrInterrupted) || !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted run returned %v", err)
				}
				second, err := trainer.New(cfg, toy(t, "swissroll"), b)
				if err != nil {
					t.Fatal(err)
				}
				defer second.Close()
				if err := second.LoadCheckpoint(ckpt); err != nil {
					t.Fatal(err)
				}
				if second.Done() != k {
					t.Fatalf("resumed at step %d, want %d", second.Done(), k)
				}
				if err := second.Run(context.Background(), trainer.RunOptions{}); err != nil {
					t.Fatal(err)
				}
				for i := range whole.Params() {
					if !slices.Equal(whole.Params()[i], second.Params()[i]) || !slices.Equal(whole.EMAParams()[i], second.EMAParams()[i]) {
						t.Fatalf("parameter %s differs after resuming", whole.Net().Params[i])
					}
				}
			})
		}
	}
}

func TestCheckpointRefusesOtherSettings(t *testing.T) {
	b := backends(t)[0]
	cfg := small(trainer.LossDSM)
	cfg.Steps = 2
	tr, err := trainer.New(cfg, toy(t, "swissroll"), b)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "c.ckpt")
	if err := tr.Run(context.Background(), trainer.RunOptions{Checkpoint: ckpt}); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	cfg.LR = 1e-4
	other, err := trainer.New(cfg, toy(t, "swissroll"), b)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.LoadCheckpoint(ckpt); !errors.Is(err, trainer.ErrCheckpointMismatch) {
		t.Fatalf("got %v, want ErrCheckpointMismatch", err)
	}
}

func TestUNetTrains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Images of a bright square at a random place on a dark ground.
	x := graph.NewFloat32([]int64{64, 1, 8, 8}, nil)
	for i := 0; i < 64; i++ {
		u, v := r.IntN(6), r.IntN(6)
		for a := 0; a < 3; a++ {
			for c := 0; c < 3; c++ {
				x.F32[i*64+(u+a)*8+v+c] = 1
			}
		}
	}
	d, err := trainer.NewTensorData("squares", x, []float64{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends(t) {
		for _, loss := range []string{trainer.LossDSM, trainer.LossSSMVR} {
			t.Run(b.Name()+"/"+loss, func(t *testing.T) {
				cfg := trainer.Config{Arch: trainer.UNet{Channels: 8, Groups: 4}, Loss: loss, Batch: 16, Steps: 40, LR: 2e-3, Threads: 1}
				tr, err := trainer.New(cfg, d, b)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				var first, last float64
				for i := 0; i < cfg.Steps; i++ {
					s, err := tr.Step()
					if err != nil {
						t.Fatal(err)
					}
					if i < 10 {
						first += s.Loss / 10
					}
					if i >= cfg.Steps-10 {
						last += s.Loss / 10
					}
				}
				if !(last < first-0.1*math.Abs(first)) {
					t.Errorf("mean loss %.4f → %.4f: no clear decrease", first, last)
				}
				m, err := tr.Model(nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := importer.Encode(m); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []trainer.Config{
		{Loss: "nce"},
		{Sigmas: []float64{0.1, 1}},
		{Batch: -1},
		{Arch: trainer.MLP{Act: "swish"}},
		{EMA: 1},
		{Arch: trainer.UNet{Channels: 6, Groups: 4}},
		{Arch: trainer.EnergyConv{Act: "relu"}},
		{Arch: trainer.UNet{}, Loss: trainer.LossCD},
		// Non-finite settings trained without a word (clip, confinement) or
		// failed only at export, after the whole run (EMA, reinit).
		{ClipNorm: math.NaN()},
		{EMA: math.NaN()},
		{WeightDecay: math.Inf(1)},
		{Arch: trainer.EnergyMLP{Confine: math.NaN()}},
		{Arch: trainer.EnergyConv{Confine: math.Inf(1)}},
		{Arch: trainer.EnergyMLP{}, Loss: trainer.LossCD, CD: trainer.CDConfig{Reinit: math.NaN()}},
		{Arch: trainer.EnergyMLP{}, Loss: trainer.LossCD, CD: trainer.CDConfig{Reg: math.NaN()}},
		{Arch: trainer.MLP{Depth: trainer.MaxDepth + 1}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", c)
		}
	}
	if err := (trainer.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}
