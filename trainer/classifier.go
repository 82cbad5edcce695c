package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// Output names of a classifier's inference graph.
const (
	OutLogits   = "logits"   // [N, K]
	OutFeatures = "features" // [N, Features], the penultimate activations
)

// Classifier is a small convolutional image classifier: two 3×3
// convolutions with stride 2 (C1 then C2 channels, ReLU after each), the
// flattened maps through a dense layer of Features units and ReLU — the
// feature vector the Fréchet distance is taken on — and a dense layer to
// the class logits. The zero value is the default: 32/64 channels, 128
// features.
type Classifier struct {
	C1, C2   int // channels of the two convolutions; default 32, 64
	Features int // penultimate units; default 128
}

func (a Classifier) defaults() Classifier {
	if a.C1 == 0 {
		a.C1 = 32
	}
	if a.C2 == 0 {
		a.C2 = 64
	}
	if a.Features == 0 {
		a.Features = 128
	}
	return a
}

// Name is "classifier".
func (Classifier) Name() string { return "classifier" }

// String describes the architecture in one line.
func (a Classifier) String() string {
	p := a.defaults()
	return fmt.Sprintf("classifier conv3×3/2 %d, conv3×3/2 %d, dense %d relu, dense to the classes", p.C1, p.C2, p.Features)
}

// Validate checks the settings.
func (a Classifier) Validate() error {
	p := a.defaults()
	if p.C1 < 1 || p.C2 < 1 || p.Features < 1 {
		return fmt.Errorf("trainer: classifier: channels %d, %d and features %d must be positive", p.C1, p.C2, p.Features)
	}
	return nil
}

// ClassifierNet is a classifier's inference graph (input x, outputs logits
// and features) with its parameters' names.
type ClassifierNet struct {
	Model  *graph.Model
	Params []string
}

// Build makes the classifier for images [C, H, W] and k classes.
func (a Classifier) Build(dataShape []int64, k int, r *rand.Rand) (*ClassifierNet, error) {
	return withParamBudget(func() (*ClassifierNet, error) { return a.build(dataShape, k, r) })
}

func (a Classifier) build(dataShape []int64, k int, r *rand.Rand) (*ClassifierNet, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(dataShape) != 3 || dataShape[0] < 1 || dataShape[1] < 4 || dataShape[2] < 4 {
		return nil, fmt.Errorf("trainer: classifier: takes images [C, H, W] of at least 4×4, got samples of shape %v", dataShape)
	}
	if k < 2 {
		return nil, fmt.Errorf("trainer: classifier: %d classes; want at least 2", k)
	}
	p := a.defaults()
	b := &unetBuilder{netBuilder: newNetBuilder("classifier", r)}
	shape := graph.Shape{{Param: "N"}}
	for _, d := range dataShape {
		shape = append(shape, graph.Dim{Value: d})
	}
	x := b.Input(InputX, graph.Float32, shape)
	c1, c2, nf := int64(p.C1), int64(p.C2), int64(p.Features)
	half := func(n int64) int64 { return (n-1)/2 + 1 } // 3×3, pad 1, stride 2
	h := b.act("relu", b.conv("c0", x, dataShape[0], c1, 3, 2))
	h = b.act("relu", b.conv("c1", h, c1, c2, 3, 2))
	flat := c2 * half(half(dataShape[1])) * half(half(dataShape[2]))
	h = b.Op1("Flatten", []string{h}, graph.IntAttr("axis", 1))
	feat := b.act("relu", b.dense("fc0", h, flat, nf))
	logits := b.dense("fc1", feat, nf, int64(k))
	b.Output(OutLogits, logits, graph.Float32, graph.Shape{{Param: "N"}, {Value: int64(k)}})
	b.Output(OutFeatures, feat, graph.Float32, graph.Shape{{Param: "N"}, {Value: nf}})
	return &ClassifierNet{
		Model:  &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: Opset}}, ProducerName: "ebmrun", Graph: b.Graph()},
		Params: b.params,
	}, nil
}

// ClassifierData is a labelled image set: X holds N images of Shape, each
// Labels[i] in [0, len(Classes)).
type ClassifierData struct {
	Name      string
	X         []float32
	Shape     []int64
	Labels    []int
	Classes   []string
	DataRange []float64
}

func (d *ClassifierData) check() error {
	per := int(graph.NumElements(d.Shape))
	n := len(d.Labels)
	if n < 1 || per < 1 || len(d.X) != n*per {
		return fmt.Errorf("trainer: classifier data %s: %d values for %d labels of images %v", d.Name, len(d.X), n, d.Shape)
	}
	for i, l := range d.Labels {
		if l < 0 || l >= len(d.Classes) {
			return fmt.Errorf("trainer: classifier data %s: label %d of image %d is outside 0 … %d", d.Name, l, i, len(d.Classes)-1)
		}
	}
	return nil
}

// ClassifierConfig are the settings of a classifier's training.
type ClassifierConfig struct {
	Arch    Classifier
	Steps   int     // Adam steps
	Batch   int     // images per step
	LR      float64 // peak learning rate, decayed to 0 along a half cosine
	EMA     float64 // decay of the exported weight average; negative: none
	Seed    uint64
	Threads int
}

// ClassifierTrainer trains a Classifier with softmax cross-entropy and
// Adam, the loss and its parameter gradient one graph from the autodiff, as
// Trainer does for score networks.
type ClassifierTrainer struct {
	cfg     ClassifierConfig
	data    *ClassifierData
	backend runtime.Backend
	net     *ClassifierNet
	plan    runtime.Plan
	sess    runtime.Session

	params, ema [][]float32
	shapes      [][]int64
	opt         *adam
	done        int

	ins, outs []*graph.Tensor
	x, y      *graph.Tensor
	lossOut   *graph.Tensor
	gradOuts  []*graph.Tensor
	grads     [][]float32
	perm      []int
	permEpoch int
}

// NewClassifierTrainer builds the classifier (initial weights from
// cfg.Seed), writes the mean cross-entropy around it, differentiates it
// and prepares the step on backend.
func NewClassifierTrainer(cfg ClassifierConfig, data *ClassifierData, backend runtime.Backend) (*ClassifierTrainer, error) {
	if err := data.check(); err != nil {
		return nil, err
	}
	if cfg.Steps < 1 || cfg.Batch < 1 || cfg.Batch > len(data.Labels) || !(cfg.LR > 0) || cfg.EMA >= 1 {
		return nil, fmt.Errorf("trainer: classifier: steps %d, batch %d (of %d images), lr %g and ema %g: want positive steps, a batch no larger than the data, lr > 0 and ema < 1", cfg.Steps, cfg.Batch, len(data.Labels), cfg.LR, cfg.EMA)
	}
	net, err := cfg.Arch.Build(data.Shape, len(data.Classes), sampler.Stream(cfg.Seed, initStream))
	if err != nil {
		return nil, err
	}
	step, params, grads, cot, err := crossEntropyStep(net, data.Shape, len(data.Classes))
	if err != nil {
		return nil, err
	}
	t := &ClassifierTrainer{cfg: cfg, data: data, backend: backend, net: net, permEpoch: -1}
	inits := net.Model.Graph.InitializerMap()
	for _, p := range net.Params {
		w := inits[p]
		t.params = append(t.params, append([]float32(nil), w.F32...))
		t.ema = append(t.ema, append([]float32(nil), w.F32...))
		t.shapes = append(t.shapes, w.Shape)
	}
	t.opt = newAdam(t.params, 0.9, 0.999, 1e-8, 0)
	if t.plan, err = backend.Prepare(step, runtime.Options{Threads: cfg.Threads}); err != nil {
		return nil, fmt.Errorf("trainer: preparing the classifier step on %s: %w", backend.Name(), err)
	}
	if t.sess, err = t.plan.NewSession(); err != nil {
		t.plan.Close()
		return nil, fmt.Errorf("trainer: %w", err)
	}
	rows := append([]int64{int64(cfg.Batch)}, data.Shape...)
	t.x = graph.NewFloat32(rows, nil)
	t.y = graph.NewFloat32([]int64{int64(cfg.Batch), int64(len(data.Classes))}, nil)
	feed := map[string]*graph.Tensor{feedX: t.x, feedLabels: t.y, cot: graph.ScalarFloat32(1)}
	for i, p := range params {
		feed[p] = graph.NewFloat32(t.shapes[i], t.params[i])
	}
	for _, in := range t.plan.Inputs() {
		v, ok := feed[in.Name]
		if !ok {
			t.Close()
			return nil, fmt.Errorf("trainer: the classifier step has an input %q the trainer does not feed", in.Name)
		}
		t.ins = append(t.ins, v)
	}
	byName := map[string]*graph.Tensor{}
	for _, o := range t.plan.Outputs() {
		v := &graph.Tensor{}
		t.outs = append(t.outs, v)
		byName[o.Name] = v
	}
	t.lossOut = byName[outLoss]
	for _, g := range grads {
		t.gradOuts = append(t.gradOuts, byName[g])
	}
	if t.lossOut == nil || len(t.gradOuts) != len(t.params) {
		t.Close()
		return nil, errors.New("trainer: the classifier step lacks the loss or gradient outputs")
	}
	t.grads = make([][]float32, len(t.params))
	return t, nil
}

// feedLabels is the one-hot label feed of the cross-entropy graph.
const feedLabels = "labels"

// crossEntropyStep writes −Σ_k y_k·log softmax(logits)_k per image around
// the classifier, its batch mean as the loss, and differentiates it.
func crossEntropyStep(net *ClassifierNet, dataShape []int64, k int) (step *graph.Model, params, grads []string, cot string, err error) {
	b := newLossBuilder("cross_entropy", dataShape)
	n := graph.Dim{Param: "N"}
	x := b.dataInput(feedX, dataShape, n)
	y := b.Input(feedLabels, graph.Float32, graph.Shape{n, {Value: int64(k)}})
	outs, ren, err := inline(b.Builder, net.Model.Graph, map[string]string{InputX: x})
	if err != nil {
		return nil, nil, nil, "", err
	}
	logp := b.Op1("LogSoftmax", []string{outs[0]}, graph.IntAttr("axis", 1))
	picked := b.Op1("ReduceSum", []string{b.op("Mul", y, logp), b.ints(1)}, graph.IntAttr("keepdims", 0))
	m := b.finish(b.op("Neg", picked))
	step, res, err := autodiff.VJP(m, []string{outLoss}, renamed(net.Params, ren), autodiff.Options{Promote: true})
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("trainer: differentiating the cross-entropy: %w", err)
	}
	return step, renamed(net.Params, ren), res.Grads, res.Cotangents[0], nil
}

// Done is the number of steps taken.
func (t *ClassifierTrainer) Done() int { return t.done }

// Config is the settings the trainer runs with.
func (t *ClassifierTrainer) Config() ClassifierConfig { return t.cfg }

// Net is the classifier being trained (its graph holds the initial weights).
func (t *ClassifierTrainer) Net() *ClassifierNet { return t.net }

// Step takes one Adam step on the next batch of the shuffled epochs and
// returns its mean cross-entropy. Epoch e is a permutation drawn from
// (Seed, e), so a run depends only on its seed and settings.
func (t *ClassifierTrainer) Step() (float64, error) {
	t.fill(t.done)
	if err := t.sess.Run(t.ins, t.outs); err != nil {
		return 0, fmt.Errorf("trainer: classifier step %d: %w", t.done+1, err)
	}
	loss := float64(t.lossOut.F32[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("trainer: classifier step %d: the loss is %v; lower the learning rate", t.done+1, loss)
	}
	for i, g := range t.gradOuts {
		t.grads[i] = g.F32
	}
	lr := t.cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(t.done)/float64(t.cfg.Steps)))
	t.opt.update(t.params, t.grads, t.done+1, lr, 1)
	t.done++
	if t.cfg.EMA >= 0 {
		emaUpdate(t.ema, t.params, emaDecay(t.cfg.EMA, t.done))
	}
	return loss, nil
}

// fill writes step's batch: images into the x feed, one-hot labels into
// the label feed.
func (t *ClassifierTrainer) fill(step int) {
	n, per := t.cfg.Batch, int(graph.NumElements(t.data.Shape))
	total := len(t.data.Labels)
	clear(t.y.F32)
	k := len(t.data.Classes)
	for i := 0; i < n; i++ {
		pos := step*n + i
		if e := pos / total; e != t.permEpoch {
			t.perm = sampler.Stream(t.cfg.Seed, e).Perm(total)
			t.permEpoch = e
		}
		j := t.perm[pos%total]
		copy(t.x.F32[i*per:(i+1)*per], t.data.X[j*per:(j+1)*per])
		t.y.F32[i*k+t.data.Labels[j]] = 1
	}
}

// Model is the inference graph with the averaged weights and the
// classifier metadata (importer.ClassifierSpec); extra is merged into the
// provenance.
func (t *ClassifierTrainer) Model(extra map[string]any) (*graph.Model, error) {
	w := t.ema
	if t.cfg.EMA < 0 {
		w = t.params
	}
	idx := map[string]int{}
	for i, p := range t.net.Params {
		idx[p] = i
		if j := firstNonFinite(w[i], false); j >= 0 {
			return nil, fmt.Errorf("trainer: export: weight %d of %s is %v; a model with non-finite weights is not written", j, p, w[i][j])
		}
	}
	g := *t.net.Model.Graph
	g.Initializers = nil
	for _, in := range t.net.Model.Graph.Initializers {
		if i, ok := idx[in.Name]; ok {
			in.Tensor = graph.NewFloat32(t.shapes[i], append([]float32(nil), w[i]...))
		}
		g.Initializers = append(g.Initializers, in)
	}
	m := *t.net.Model
	m.Graph = &g
	m.Metadata = nil
	m.ProducerName, m.ProducerVersion = "ebmrun", Version()
	m.Doc = fmt.Sprintf("image classifier (%s) trained by ebmrun on %s with softmax cross-entropy", t.cfg.Arch, t.data.Name)
	prov := map[string]any{
		"trainer": "ebmrun " + Version(), "dataset": t.data.Name, "loss": "cross-entropy",
		"steps": t.done, "seed": t.cfg.Seed, "batch": t.cfg.Batch, "lr": t.cfg.LR, "lr_schedule": "cosine",
		"arch": t.cfg.Arch.String(), "ema": t.cfg.EMA, "backend": t.backend.Name(), "opset": Opset,
	}
	for k, v := range extra {
		prov[k] = v
	}
	spec := importer.ClassifierSpec{XInput: InputX, Logits: OutLogits, Features: OutFeatures,
		Classes: t.data.Classes, DataShape: t.data.Shape, DataRange: t.data.DataRange, Provenance: prov}
	kv, err := spec.Metadata()
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	for _, key := range []string{importer.MetaKind, importer.MetaXInput, importer.MetaLogits, importer.MetaFeatures,
		importer.MetaClasses, importer.MetaDataShape, importer.MetaDataRange, importer.MetaProvenance} {
		if v, ok := kv[key]; ok {
			m.SetMeta(key, v)
		}
	}
	return &m, nil
}

// Export writes Model(extra) to path as ONNX, atomically.
func (t *ClassifierTrainer) Export(path string, extra map[string]any) error {
	m, err := t.Model(extra)
	if err != nil {
		return err
	}
	if err := importer.Save(path, m); err != nil {
		return fmt.Errorf("trainer: export: %w", err)
	}
	return nil
}

// Close releases the session and plan.
func (t *ClassifierTrainer) Close() error {
	var errs []error
	if t.sess != nil {
		errs = append(errs, t.sess.Close())
		t.sess = nil
	}
	if t.plan != nil {
		errs = append(errs, t.plan.Close())
		t.plan = nil
	}
	return errors.Join(errs...)
}
