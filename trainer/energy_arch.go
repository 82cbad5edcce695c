package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
)

// OutEnergy is the output of an energy network's graph: E(x, σ) [N].
const OutEnergy = "energy"

// EnergyMLP is a noise-conditional energy E(x, σ) for vectors: the input
// x ‖ log σ goes through Depth hidden layers of Width units with a smooth
// activation Act, then a linear layer to one unit f; the energy is
//
//	E(x, σ) = f(x, log σ)/σ + ½·Confine·‖x‖²
//
// The division by σ gives the score −∇x E the 1/σ scale of the NCSN MLP's;
// the fixed quadratic term (no parameter) keeps exp(−E) integrable whatever
// the weights, since an MLP of smooth activations grows at most linearly, so
// log Z exists. The network the trainer differentiates is the score graph
// −∇x E, written by the graph autodiff: a loss on the score is second order
// in the energy's parameters. The zero value is the default: 3 × 128,
// SiLU, Confine 0.1.
type EnergyMLP struct {
	Width   int     // hidden units; default 128
	Depth   int     // hidden layers; default 3
	Act     string  // silu, softplus, tanh or elu; default "silu"
	Confine float64 // coefficient of ½‖x‖²; default 0.1, negative: none
}

func (a EnergyMLP) defaults() EnergyMLP {
	if a.Width == 0 {
		a.Width = 128
	}
	if a.Depth == 0 {
		a.Depth = 3
	}
	if a.Act == "" {
		a.Act = "silu"
	}
	if a.Confine == 0 {
		a.Confine = 0.1
	}
	return a
}

// Name is "energy-mlp".
func (EnergyMLP) Name() string { return "energy-mlp" }

// Validate checks the settings: the activation must be smooth, since the
// loss differentiates the score, which is already a derivative (ReLU's
// second derivative is zero almost everywhere, so SSM would not train).
func (a EnergyMLP) Validate() error {
	p := a.defaults()
	if p.Width < 1 || p.Depth < 1 || p.Depth > MaxDepth {
		return fmt.Errorf("trainer: energy-mlp: width %d must be positive and depth %d in 1 … %d", p.Width, p.Depth, MaxDepth)
	}
	if math.IsNaN(p.Confine) || math.IsInf(p.Confine, 0) {
		return fmt.Errorf("trainer: energy-mlp: the confinement %v must be finite", p.Confine)
	}
	return checkSmoothAct("energy-mlp", p.Act)
}

// String describes the architecture in one line.
func (a EnergyMLP) String() string {
	p := a.defaults()
	c := p.Confine
	if c < 0 {
		c = 0
	}
	return fmt.Sprintf("energy-mlp %d×%d %s, confine %g", p.Depth, p.Width, p.Act, c)
}

// Build makes the energy network for vectors of shape [d]: Net.Energy is
// the energy graph, Net.Model the score graph derived from it.
func (a EnergyMLP) Build(dataShape []int64, r *rand.Rand) (*Net, error) {
	return withParamBudget(func() (*Net, error) { return a.build(dataShape, r) })
}

func (a EnergyMLP) build(dataShape []int64, r *rand.Rand) (*Net, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(dataShape) != 1 || dataShape[0] < 1 {
		return nil, fmt.Errorf("trainer: energy-mlp: takes vectors, got samples of shape %v", dataShape)
	}
	p := a.defaults()
	d := dataShape[0]
	b := newNetBuilder("energy_mlp", r)
	x, sigma := dataInput(b, dataShape)
	logs := b.op("Unsqueeze", b.op("Log", sigma), b.ints(1))
	h := b.Op1("Concat", []string{x, logs}, graph.IntAttr("axis", 1))
	in := d + 1
	for i := 0; i < p.Depth; i++ {
		h = b.act(p.Act, b.dense(fmt.Sprintf("l%d", i), h, in, int64(p.Width)))
		in = int64(p.Width)
	}
	f := b.dense(fmt.Sprintf("l%d", p.Depth), h, in, 1)
	f = b.op("Div", f, b.sigmaLike(sigma, 2))
	e := b.Op1("ReduceSum", []string{f, b.ints(1)}, graph.IntAttr("keepdims", 0)) // [N, 1] → [N]
	if p.Confine > 0 {
		sq := b.Op1("ReduceSum", []string{b.op("Mul", x, x), b.ints(1)}, graph.IntAttr("keepdims", 0))
		e = b.op("Add", e, b.op("Mul", b.scalar(float32(p.Confine/2)), sq))
	}
	return finishEnergy(b, e, "energy-mlp")
}

// checkSmoothAct refuses an activation an energy cannot use: its losses
// differentiate the score, itself a derivative of E, and ReLU's second
// derivative is zero almost everywhere.
func checkSmoothAct(arch, act string) error {
	if act == "relu" {
		return fmt.Errorf("trainer: %s: activation relu is not smooth; use silu, softplus, tanh or elu", arch)
	}
	return checkAct(act)
}
