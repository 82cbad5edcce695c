package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
)

// LossCD is maximum likelihood by contrastive divergence on an energy
// network: per batch, mean E(x⁺) over data minus mean E(x⁻) over negatives
// drawn by K steps of Langevin dynamics on the current energy, plus the
// energy-magnitude penalty α_reg·(E(x⁺)² + E(x⁻)²) (Du & Mordatch 2019).
// Its parameter gradient is first order: the negatives are constants of
// the step. It needs an energy architecture.
const LossCD = "cd"

// EnergyLossNames are the losses only energy architectures take.
var EnergyLossNames = []string{LossCD}

// CDConfig are contrastive divergence's settings (Config.CD). The zero
// value of each field means its default.
type CDConfig struct {
	// K is the number of Langevin steps per negative; default 20.
	K int
	// StepSize is α of x ← x − α∇E(x) + √(2α)·NoiseScale·z; default 0.01.
	StepSize float64
	// NoiseScale multiplies the Langevin noise; default 1, which makes the
	// chain the unadjusted Langevin algorithm for exp(−E). Below 1 the
	// negatives sit nearer the modes (the "cold" chains of short-run EBMs).
	NoiseScale float64
	// Buffer is the size of the persistent replay buffer the negatives
	// start from; 0: every negative starts from uniform noise on the data
	// range.
	Buffer int
	// Reinit is the fraction of buffer starts replaced by fresh noise each
	// step; default 0.05, as in Du & Mordatch 2019. Negative: none.
	Reinit float64
	// Reg is α_reg of the energy-magnitude penalty; default 1, negative:
	// none.
	Reg float64
}

func (c CDConfig) withDefaults() CDConfig {
	if c.K == 0 {
		c.K = 20
	}
	if c.StepSize == 0 {
		c.StepSize = 0.01
	}
	if c.NoiseScale == 0 {
		c.NoiseScale = 1
	}
	if c.Reinit == 0 {
		c.Reinit = 0.05
	}
	if c.Reg == 0 {
		c.Reg = 1
	}
	return c
}

func (c CDConfig) validate() error {
	c = c.withDefaults()
	if c.K < 1 || !(c.StepSize > 0) || math.IsInf(c.StepSize, 0) || !(c.NoiseScale >= 0) || math.IsInf(c.NoiseScale, 0) {
		return fmt.Errorf("cd: K = %d, step size %v must be positive and noise scale %v not negative", c.K, c.StepSize, c.NoiseScale)
	}
	if c.Buffer < 0 || !(c.Reinit <= 1) {
		return fmt.Errorf("cd: buffer %d must not be negative and the reinitialisation rate %v at most 1", c.Buffer, c.Reinit)
	}
	if math.IsNaN(c.Reg) || math.IsInf(c.Reg, 0) || math.IsInf(c.Reinit, 0) {
		return fmt.Errorf("cd: the energy regularisation %v and reinitialisation rate %v must be finite", c.Reg, c.Reinit)
	}
	return nil
}

// Feed and output names of the CD graph.
const (
	feedX2     = "x2"     // positives then negatives [2N, …]
	feedSigma2 = "sigma2" // σ per row [2N]
	feedSign   = "sign"   // +1 for positives, −1 for negatives [2N]
	feedRegC   = "reg_c"  // α_reg per row [2N]
	outEnergy  = "energy_i"
)

// cdGraph evaluates the energy once on the stacked batch x⁺ ‖ x⁻ ([2N, …])
// and takes per row sign⊙E + reg⊙E², so the loss, 2·mean over the 2N rows,
// is mean E(x⁺) − mean E(x⁻) + α_reg·(mean E(x⁺)² + mean E(x⁻)²). The
// energies come out too, for the logged gap.
func cdGraph(net *Net, dataShape []int64) (*graph.Model, []string, error) {
	if net.Energy == nil {
		return nil, nil, errors.New("trainer: the cd loss needs an energy architecture (energy-mlp or energy-conv)")
	}
	b := newLossBuilder("cd", dataShape)
	n2 := graph.Dim{Param: "N2"}
	x2 := b.dataInput(feedX2, dataShape, n2)
	s2 := b.vecInput(feedSigma2, n2)
	sign := b.vecInput(feedSign, n2)
	reg := b.vecInput(feedRegC, n2)
	outs, ren, err := inline(b.Builder, net.Energy.Graph, map[string]string{InputX: x2, InputSigma: s2})
	if err != nil {
		return nil, nil, err
	}
	e := outs[0]
	per := b.op("Add", b.op("Mul", sign, e), b.op("Mul", reg, b.op("Mul", e, e)))
	mean := b.Op1("ReduceMean", []string{per}, graph.IntsAttr("axes", 0), graph.IntAttr("keepdims", 0))
	b.Output(outLoss, b.op("Mul", b.scalar(2), mean), graph.Float32, graph.Shape{})
	b.Output(outLossPer, per, graph.Float32, graph.Shape{n2})
	b.Output(outEnergy, b.op("Identity", e), graph.Float32, graph.Shape{n2})
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: Opset}}, ProducerName: "ebmrun", Graph: b.Graph()}, renamed(net.Params, ren), nil
}

// cdState is contrastive divergence's part of a Trainer: the buffers of
// the Langevin chains and the replay buffer.
type cdState struct {
	cfg    CDConfig
	sigma  float64   // the σ the energy is trained at: the schedule's last
	neg    []float32 // the batch's negatives [N·d]
	score  []float32
	sig    []float32 // σ per negative
	buffer []float32 // [Buffer·d]; filled lazily
	filled bool
	energy *graph.Tensor
}

// uniform fills x with uniform noise on the data range.
func uniformFill(x []float32, rng []float64, r *rand.Rand) {
	lo, hi := -1.0, 1.0
	if len(rng) == 2 {
		lo, hi = rng[0], rng[1]
	}
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
}

// cdFill draws step k's negatives into the stacked feed after the
// positives t.clean: starts from the buffer (a Reinit fraction from noise)
// or from noise, then K Langevin steps on the current weights.
func (t *Trainer) cdFill(r *rand.Rand) error {
	c := t.cd
	n := t.cfg.Batch
	d := len(t.clean) / n
	if c.cfg.Buffer > 0 && !c.filled {
		uniformFill(c.buffer, t.data.Range(), r)
		c.filled = true
	}
	idx := make([]int, n)
	for i := 0; i < n; i++ {
		row := c.neg[i*d : (i+1)*d]
		if c.cfg.Buffer > 0 {
			idx[i] = r.IntN(c.cfg.Buffer)
			if r.Float64() < c.cfg.Reinit {
				uniformFill(row, t.data.Range(), r)
			} else {
				copy(row, c.buffer[idx[i]*d:(idx[i]+1)*d])
			}
		} else {
			uniformFill(row, t.data.Range(), r)
		}
	}
	a := float32(c.cfg.StepSize)
	noise := float32(math.Sqrt(2*c.cfg.StepSize) * c.cfg.NoiseScale)
	var err error
	for k := 0; k < c.cfg.K; k++ {
		// the score is −∇x E, so x − α∇E is x + α·s
		if c.score, err = t.Score(c.score, c.neg, c.sig, n, false); err != nil {
			return fmt.Errorf("trainer: cd negatives: %w", err)
		}
		for i, s := range c.score {
			c.neg[i] += a*s + noise*float32(r.NormFloat64())
		}
	}
	if c.cfg.Buffer > 0 {
		for i, j := range idx {
			copy(c.buffer[j*d:(j+1)*d], c.neg[i*d:(i+1)*d])
		}
	}
	x2 := t.feed[feedX2].F32
	copy(x2, t.clean)
	copy(x2[len(t.clean):], c.neg)
	return nil
}

// cdBind makes the CD feeds of a batch of n samples of d values.
func (t *Trainer) cdBind(n, d int) {
	cfg := t.cfg.CD.withDefaults()
	c := &cdState{cfg: cfg, sigma: t.cfg.Sigmas[len(t.cfg.Sigmas)-1]}
	c.neg = make([]float32, n*d)
	c.sig = make([]float32, n)
	for i := range c.sig {
		c.sig[i] = float32(c.sigma)
	}
	if cfg.Buffer > 0 {
		c.buffer = make([]float32, cfg.Buffer*d)
	}
	rows := append([]int64{int64(2 * n)}, t.data.Shape()...)
	t.feed[feedX2] = graph.NewFloat32(rows, nil)
	s2, sign, reg := make([]float32, 2*n), make([]float32, 2*n), make([]float32, 2*n)
	alpha := cfg.Reg
	if alpha < 0 {
		alpha = 0
	}
	for i := range s2 {
		s2[i] = float32(c.sigma)
		sign[i] = 1
		if i >= n {
			sign[i] = -1
		}
		reg[i] = float32(alpha)
	}
	t.feed[feedSigma2] = graph.NewFloat32([]int64{int64(2 * n)}, s2)
	t.feed[feedSign] = graph.NewFloat32([]int64{int64(2 * n)}, sign)
	t.feed[feedRegC] = graph.NewFloat32([]int64{int64(2 * n)}, reg)
	t.cd = c
}

// cdStats sets the step's mean positive and negative energies.
func (t *Trainer) cdStats(s *StepStats) {
	e := t.cd.energy.F32
	n := len(e) / 2
	var pos, neg float64
	for i := 0; i < n; i++ {
		pos += float64(e[i])
		neg += float64(e[n+i])
	}
	s.EnergyPos, s.EnergyNeg = pos/float64(n), neg/float64(n)
}
