package trainer

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/projection"
)

// Losses, by the names Config.Loss takes (docs/design.md, "Losses"). Every loss
// is taken on perturbed data x̃ = x + σz with σ drawn per sample from the
// schedule, and weighted by λ(σ) = σ², which makes each level's term O(1).
const (
	// LossDSM is NCSN's multi-σ denoising score matching: ½‖σ·s(x̃,σ) + z‖².
	LossDSM = "dsm"
	// LossSSM is sliced score matching, σ²·(vᵀ∇x(vᵀs) + ½(vᵀs)²), the first
	// term as one vector–Jacobian product; its parameter gradient is second
	// order, through the autodiff twice.
	LossSSM = "ssm"
	// LossSSMVR is SSM with the variance-reduced second term ½‖s‖².
	LossSSMVR = "ssm-vr"
	// LossFDSSM is finite-difference SSM (Pang et al. 2020): the VJP term
	// becomes (vᵀs(x̃+εv) − vᵀs(x̃−εv))/(2ε), ε = Config.FDEps·σ, so the
	// loss needs forward passes only (three, batched into one).
	LossFDSSM = "fd-ssm"
)

// LossNames lists the losses Config.Loss accepts.
var LossNames = []string{LossDSM, LossSSM, LossSSMVR, LossFDSSM}

// Projections, the distributions of the slicing vectors v of the SSM losses
// (package projection draws them, as eval does).
const (
	ProjRademacher = string(projection.Rademacher) // ±1 in each coordinate
	ProjGaussian   = string(projection.Gaussian)   // N(0, I)
	ProjSphere     = string(projection.Sphere)     // uniform on the sphere of radius √d
)

// Output names of every loss graph.
const (
	outLoss    = "loss"   // scalar: the batch mean
	outLossPer = "loss_i" // [N]: each sample's loss, for σ-wise logs
)

// lossGraph is a loss written around a network, differentiated with respect
// to the network's parameters: inputs are the data feeds, the parameters
// (promoted from initializers) and the loss's cotangent; outputs are the
// loss, the per-sample losses and one gradient per parameter.
type lossGraph struct {
	step   *graph.Model
	params []string // parameter names in step, in Net.Params order
	grads  []string // gradient output names, same order
	cot    string   // the input that seeds the loss's cotangent (fed 1)
}

// buildLoss writes the loss around net and differentiates it.
func buildLoss(net *Net, loss string, dataShape []int64) (*lossGraph, error) {
	var (
		m      *graph.Model
		params []string
		err    error
	)
	switch loss {
	case LossDSM:
		m, params, err = dsmGraph(net, dataShape)
	case LossSSM, LossSSMVR:
		m, params, err = ssmGraph(net, dataShape, loss == LossSSMVR)
	case LossFDSSM:
		m, params, err = fdssmGraph(net, dataShape)
	default:
		err = fmt.Errorf("trainer: unknown loss %q (have %s)", loss, strings.Join(LossNames, ", "))
	}
	if err != nil {
		return nil, err
	}
	step, res, err := autodiff.VJP(m, []string{outLoss}, params, autodiff.Options{Promote: true})
	if err != nil {
		return nil, fmt.Errorf("trainer: differentiating the %s loss: %w", loss, err)
	}
	return &lossGraph{step: step, params: params, grads: res.Grads, cot: res.Cotangents[0]}, nil
}

// lossBuilder holds a loss graph being written.
type lossBuilder struct {
	*netBuilder
	rank int // data rank: the sum axes are 1 … rank
}

func newLossBuilder(name string, dataShape []int64) *lossBuilder {
	return &lossBuilder{netBuilder: newNetBuilder(name, nil), rank: len(dataShape)}
}

func (b *lossBuilder) dataInput(name string, dataShape []int64, batch graph.Dim) string {
	shape := graph.Shape{batch}
	for _, d := range dataShape {
		shape = append(shape, graph.Dim{Value: d})
	}
	return b.Input(name, graph.Float32, shape)
}

func (b *lossBuilder) vecInput(name string, batch graph.Dim) string {
	return b.Input(name, graph.Float32, graph.Shape{batch})
}

// rowSum sums each sample over its data axes: [N, …] → [N].
func (b *lossBuilder) rowSum(v string) string {
	axes := make([]int64, b.rank)
	for i := range axes {
		axes[i] = int64(i + 1)
	}
	return b.Op1("ReduceSum", []string{v, b.ints(axes...)}, graph.IntAttr("keepdims", 0))
}

// finish declares loss = mean(per) and loss_i = per, and returns the model.
func (b *lossBuilder) finish(per string) *graph.Model {
	mean := b.Op1("ReduceMean", []string{per}, graph.IntsAttr("axes", 0), graph.IntAttr("keepdims", 0))
	b.Output(outLoss, mean, graph.Float32, graph.Shape{})
	b.Output(outLossPer, per, graph.Float32, graph.Shape{{Param: "N"}})
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: Opset}}, ProducerName: "ebmrun", Graph: b.Graph()}
}

func renamed(params []string, rename map[string]string) []string {
	out := make([]string, len(params))
	for i, p := range params {
		out[i] = rename[p]
	}
	return out
}

// Feed names of the loss graphs.
const (
	feedX      = "xt"    // perturbed data x̃ [N, …]
	feedSigma  = "sigma" // σ per sample [N]
	feedZ      = "z"     // DSM: the noise of x̃ = x + σz
	feedV      = "v"     // SSM: slicing vectors [N, …]
	feedX3     = "x3"    // FD-SSM: x̃+εv, x̃−εv, x̃ stacked [3N, …]
	feedSigma3 = "sigma3"
	feedV3     = "v3"     // FD-SSM: v stacked three times
	feedCoefA  = "coef_a" // FD-SSM: σ²/(2ε)·(1, −1, 0) per row
	feedCoefC  = "coef_c" // FD-SSM: σ²/2·(0, 0, 1) per row
)

func dsmGraph(net *Net, dataShape []int64) (*graph.Model, []string, error) {
	b := newLossBuilder("dsm", dataShape)
	n := graph.Dim{Param: "N"}
	x := b.dataInput(feedX, dataShape, n)
	sigma := b.vecInput(feedSigma, n)
	z := b.dataInput(feedZ, dataShape, n)
	outs, ren, err := inline(b.Builder, net.Model.Graph, map[string]string{InputX: x, InputSigma: sigma})
	if err != nil {
		return nil, nil, err
	}
	r := b.op("Add", b.op("Mul", b.sigmaLike(sigma, b.rank+1), outs[0]), z)
	per := b.op("Mul", b.scalar(0.5), b.rowSum(b.op("Mul", r, r)))
	return b.finish(per), renamed(net.Params, ren), nil
}

// ssmGraph is σ²·(vᵀ∇x(vᵀs) + ½(vᵀs)²), or with ½‖s‖² (variance
// reduced): autodiff.SlicedScoreMatching writes the Hutchinson term as one
// VJP of the network (the cotangent of s is v, and samples are
// independent, so one product gives every row's ∇x(vᵀs)); the outer VJP in
// buildLoss then differentiates through that gradient graph.
func ssmGraph(net *Net, dataShape []int64, vr bool) (*graph.Model, []string, error) {
	sm, names, err := autodiff.SlicedScoreMatching(net.Model, InputX, OutScore)
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: ∇x(vᵀs): %w", err)
	}
	n := graph.Dim{Param: "N"}
	b := newLossBuilder("ssm", dataShape)
	x := b.dataInput(feedX, dataShape, n)
	sigma := b.vecInput(feedSigma, n)
	v := b.dataInput(feedV, dataShape, n)
	outs, ren, err := inline(b.Builder, sm.Graph, map[string]string{InputX: x, InputSigma: sigma, names.V: v})
	if err != nil {
		return nil, nil, err
	}
	got := map[string]string{}
	for i, o := range sm.Graph.Outputs {
		got[o.Name] = outs[i]
	}
	obj := got[names.Loss]
	if vr {
		obj = got[names.VRLoss]
	}
	per := b.op("Mul", b.op("Mul", sigma, sigma), obj)
	return b.finish(per), renamed(net.Params, ren), nil
}

// fdssmGraph evaluates the network once on the stacked batch x̃+εv, x̃−εv,
// x̃ ([3N, …], ε = fdEps·σ) and takes, per sample,
// σ²·((vᵀs₊ − vᵀs₋)/(2ε) + ½(vᵀs₀)²). The stacked rows stay apart: with
// u = vᵀs per row, the loss is a⊙u + c⊙u² with the coefficients
// a = σ²/(2ε)·(1, −1, 0) and c = σ²/2·(0, 0, 1) fed per row, so every value
// keeps the one batch dimension (N3 = 3N) and no reshape hides it from the
// autodiff. loss_i is per row; a sample's loss is the sum of its three rows.
func fdssmGraph(net *Net, dataShape []int64) (*graph.Model, []string, error) {
	b := newLossBuilder("fd_ssm", dataShape)
	n3 := graph.Dim{Param: "N3"}
	x3 := b.dataInput(feedX3, dataShape, n3)
	s3 := b.vecInput(feedSigma3, n3)
	v3 := b.dataInput(feedV3, dataShape, n3)
	ca := b.vecInput(feedCoefA, n3)
	cc := b.vecInput(feedCoefC, n3)
	outs, ren, err := inline(b.Builder, net.Model.Graph, map[string]string{InputX: x3, InputSigma: s3})
	if err != nil {
		return nil, nil, err
	}
	u := b.rowSum(b.op("Mul", v3, outs[0]))
	per := b.op("Add", b.op("Mul", ca, u), b.op("Mul", cc, b.op("Mul", u, u)))
	mean := b.Op1("ReduceMean", []string{per}, graph.IntsAttr("axes", 0), graph.IntAttr("keepdims", 0))
	b.Output(outLoss, b.op("Mul", b.scalar(3), mean), graph.Float32, graph.Shape{})
	b.Output(outLossPer, per, graph.Float32, graph.Shape{n3})
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: Opset}}, ProducerName: "ebmrun", Graph: b.Graph()}, renamed(net.Params, ren), nil
}

// project fills v with slicing vectors, one per row of d values, drawn as
// eval draws them (package projection).
func project(v []float32, d int, kind string, r *rand.Rand) {
	projection.Fill(v, d, projection.Kind(kind), r)
}
