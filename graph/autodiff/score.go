package autodiff

import (
	"errors"
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
)

// ScoreOutput is the output ScoreFromEnergy adds.
const ScoreOutput = "score"

// ScoreFromEnergy turns an energy model (output energy [N], one scalar per
// sample) into a score model: same inputs, one output "score" = −∇x Σ_n E(x_n),
// which is each sample's −∇x E because samples do not interact. x and energy
// are the data input and the energy output (importer.ModelSpec's XInput and
// Output). The ebmrun.kind and ebmrun.output metadata, when present, are
// updated to say "score".
func ScoreFromEnergy(m *graph.Model, x, energy string) (*graph.Model, error) {
	seed := func(b *builder, o string) (string, error) {
		return b.op("ConstantOfShape", []string{b.shapeOf(o)}, graph.TensorAttr("value", graph.NewFloat32([]int64{1}, []float32{1}))), nil
	}
	b, res, err := build(m, []string{energy}, []string{x}, Options{GradsOnly: true}, seed)
	if err != nil {
		return nil, err
	}
	if b.info[ScoreOutput] != nil {
		return nil, fmt.Errorf("autodiff: the energy model already has a value called %q", ScoreOutput)
	}
	b.node("Neg", []string{res.Grads[0]}, []string{ScoreOutput})
	out := b.g.Outputs[0]
	out.Name = ScoreOutput
	b.g.Outputs = []graph.ValueInfo{out}
	b.finish()
	sm := b.model()
	// The score-model contract's keys (importer.MetaKind, importer.MetaOutput);
	// graph cannot import the importer.
	for _, kv := range [][2]string{{"ebmrun.kind", "score"}, {"ebmrun.output", ScoreOutput}} {
		if _, ok := sm.Meta(kv[0]); ok {
			sm.SetMeta(kv[0], kv[1])
		}
	}
	return sm, nil
}

// SSM names the values SlicedScoreMatching adds.
type SSM struct {
	// V is the new input: the projection v, shaped like x (Rademacher ±1,
	// Gaussian, or on the sphere; the caller draws it).
	V string
	// Loss is the per-sample sliced score matching objective [N]:
	// vᵀ∇x(vᵀs(x)) + ½(vᵀs(x))².
	Loss string
	// VRLoss is the variance-reduced form [N]: vᵀ∇x(vᵀs(x)) + ½‖s(x)‖².
	VRLoss string
	// JVP is the Hutchinson term vᵀ∇x(vᵀs(x)) per sample [N].
	JVP string
}

// SlicedScoreMatching builds, from a score model with data input x and score
// output score (same shape as x, batch first), a model with one more input v
// and three outputs: the per-sample SSM and SSM-VR objectives and the
// Hutchinson term vᵀ∇x(vᵀs). The term is one vector–Jacobian product (the
// cotangent of s is v itself, so ∇x Σ_n v_nᵀ s(x_n) is every sample's
// ∇x(vᵀs) at once), never a d×d Jacobian. The original outputs are dropped.
// Differentiate the result again (VJP with Promote) for the parameter
// gradients of the loss.
func SlicedScoreMatching(m *graph.Model, x, score string) (*graph.Model, *SSM, error) {
	names := &SSM{}
	seed := func(b *builder, o string) (string, error) {
		in := b.info[x]
		if in == nil || !in.HasShape {
			return "", fmt.Errorf("autodiff: the rank of %q must be known", x)
		}
		names.V = b.unique("v")
		b.g.Inputs = append(b.g.Inputs, graph.ValueInfo{Name: names.V, DType: graph.Float32, Shape: in.Shape, HasShape: true})
		b.setInfo(names.V, &vinfo{DType: graph.Float32, Shape: in.Shape, HasShape: true})
		return names.V, nil
	}
	b, res, err := build(m, []string{score}, []string{x}, Options{GradsOnly: true}, seed)
	if err != nil {
		return nil, nil, err
	}
	if !b.sameShape(score, x) && b.shape(score) != nil && len(b.shape(score)) != len(b.shape(x)) {
		return nil, nil, errors.New("autodiff: the score must have the shape of x")
	}
	r := len(b.shape(x))
	perSample := func(v string) string {
		if r <= 1 {
			return v
		}
		axes := make([]int64, 0, r-1)
		for i := 1; i < r; i++ {
			axes = append(axes, int64(i))
		}
		return b.reduceSum(v, axes, false)
	}
	v := names.V
	jvp := perSample(b.mul(v, res.Grads[0]))
	vs := perSample(b.mul(v, score))
	sq := perSample(b.mul(score, score))
	half := b.scalar(0.5)
	names.JVP, names.Loss, names.VRLoss = b.unique("ssm_jvp"), b.unique("ssm_loss"), b.unique("ssm_vr_loss")
	b.node("Identity", []string{jvp}, []string{names.JVP})
	b.node("Add", []string{jvp, b.mul(half, b.mul(vs, vs))}, []string{names.Loss})
	b.node("Add", []string{jvp, b.mul(half, sq)}, []string{names.VRLoss})
	batch := graph.Shape{graph.Unknown}
	if s := b.shape(x); len(s) > 0 {
		batch = graph.Shape{s[0]}
	}
	b.g.Outputs = nil
	for _, o := range []string{names.Loss, names.VRLoss, names.JVP} {
		b.g.Outputs = append(b.g.Outputs, graph.ValueInfo{Name: o, DType: graph.Float32, Shape: batch, HasShape: true})
	}
	b.finish()
	return b.model(), names, nil
}
