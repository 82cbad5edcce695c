package trainer_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/trainer"
)

// squares is a tiny image data set: 64 images [1, 8, 8] of a bright 3×3
// square at a random place on a dark ground.
func squares(t *testing.T) trainer.Data {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
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
	return d
}

func smallConvEnergy(lr float64) trainer.Config {
	return trainer.Config{Arch: trainer.EnergyConv{Channels: 8, Depth: 2}, Loss: trainer.LossDSM, Batch: 16, LR: lr, Steps: 200, Seed: 11,
		Threads: 1, EMA: -1, Sigmas: []float64{1, 0.5, 0.25}}
}

// TestEnergyConvExport trains the convolutional energy a few steps, exports
// it, and checks that it ships as kind energy and that −∇x E of the
// exported energy, as the samplers derive it, is the trainer's score, on
// every backend.
func TestEnergyConvExport(t *testing.T) {
	bs := backends(t)
	cfg := smallConvEnergy(2e-3)
	cfg.Steps = 5
	tr, err := trainer.New(cfg, squares(t), bs[len(bs)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background(), trainer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "energy_conv.onnx")
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
	if spec.Kind != importer.OutEnergy || spec.Output != trainer.OutEnergy || spec.Condition != importer.CondSigma {
		t.Fatalf("spec from metadata: %+v", spec)
	}
	sm, _, err := sampler.EnergyScoreModel(m, spec)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	r := rand.New(rand.NewPCG(5, 6))
	x, sigma := make([]float32, 64*n), make([]float32, n)
	for i := range x {
		x[i] = float32(0.5 + 0.5*r.NormFloat64())
	}
	for i := range sigma {
		sigma[i] = float32(cfg.Sigmas[i%len(cfg.Sigmas)])
	}
	want, err := tr.Score(nil, x, sigma, n, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		plan, err := b.Prepare(sm, runtimeOptions())
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		sess, err := plan.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out := &graph.Tensor{}
		err = sess.Run([]*graph.Tensor{graph.NewFloat32([]int64{n, 1, 8, 8}, x), graph.NewFloat32([]int64{n}, sigma)}, []*graph.Tensor{out})
		sess.Close()
		plan.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(out.F32) != len(want) {
			t.Fatalf("%s: score has %d values, want %d", b.Name(), len(out.F32), len(want))
		}
		var gap, scale float64
		for i := range want {
			gap = math.Max(gap, math.Abs(float64(out.F32[i]-want[i])))
			scale = math.Max(scale, math.Abs(float64(want[i])))
		}
		if scale == 0 || gap > crossBackendTol*scale {
			t.Errorf("%s: exported −∇E differs from the trainer's score by %g (scale %g)", b.Name(), gap, scale)
		}
	}
}

// TestEnergyConvDSMLearns: a few hundred DSM steps through ∇x E of the
// convolutional energy end at a clearly lower loss than the same run, same
// seed and batches, with a learning rate too small to move the weights —
// so the decrease is learning, not the σ draws of a lucky window.
func TestEnergyConvDSMLearns(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) { dsmLearns(t, b) })
	}
}

func dsmLearns(t *testing.T, b runtime.Backend) {
	const window = 40
	tail := func(lr float64) float64 {
		cfg := smallConvEnergy(lr)
		tr, err := trainer.New(cfg, squares(t), b)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var last float64
		for i := 0; i < cfg.Steps; i++ {
			s, err := tr.Step()
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) {
				t.Fatalf("lr %g: loss %v at step %d", lr, s.Loss, i)
			}
			if i >= cfg.Steps-window {
				last += s.Loss / window
			}
		}
		return last
	}
	trained, sabotaged := tail(3e-3), tail(1e-9)
	t.Logf("%s: mean DSM loss of the last %d steps: lr 3e-3 %.4f, lr 1e-9 %.4f", b.Name(), window, trained, sabotaged)
	if !(trained < 0.8*sabotaged) {
		t.Errorf("trained loss %.4f is not clearly below the untrained run's %.4f", trained, sabotaged)
	}
}

// TestEnergyConvCD runs contrastive divergence on the convolutional energy
// with a replay buffer: the step must log both energies, and after a
// couple of hundred steps the data's energy must sit below the negatives'
// (the gap CD opens before it closes it).
func TestEnergyConvCD(t *testing.T) {
	bs := backends(t)
	b := bs[len(bs)-1]
	cfg := trainer.Config{Arch: trainer.EnergyConv{Channels: 8, Depth: 2, Confine: 0.2}, Loss: trainer.LossCD, Batch: 16, LR: 2e-3, Steps: 150, Seed: 3,
		Threads: 1, ClipNorm: 10, EMA: -1, CD: trainer.CDConfig{K: 10, StepSize: 0.01, Buffer: 200, Reg: 0.1}}
	tr, err := trainer.New(cfg, squares(t), b)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var gap float64
	const window = 50
	for i := 0; i < cfg.Steps; i++ {
		s, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		if s.EnergyPos == 0 && s.EnergyNeg == 0 {
			t.Fatal("no energies logged")
		}
		if i >= cfg.Steps-window {
			gap += (s.EnergyNeg - s.EnergyPos) / window
		}
	}
	t.Logf("%s: mean gap E(x⁻) − E(x⁺) over the last %d steps %.4f", b.Name(), window, gap)
	if !(gap > 0) {
		t.Errorf("negatives' energy %.4f above the data's on average: CD did not separate them", gap)
	}
}
