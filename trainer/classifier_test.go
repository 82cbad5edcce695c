package trainer

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// twoClassImages are n 1×8×8 images of two classes told apart by which
// half is bright, labels alternating.
func twoClassImages(n int, r *rand.Rand) *ClassifierData {
	d := &ClassifierData{Name: "halves", Shape: []int64{1, 8, 8}, Classes: []string{"top", "bottom"}, DataRange: []float64{0, 1}}
	d.X = make([]float32, n*64)
	d.Labels = make([]int, n)
	for i := 0; i < n; i++ {
		d.Labels[i] = i % 2
		for p := 0; p < 64; p++ {
			v := 0.3 * r.Float64()
			if (p < 32) == (i%2 == 0) {
				v += 0.6
			}
			d.X[i*64+p] = float32(v)
		}
	}
	return d
}

func nativeBackend(t *testing.T) runtime.Backend {
	t.Helper()
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// The step graph's loss is the mean of −log softmax(logits)[label], with
// the logits from the inference graph; its gradient agrees with central
// differences of that loss.
func TestClassifierCrossEntropyAndGradient(t *testing.T) {
	be := nativeBackend(t)
	data := twoClassImages(8, rand.New(rand.NewPCG(5, 6)))
	data.Classes = []string{"a", "b", "c"}
	cfg := ClassifierConfig{Arch: Classifier{C1: 3, C2: 4, Features: 5}, Steps: 1, Batch: 8, LR: 1e-3, Seed: 9, Threads: 1}
	tr, err := NewClassifierTrainer(cfg, data, be)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// The batch of step 0, as Step fills it, and the loss at the weights.
	tr.fill(0)
	lossAt := func() float64 {
		t.Helper()
		if err := tr.sess.Run(tr.ins, tr.outs); err != nil {
			t.Fatal(err)
		}
		return float64(tr.lossOut.F32[0])
	}
	loss := lossAt()
	grads := make([][]float32, len(tr.gradOuts))
	for i, g := range tr.gradOuts {
		grads[i] = slices.Clone(g.F32)
	}

	// The same loss from the inference graph's logits.
	plan, err := be.Prepare(tr.Net().Model, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	outs := []*graph.Tensor{{}, {}}
	if err := sess.Run([]*graph.Tensor{tr.x}, outs); err != nil {
		t.Fatal(err)
	}
	logits := outs[0].F32
	if plan.Outputs()[0].Name != OutLogits {
		logits = outs[1].F32
	}
	var want float64
	for i := 0; i < cfg.Batch; i++ {
		row := logits[i*3 : i*3+3]
		m := float64(slices.Max(row))
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for k := 0; k < 3; k++ {
			if tr.y.F32[i*3+k] == 1 {
				want += -(float64(row[k]) - m - math.Log(s)) / float64(cfg.Batch)
			}
		}
	}
	if math.Abs(loss-want) > 1e-5*math.Abs(want) {
		t.Errorf("step loss %.7g, cross-entropy of the inference logits %.7g", loss, want)
	}

	r := rand.New(rand.NewPCG(7, 8))
	const h = 1e-2
	for i, p := range tr.params {
		for range 3 {
			j := r.IntN(len(p))
			old := p[j]
			p[j] = old + h
			up := lossAt()
			p[j] = old - h
			down := lossAt()
			p[j] = old
			fd := (up - down) / (2 * h)
			if g := float64(grads[i][j]); math.Abs(g-fd) > 2e-3+2e-2*math.Abs(fd) {
				t.Errorf("%s[%d]: gradient %.5g, central difference %.5g", tr.Net().Params[i], j, g, fd)
			}
		}
	}
}

// Training depends only on the seed and settings, learns two separable
// classes, and exports a model whose metadata importer.Classifier reads
// back.
func TestClassifierTrainerIsDeterministicAndLearns(t *testing.T) {
	be := nativeBackend(t)
	data := twoClassImages(96, rand.New(rand.NewPCG(1, 2)))
	cfg := ClassifierConfig{Arch: Classifier{C1: 4, C2: 8, Features: 8}, Steps: 40, Batch: 32, LR: 1e-2, EMA: 0.9, Seed: 3, Threads: 2}
	train := func() (*ClassifierTrainer, []float64) {
		tr, err := NewClassifierTrainer(cfg, data, be)
		if err != nil {
			t.Fatal(err)
		}
		var losses []float64
		for tr.Done() < cfg.Steps {
			l, err := tr.Step()
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, l)
		}
		return tr, losses
	}
	a, la := train()
	defer a.Close()
	b, lb := train()
	defer b.Close()
	if !slices.Equal(la, lb) {
		t.Error("two runs of one seed took different losses")
	}
	for i := range a.params {
		if !slices.Equal(a.params[i], b.params[i]) {
			t.Fatalf("two runs of one seed ended with different %s", a.Net().Params[i])
		}
	}
	first, last := (la[0]+la[1]+la[2])/3, (la[37]+la[38]+la[39])/3
	if !(last < first/4) {
		t.Errorf("cross-entropy %.3g at the start, %.3g at the end: not learning", first, last)
	}
	m, err := a.Model(map[string]any{"note": "test"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Classifier(m)
	if err != nil {
		t.Fatal(err)
	}
	if spec.XInput != InputX || spec.Logits != OutLogits || spec.Features != OutFeatures || !slices.Equal(spec.Classes, data.Classes) ||
		!slices.Equal(spec.DataShape, data.Shape) || spec.Provenance["note"] != "test" || spec.Provenance["steps"] != 40.0 {
		t.Errorf("exported classifier spec %+v", spec)
	}
	if _, err := importer.Spec(m, importer.Overrides{}); !errors.Is(err, importer.ErrClassifier) {
		t.Errorf("Spec of a classifier: %v, want ErrClassifier", err)
	}
}

func TestClassifierRefusesBadSettings(t *testing.T) {
	be := nativeBackend(t)
	data := twoClassImages(8, rand.New(rand.NewPCG(1, 2)))
	for _, c := range []struct {
		cfg  ClassifierConfig
		data func(*ClassifierData)
	}{
		{ClassifierConfig{Steps: 1, Batch: 9, LR: 1e-3}, nil},
		{ClassifierConfig{Steps: 0, Batch: 4, LR: 1e-3}, nil},
		{ClassifierConfig{Steps: 1, Batch: 4, LR: 0}, nil},
		{ClassifierConfig{Arch: Classifier{C1: -1}, Steps: 1, Batch: 4, LR: 1e-3}, nil},
		{ClassifierConfig{Steps: 1, Batch: 4, LR: 1e-3}, func(d *ClassifierData) { d.Labels[3] = 2 }},
		{ClassifierConfig{Steps: 1, Batch: 4, LR: 1e-3}, func(d *ClassifierData) { d.Shape = []int64{64} }},
	} {
		d := *data
		d.Labels = slices.Clone(data.Labels)
		if c.data != nil {
			c.data(&d)
		}
		if tr, err := NewClassifierTrainer(c.cfg, &d, be); err == nil {
			tr.Close()
			t.Errorf("%+v accepted", c.cfg)
		}
	}
}
