package trainer_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/trainer"
)

func smallEnergy(loss string) trainer.Config {
	cfg := small(loss)
	cfg.Arch = trainer.EnergyMLP{Width: 32, Depth: 2}
	return cfg
}

// TestEnergyScoreLossesDecrease trains the energy network by the score
// losses, whose parameter gradient goes through ∇x E (second order; SSM's
// third).
func TestEnergyScoreLossesDecrease(t *testing.T) {
	for _, b := range backends(t) {
		for _, loss := range []string{trainer.LossDSM, trainer.LossSSMVR} {
			t.Run(b.Name()+"/"+loss, func(t *testing.T) {
				cfg := smallEnergy(loss)
				cfg.Steps = 250
				tr, err := trainer.New(cfg, toy(t, "8gaussians"), b)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				const window = 20
				var first, last float64
				for i := 0; i < cfg.Steps; i++ {
					s, err := tr.Step()
					if err != nil {
						t.Fatal(err)
					}
					if i < window {
						first += s.Loss / window
					}
					if i >= cfg.Steps-window {
						last += s.Loss / window
					}
				}
				if !(last < first-0.05*math.Abs(first)) {
					t.Errorf("mean loss of the first %d steps %.4f, of the last %.4f: no clear decrease", window, first, last)
				}
				t.Logf("loss %.4f → %.4f", first, last)
			})
		}
	}
}

// TestEnergyExport checks that an energy network ships as kind energy and
// that the score samplers derive from it, −∇x E, is the score the trainer
// trained, on every backend.
func TestEnergyExport(t *testing.T) {
	bs := backends(t)
	cfg := smallEnergy(trainer.LossDSM)
	cfg.Steps = 10
	tr, err := trainer.New(cfg, toy(t, "checkerboard"), bs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background(), trainer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "energy.onnx")
	if err := tr.Export(path, nil); err != nil {
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
	if spec.Kind != importer.OutEnergy || spec.Output != trainer.OutEnergy || spec.Condition != importer.CondSigma || spec.Reasons["kind"] != "metadata" {
		t.Fatalf("spec from metadata: %+v", spec)
	}
	sm, _, err := sampler.EnergyScoreModel(m, spec)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	r := rand.New(rand.NewPCG(5, 6))
	x, sigma := make([]float32, 2*n), make([]float32, n)
	for i := range x {
		x[i] = float32(3 * r.NormFloat64())
	}
	for i := range sigma {
		sigma[i] = float32(cfg.Sigmas[i%len(cfg.Sigmas)])
	}
	want, err := tr.Score(nil, x, sigma, n, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		for _, c := range []struct {
			m    *graph.Model
			what string
		}{{m, "energy"}, {sm, "score"}} {
			plan, err := b.Prepare(c.m, runtimeOptions())
			if err != nil {
				t.Fatalf("%s: %s: %v", b.Name(), c.what, err)
			}
			sess, err := plan.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out := &graph.Tensor{}
			err = sess.Run([]*graph.Tensor{graph.NewFloat32([]int64{n, 2}, x), graph.NewFloat32([]int64{n}, sigma)}, []*graph.Tensor{out})
			sess.Close()
			plan.Close()
			if err != nil {
				t.Fatal(err)
			}
			if c.what == "energy" {
				if len(out.F32) != n {
					t.Errorf("%s: energy has %d values, want %d", b.Name(), len(out.F32), n)
				}
				continue
			}
			if len(out.F32) != len(want) {
				t.Fatalf("%s: score has %d values, want %d", b.Name(), len(out.F32), len(want))
			}
			var gap, scale float64
			for i := range want {
				gap = math.Max(gap, math.Abs(float64(out.F32[i]-want[i])))
				scale = math.Max(scale, math.Abs(float64(want[i])))
			}
			if gap > crossBackendTol*scale {
				t.Errorf("%s: exported −∇E differs from the trainer's score by %g (scale %g)", b.Name(), gap, scale)
			}
		}
	}
}

// TestCDTrains runs contrastive divergence with a replay buffer on 8
// Gaussians and checks what a working CD run shows: the data's energy
// falls below the negatives' early, and the final energy, with its
// Langevin chains, puts samples near the data (mean distance to the nearest
// of the eight modes well below the uniform start's).
func TestCDTrains(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			cfg := trainer.Config{Arch: trainer.EnergyMLP{Width: 32, Depth: 2, Confine: 0.2}, Loss: trainer.LossCD, Batch: 64, LR: 3e-3, Steps: 600, Seed: 3,
				Threads: 1, ClipNorm: 10, EMA: -1, CD: trainer.CDConfig{K: 20, StepSize: 0.01, Buffer: 1000, Reg: 0.1}}
			tr, err := trainer.New(cfg, toy(t, "8gaussians"), b)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			var gap float64
			for i := 0; i < cfg.Steps; i++ {
				s, err := tr.Step()
				if err != nil {
					t.Fatal(err)
				}
				if s.EnergyPos == 0 && s.EnergyNeg == 0 {
					t.Fatal("no energies logged")
				}
				if i%100 == 0 {
					t.Logf("step %d gap %.3f pos %.3f", i, s.EnergyNeg-s.EnergyPos, s.EnergyPos)
				}
				if i >= cfg.Steps-30 {
					gap += (s.EnergyNeg - s.EnergyPos) / 30
				}
			}
			t.Logf("late mean gap E(x⁻) − E(x⁺) = %.4f", gap)
			// Sample: long chains from uniform noise on the current weights.
			const n = 256
			r := rand.New(rand.NewPCG(1, 2))
			x, sig := make([]float32, 2*n), make([]float32, n)
			for i := range x {
				x[i] = float32(-4.5 + 9*r.Float64())
			}
			for i := range sig {
				sig[i] = 1
			}
			near := func() float64 {
				var sum float64
				for i := 0; i < n; i++ {
					best := math.Inf(1)
					for m := 0; m < 8; m++ {
						a := 2 * math.Pi * float64(m) / 8
						dx, dy := float64(x[2*i])-2*math.Sqrt2*math.Cos(a), float64(x[2*i+1])-2*math.Sqrt2*math.Sin(a)
						best = math.Min(best, math.Hypot(dx, dy))
					}
					sum += best
				}
				return sum / n
			}
			before := near()
			var s []float32
			for k := 0; k < 300; k++ {
				if s, err = tr.Score(s, x, sig, n, false); err != nil {
					t.Fatal(err)
				}
				for i := range x {
					x[i] += 0.01*s[i] + float32(math.Sqrt(0.02)*r.NormFloat64())
				}
			}
			after := near()
			var rad float64
			for i := 0; i < n; i++ {
				rad += math.Hypot(float64(x[2*i]), float64(x[2*i+1])) / n
			}
			t.Logf("mean distance to the nearest mode: uniform %.3f, after Langevin %.3f (mean radius %.3f)", before, after, rad)
			if !(after < 0.6*before) {
				t.Errorf("Langevin on the CD energy leaves samples at %.3f from the modes (uniform: %.3f)", after, before)
			}
		})
	}
}

func TestCDNeedsEnergy(t *testing.T) {
	cfg := small(trainer.LossCD)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "energy") {
		t.Errorf("cd on a score MLP: got %v, want an error naming the energy architecture", err)
	}
}

// TestCDResume: 15 CD steps, a checkpoint, and 15 more after loading it give
// the weights of 30 steps in one go — the replay buffer travels with the
// checkpoint.
func TestCDResume(t *testing.T) {
	b := backends(t)[0]
	cfg := trainer.Config{Arch: trainer.EnergyMLP{Width: 16, Depth: 2}, Loss: trainer.LossCD, Batch: 32, Steps: 30, Seed: 4, Threads: 1,
		CD: trainer.CDConfig{K: 5, Buffer: 100}}
	straight, err := trainer.New(cfg, toy(t, "8gaussians"), b)
	if err != nil {
		t.Fatal(err)
	}
	defer straight.Close()
	if err := straight.Run(context.Background(), trainer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "cd.ckpt")
	half := cfg
	half.Steps = 15
	first, err := trainer.New(half, toy(t, "8gaussians"), b)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Run(context.Background(), trainer.RunOptions{Checkpoint: ckpt}); err != nil {
		t.Fatal(err)
	}
	second, err := trainer.New(cfg, toy(t, "8gaussians"), b)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.LoadCheckpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background(), trainer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, p := range straight.Params() {
		if !slices.Equal(p, second.Params()[i]) {
			t.Fatalf("parameter %d differs after resuming", i)
		}
	}
}
