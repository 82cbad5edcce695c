package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

const fashionTestLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

// shippedClassifier is models/fashion_classifier/model.onnx.
func shippedClassifier(t *testing.T) string {
	return testenv.Path(t, "models", "fashion_classifier", "model.onnx")
}

// The shipped classifier's accuracy on the 10 000 Fashion-MNIST test
// images is at least its card's figure (native is deterministic, so the
// margin is only for a rounding of the card's last digit); inspect says it
// is a classifier and sample refuses it.
func TestShippedClassifier(t *testing.T) {
	t.Parallel()
	testenv.Require(t, fashionTest, "apt-get install dataset-fashion-mnist")
	model := shippedClassifier(t)
	card, err := os.ReadFile(filepath.Join(filepath.Dir(model), "CARD.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`test accuracy\D*?(0\.\d+)`).FindSubmatch(card)
	if m == nil {
		t.Fatal("CARD.md states no test accuracy")
	}
	want, _ := strconv.ParseFloat(string(m[1]), 64)
	out, stderr, code := ebmrun(t, "classify", model, fashionTest, "--backend", "native", "--json")
	if code != 0 {
		t.Fatalf("classify: exit %d: %s", code, stderr)
	}
	var r classifyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Images != 10000 || r.Accuracy == nil || r.Labels != fashionTestLabels {
		t.Fatalf("classify report %+v: want 10 000 images scored against %s", r, fashionTestLabels)
	}
	if *r.Accuracy < want-0.0005 {
		t.Errorf("test accuracy %.4f, the card says %.4f", *r.Accuracy, want)
	}
	if *r.Accuracy < 0.85 {
		t.Errorf("test accuracy %.4f: not a usable classifier", *r.Accuracy)
	}
	// The test set is balanced: a good classifier's histogram is near uniform.
	if r.TVUniform > 0.05 {
		t.Errorf("TV of the predictions on the balanced test set to uniform = %.3f", r.TVUniform)
	}

	out, _, code = ebmrun(t, "inspect", model)
	if code != 0 || !strings.Contains(out, "ebmrun.kind = classifier") || !strings.Contains(out, "10: T-shirt/top") {
		t.Errorf("inspect: exit %d, output lacks the classifier section:\n%s", code, out)
	}
	_, stderr, code = ebmrun(t, "sample", model, "-n", "2", "-o", filepath.Join(t.TempDir(), "s.npy"))
	if code != 1 || !strings.Contains(stderr, "is a classifier") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("sample of the classifier: exit %d, %q; want one line saying it is a classifier", code, stderr)
	}
}

// saveNpy writes x as .npy in dir.
func saveNpy(t *testing.T, dir, name string, x *graph.Tensor) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := tensorio.WriteNpyFile(p, x); err != nil {
		t.Fatal(err)
	}
	return p
}

// compare --classifier: a set against itself is at FD 0 and TV 0; two
// halves of the test set are close; the test set against its trousers
// alone is far in both FD and class TV, the trousers' histogram sits on
// one class; both backends give the same figures.
func TestCompareClassifier(t *testing.T) {
	t.Parallel()
	testenv.Require(t, fashionTest, "apt-get install dataset-fashion-mnist")
	model := shippedClassifier(t)
	dir := t.TempDir()
	imgs, err := dataset.Load(fashionTest)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := dataset.Load(fashionTestLabels)
	if err != nil {
		t.Fatal(err)
	}
	const n, per = 400, 28 * 28
	scaled := func(idx []int) *graph.Tensor {
		x := graph.NewFloat32([]int64{int64(len(idx)), 1, 28, 28}, nil)
		for i, j := range idx {
			for k := 0; k < per; k++ {
				x.F32[i*per+k] = imgs.F32[j*per+k] / 255
			}
		}
		return x
	}
	var first, second, trousers []int
	for i := 0; i < 10000; i++ {
		switch {
		case i < n:
			first = append(first, i)
		case i < 2*n:
			second = append(second, i)
		}
		if labels.F32[i] == 1 && len(trousers) < n {
			trousers = append(trousers, i)
		}
	}
	a := saveNpy(t, dir, "a.npy", scaled(first))
	b := saveNpy(t, dir, "b.npy", scaled(second))
	tr := saveNpy(t, dir, "trousers.npy", scaled(trousers))
	cmp := func(x, y, backend string) *classifierMetrics {
		t.Helper()
		out, stderr, code := ebmrun(t, "compare", x, y, "--classifier", model, "--backend", backend, "--permutations", "0", "--batch", "128", "--json")
		if code != 0 {
			t.Fatalf("compare %s %s on %s: exit %d: %s", x, y, backend, code, stderr)
		}
		var r compareReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Classifier == nil || r.Classifier.Features < 2 || len(r.Classifier.HistA) != 10 {
			t.Fatalf("compare --classifier report lacks the classifier metrics: %s", out)
		}
		return r.Classifier
	}
	self := cmp(a, a, "native")
	near := cmp(a, b, "native")
	// 0 to rounding: the square roots of the near-zero eigenvalues of
	// nearly dead ReLU units carry float64 rounding up to about 1e-6.
	if math.Abs(self.FD) > 1e-5*near.FD || self.TVAB != 0 {
		t.Errorf("A vs A: FD %g, TV %g; want 0 and 0", self.FD, self.TVAB)
	}
	far := cmp(a, tr, "native")
	t.Logf("FD: halves %.3g, test set vs trousers %.3g; TV %.3f vs %.3f", near.FD, far.FD, near.TVAB, far.TVAB)
	if !(near.FD > 0) || far.FD < 10*near.FD {
		t.Errorf("FD of two halves of the test set %g, of the test set against its trousers %g: want the second ≥ 10× the first", near.FD, far.FD)
	}
	if near.TVAB > 0.1 || far.TVAB < 0.8 || far.HistB[1] < 0.95 || far.TVUniformB < 0.85 {
		t.Errorf("class TV: halves %.3f, vs trousers %.3f (trousers' histogram %v, TV to uniform %.3f)", near.TVAB, far.TVAB, far.HistB, far.TVUniformB)
	}
	if _, err := runtime.Get("ort"); err != nil {
		if testenv.Cgo {
			testenv.Missing(t, err.Error())
		}
		return
	}
	onOrt := cmp(a, tr, "ort")
	if math.Abs(onOrt.FD-far.FD) > 1e-3*far.FD || onOrt.TVAB != far.TVAB {
		t.Errorf("ort: FD %g, TV %g; native: FD %g, TV %g", onOrt.FD, onOrt.TVAB, far.FD, far.TVAB)
	}
}

// compare --classifier and classify refuse what they cannot measure, in one
// line each.
func TestClassifierRefusals(t *testing.T) {
	t.Parallel()
	model := shippedClassifier(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	raw := graph.NewFloat32([]int64{20, 1, 28, 28}, nil)
	small := graph.NewFloat32([]int64{20, 1, 8, 8}, nil)
	for i := range raw.F32 {
		raw.F32[i] = float32(r.IntN(256))
	}
	pixels := saveNpy(t, dir, "pixels.npy", raw)
	tiny := saveNpy(t, dir, "tiny.npy", small)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"compare", tiny, tiny, "--classifier", testenv.Path(t, "models", "swissroll", "model.onnx")}, 1, "not a classifier"},
		{[]string{"compare", pixels, pixels, "--classifier", model}, 1, "need scaling"},
		{[]string{"compare", tiny, tiny, "--classifier", model}, 1, "takes [1 28 28]"},
		{[]string{"compare", tiny, tiny, "--classifier", model, "--batch", "0"}, 2, "--batch"},
		{[]string{"classify", model, tiny}, 1, "takes [1 28 28]"},
		{[]string{"classify", model, pixels, "--labels", tiny}, 1, "one label for each"},
	} {
		_, stderr, code := ebmrun(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d and one line with %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// train --arch classifier learns two synthetic classes (bright top half,
// bright bottom half) from .npy images and labels, exports a classifier
// with the settings asked for, and refuses what it does not take.
func TestTrainClassifier(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	const n = 256
	x := graph.NewFloat32([]int64{n, 1, 8, 8}, nil)
	y := graph.NewFloat32([]int64{n}, nil)
	for i := 0; i < n; i++ {
		c := i % 2
		y.F32[i] = float32(c)
		for p := 0; p < 64; p++ {
			v := 60 * r.Float64()
			if (p < 32) == (c == 0) {
				v += 150
			}
			x.F32[i*64+p] = float32(v)
		}
	}
	imgs := saveNpy(t, dir, "imgs.npy", x)
	lbls := saveNpy(t, dir, "labels.npy", y)
	out := filepath.Join(dir, "c.onnx")
	_, stderr, code := ebmrun(t, "train", "--arch", "classifier", "--data", imgs, "--labels", lbls, "--classes", "top,bottom",
		"--channels", "4", "--features", "8", "--steps", "40", "--batch", "32", "--lr", "0.01", "--backend", "native", "-o", out)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	m, err := importer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := importer.Classifier(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(spec.Classes, ",") != "top,bottom" || spec.DataShape[1] != 8 || spec.Provenance["steps"] != 40.0 {
		t.Errorf("exported spec %+v", spec)
	}
	for _, o := range m.Graph.Outputs {
		if o.Name == "features" && o.Shape[1].Value != 8 {
			t.Errorf("features of shape %s, want [N, 8]", o.Shape)
		}
	}
	// The training images, scaled as training scaled them.
	for i := range x.F32 {
		x.F32[i] /= 255
	}
	scaled := saveNpy(t, dir, "scaled.npy", x)
	js, stderr, code := ebmrun(t, "classify", out, scaled, "--labels", lbls, "--json", "--backend", "native")
	if code != 0 {
		t.Fatalf("classify: exit %d: %s", code, stderr)
	}
	var rep classifyReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Accuracy == nil || *rep.Accuracy < 0.95 {
		t.Errorf("accuracy on two separable classes: %v", rep.Accuracy)
	}

	short := saveNpy(t, dir, "short.npy", graph.NewFloat32([]int64{n - 1}, nil))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data", imgs, "--labels", short}, 1, "one label per image"},
		{[]string{"--data", imgs}, 2, "--labels"},
		{[]string{"--data", imgs, "--labels", lbls, "--loss", "ssm"}, 2, "--loss"},
		{[]string{"--data", filepath.Join(dir, "train-images-idx3-ubyte"), "--steps", "1"}, 1, "labels"},
	} {
		args := append([]string{"train", "--arch", "classifier", "-o", filepath.Join(dir, "bad.onnx")}, c.args...)
		_, stderr, code := ebmrun(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d and one line with %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if fileExists(filepath.Join(dir, "bad.onnx")) {
		t.Error("a refused training wrote a model")
	}
}
