package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
)

// EnergyConv is a noise-conditional convolutional energy E(x, σ) for images
// [C, H, W]: Depth 3×3 convolutions of Channels channels (unit stride, same
// padding), each followed by a smooth activation Act, with a per-channel
// shift computed from log σ added after the first; then the mean over the
// pixels (global average pooling), a dense layer with Act and a dense layer
// to one unit f. As for EnergyMLP,
//
//	E(x, σ) = f(x, log σ)/σ + ½·Confine·‖x‖²
//
// where the quadratic term keeps exp(−E) integrable whatever the weights.
// Every convolution keeps unit strides because the loss differentiates the
// score −∇x E, itself the graph's gradient: a unit-stride Conv's input
// gradient is again a Conv, whose own gradients the autodiff writes as
// Convs and products, so the second-order graph stays one that the native
// backend and onnxruntime both run at Conv speed. No normalisation layer:
// a per-image normalisation would make E depend on x through its
// statistics, which is allowed but makes the energy scale-invariant at
// large ‖x‖, leaving only the confining term to bound it. The zero value is
// the default: 3 convolutions of 32 channels, SiLU, Confine 0.1.
type EnergyConv struct {
	Channels int     // per convolution; default 32
	Depth    int     // 3×3 convolutions; default 3
	Act      string  // silu, softplus, tanh or elu; default "silu"
	Confine  float64 // coefficient of ½‖x‖²; default 0.1, negative: none
}

func (a EnergyConv) defaults() EnergyConv {
	if a.Channels == 0 {
		a.Channels = 32
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

// Name is "energy-conv".
func (EnergyConv) Name() string { return "energy-conv" }

// Validate checks the settings; as for EnergyMLP the activation must be
// smooth.
func (a EnergyConv) Validate() error {
	p := a.defaults()
	if p.Channels < 1 || p.Depth < 1 || p.Depth > MaxDepth {
		return fmt.Errorf("trainer: energy-conv: channels %d must be positive and depth %d in 1 … %d", p.Channels, p.Depth, MaxDepth)
	}
	if math.IsNaN(p.Confine) || math.IsInf(p.Confine, 0) {
		return fmt.Errorf("trainer: energy-conv: the confinement %v must be finite", p.Confine)
	}
	return checkSmoothAct("energy-conv", p.Act)
}

// String describes the architecture in one line.
func (a EnergyConv) String() string {
	p := a.defaults()
	return fmt.Sprintf("energy-conv %d×%d channels %s, confine %g", p.Depth, p.Channels, p.Act, max(p.Confine, 0))
}

// Build makes the energy network for images of shape [C, H, W]: Net.Energy
// is the energy graph, Net.Model the score graph derived from it.
func (a EnergyConv) Build(dataShape []int64, r *rand.Rand) (*Net, error) {
	return withParamBudget(func() (*Net, error) { return a.build(dataShape, r) })
}

func (a EnergyConv) build(dataShape []int64, r *rand.Rand) (*Net, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(dataShape) != 3 || dataShape[0] < 1 || dataShape[1] < 1 || dataShape[2] < 1 {
		return nil, fmt.Errorf("trainer: energy-conv: takes images [C, H, W], got samples of shape %v (use energy-mlp for vectors)", dataShape)
	}
	p := a.defaults()
	b := &unetBuilder{netBuilder: newNetBuilder("energy_conv", r)}
	x, sigma := dataInput(b.netBuilder, dataShape)
	c, hh, ww := dataShape[0], dataShape[1], dataShape[2]
	ch := int64(p.Channels)

	logs := b.op("Unsqueeze", b.op("Log", sigma), b.ints(1)) // [N, 1]
	shift := b.op("Unsqueeze", b.dense("emb", logs, 1, ch), b.ints(2, 3))
	h, in := x, c
	for i := 0; i < p.Depth; i++ {
		h = b.conv(fmt.Sprintf("c%d", i), h, in, ch, 3, 1)
		if i == 0 {
			h = b.op("Add", h, shift)
		}
		h = b.act(p.Act, h)
		in = ch
	}
	// Global average pooling as a sum times 1/(H·W): ReduceSum takes its
	// axes as an input at opset 17, which every backend and the autodiff
	// read the same way.
	h = b.Op1("ReduceSum", []string{h, b.ints(2, 3)}, graph.IntAttr("keepdims", 0)) // [N, ch]
	h = b.op("Mul", h, b.scalar(float32(1/float64(hh*ww))))
	h = b.act(p.Act, b.dense("fc0", h, ch, ch))
	f := b.dense("fc1", h, ch, 1)
	f = b.op("Div", f, b.sigmaLike(sigma, 2))
	e := b.Op1("ReduceSum", []string{f, b.ints(1)}, graph.IntAttr("keepdims", 0)) // [N, 1] → [N]
	if p.Confine > 0 {
		sq := b.Op1("ReduceSum", []string{b.op("Mul", x, x), b.ints(1, 2, 3)}, graph.IntAttr("keepdims", 0))
		e = b.op("Add", e, b.op("Mul", b.scalar(float32(p.Confine/2)), sq))
	}
	return finishEnergy(b.netBuilder, e, "energy-conv")
}

// finishEnergy declares the energy output e [N] and derives the score
// graph −∇x E from the energy graph.
func finishEnergy(b *netBuilder, e, name string) (*Net, error) {
	b.Output(OutEnergy, e, graph.Float32, graph.Shape{{Param: "N"}})
	em := &graph.Model{
		IRVersion:    8,
		Opsets:       []graph.OpsetImport{{Version: Opset}},
		ProducerName: "ebmrun",
		Graph:        b.Graph(),
	}
	sm, err := autodiff.ScoreFromEnergy(em, InputX, OutEnergy)
	if err != nil {
		return nil, fmt.Errorf("trainer: %s: the score −∇x E: %w", name, err)
	}
	if len(sm.Graph.Outputs) != 1 || sm.Graph.Outputs[0].Name != OutScore {
		return nil, fmt.Errorf("trainer: %s: the score graph's output is not %q", name, OutScore)
	}
	return &Net{Model: sm, Params: b.params, Energy: em}, nil
}

// isEnergy reports whether an architecture builds an energy network (the
// cd loss needs one).
func isEnergy(a Arch) bool {
	switch a.(type) {
	case EnergyMLP, EnergyConv:
		return true
	}
	return false
}
