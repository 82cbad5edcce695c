package main

import (
	"bytes"
	"image"
	"image/gif"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// shippedModels lists models/*/model.onnx, split into 2-D and image models.
func shippedModels(t *testing.T) (twoD, images []string) {
	t.Helper()
	paths := shippedScoreModels(t)
	if len(paths) < 4 {
		t.Fatalf("found %d shipped models, want at least 4", len(paths))
	}
	for _, p := range paths {
		if isImageModel(t, p) {
			images = append(images, p)
		} else {
			twoD = append(twoD, p)
		}
	}
	if len(images) == 0 {
		t.Fatal("no shipped image model")
	}
	return twoD, images
}

// minInk is the least fraction of a picture's pixels that must differ
// from white for it to count as drawn (a blank figure with only a title
// and axes stays under 2%; every real plot here is well above).
const minInk = 0.03

// checkPicture decodes a PNG and checks it is at least w×h pixels and has
// ink on it.
func checkPicture(t *testing.T, path string, w, h int) image.Image {
	t.Helper()
	return checkInk(t, path, w, h, minInk)
}

func checkInk(t *testing.T, path string, w, h int, least float64) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < w || b.Dy() < h {
		t.Errorf("%s: %d×%d pixels, want at least %d×%d", path, b.Dx(), b.Dy(), w, h)
	}
	if ink := inkFraction(img); ink < least {
		t.Errorf("%s: %.1f%% of the pixels are not white; want at least %.1f%%", path, 100*ink, 100*least)
	}
	return img
}

// inkFraction is the share of pixels visibly darker than white.
func inkFraction(img image.Image) float64 {
	b := img.Bounds()
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0xf000 {
				ink++
			}
		}
	}
	return float64(ink) / float64(b.Dx()*b.Dy())
}

// colouredFraction is the share of clearly coloured (not grey) pixels.
func colouredFraction(img image.Image) float64 {
	b := img.Bounds()
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if max(r, g, bl)-min(r, g, bl) > 0x3000 {
				n++
			}
		}
	}
	return float64(n) / float64(b.Dx()*b.Dy())
}

func TestPlotFieldShippedModels(t *testing.T) {
	t.Parallel()
	twoD, images := shippedModels(t)
	dir := t.TempDir()
	for _, path := range twoD {
		name := filepath.Base(filepath.Dir(path))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(dir, name+".png")
			_, stderr, code := ebmrun(t, "plot", "field", path, "--sigma", "0.2", "-o", out, "--cells", "60", "--backend", "native")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			// Two or three square panels side by side under a title.
			img := checkPicture(t, out, 900, 400)
			if b := img.Bounds(); b.Dx() < 2*b.Dy() {
				t.Errorf("%d×%d: want the panels side by side", b.Dx(), b.Dy())
			}
			svg := filepath.Join(dir, name+".svg")
			if _, stderr, code := ebmrun(t, "plot", "field", path, "--sigma", "0.2", "-o", svg, "--cells", "30", "--backend", "native"); code != 0 {
				t.Fatalf("svg: exit %d: %s", code, stderr)
			}
			b, err := os.ReadFile(svg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("score at σ = 0.2")) || !bytes.Contains(b, []byte("</svg>")) {
				t.Errorf("%s is not a titled SVG: %.200s", svg, b)
			}
		})
	}
	for _, path := range images {
		out := filepath.Join(dir, "image.png")
		_, stderr, code := ebmrun(t, "plot", "field", path, "--sigma", "0.1", "-o", out, "--backend", "native")
		if code != 1 || !strings.Contains(stderr, "field draws 2-D models") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("field on an image model: exit %d, %q; want 1 and one line saying it draws 2-D models", code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a refused field left %s behind", out)
		}
	}
}

// fieldAgreement is the largest median relative error ‖s_θ − ∇log p_σ‖ /
// ‖∇log p_σ‖ allowed at points drawn from p_σ, where the model was trained:
// the shipped 8gaussians model measures 0.07, 0.09 and 0.17 at these levels.
const fieldAgreement = 0.25

// TestFieldExactAgrees: on the mixture toy, the learned field that field
// draws agrees with the exact one where the data are.
func TestFieldExactAgrees(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "models", "8gaussians", "model.onnx")
	lm, err := loadModel(path, importer.Overrides{}, "native", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	toy, err := dataset.Toy("8gaussians")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, sigma := range []float64{lm.spec.Sigmas[3], lm.spec.Sigmas[5], lm.spec.Sigmas[7]} {
		x := toy.Sample(nil, 500, r)
		for i := range x {
			x[i] += sigma * r.NormFloat64()
		}
		got, err := lm.scoresAt(float32s(x), sigma)
		if err != nil {
			t.Fatal(err)
		}
		want := toy.GMM.Score(nil, x, sigma)
		rel := make([]float64, len(x)/2)
		for i := range rel {
			rel[i] = math.Hypot(got[2*i]-want[2*i], got[2*i+1]-want[2*i+1]) / math.Hypot(want[2*i], want[2*i+1])
		}
		med := medianOf(rel)
		t.Logf("σ = %.3g: median relative error %.3f", sigma, med)
		if med > fieldAgreement {
			t.Errorf("σ = %.3g: median relative error of the learned score %.3f, want ≤ %.2f", sigma, med, fieldAgreement)
		}
	}
}

func medianOf(a []float64) float64 {
	b := append([]float64(nil), a...)
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j] < b[j-1]; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
	return b[len(b)/2]
}

func TestPlotAnnealShippedModels(t *testing.T) {
	t.Parallel()
	twoD, images := shippedModels(t)
	dir := t.TempDir()
	for _, path := range append(twoD, images...) {
		name := filepath.Base(filepath.Dir(path))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"-n", "200", "--steps", "5", "--backend", "native"}
			if isImageModel(t, path) {
				args = []string{"-n", "4", "--steps", "1", "--backend", "native"}
			}
			single := oneLevelEnergy(t, path)
			if single {
				// One σ level (a CD energy): its panel and the final
				// samples, one row; 12 steps give the GIF its 12 moments.
				args = []string{"-n", "200", "--steps", "12", "--backend", "native"}
			}
			out := filepath.Join(dir, name+".png")
			if _, stderr, code := ebmrun(t, append([]string{"plot", "anneal", path, "-o", out}, args...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			// The schedule's 10 levels and the final samples: 11 panels,
			// 4 to a row, so three rows.
			if single {
				checkPicture(t, out, 600, 300)
			} else if img := checkPicture(t, out, 800, 600); img.Bounds().Dy() < img.Bounds().Dx()/2 {
				b := img.Bounds()
				t.Errorf("%d×%d: want three rows of panels", b.Dx(), b.Dy())
			}
			anim := filepath.Join(dir, name+".gif")
			if _, stderr, code := ebmrun(t, append([]string{"plot", "anneal", path, "-o", anim, "--frames", "12"}, args...)...); code != 0 {
				t.Fatalf("gif: exit %d: %s", code, stderr)
			}
			f, err := os.Open(anim)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			g, err := gif.DecodeAll(f)
			if err != nil {
				t.Fatal(err)
			}
			// 12 moments of the run and the final samples.
			if len(g.Image) < 10 || len(g.Image) > 13 {
				t.Errorf("%d frames, want 10 … 13", len(g.Image))
			}
			if ink := inkFraction(g.Image[len(g.Image)-1]); ink < minInk {
				t.Errorf("the last frame is blank (%.1f%% ink)", 100*ink)
			}
		})
	}
}

func TestPlotTrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := testenv.Path(t, "models", "8gaussians", "model.onnx")
	samples := filepath.Join(dir, "s.npy")
	if _, stderr, code := ebmrun(t, "sample", path, "-n", "20", "-o", samples, "--steps", "20", "--trace", "4", "--backend", "native"); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	trace := filepath.Join(dir, "s.trace.csv")
	for _, extra := range [][]string{{"--exact", "toy:8gaussians"}, {"--exact", "toy:swissroll"}, nil} {
		out := filepath.Join(dir, "t.png")
		args := append([]string{"plot", "trace", trace, "-o", out, "--force"}, extra...)
		if _, stderr, code := ebmrun(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		if extra == nil {
			// Bare lines on white: less ink, but in the chains' colours.
			img := checkInk(t, out, 600, 600, 0.01)
			if c := colouredFraction(img); c < 0.001 {
				t.Errorf("no background: %.2f%% of the pixels are coloured; want the chains' lines", 100*c)
			}
			continue
		}
		checkPicture(t, out, 600, 600)
	}
	// A CSV that is not a trace, and a trace of images, are refused.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("x0,x1\n1,2\n"), 0o644)
	if _, stderr, code := ebmrun(t, "plot", "trace", bad, "-o", filepath.Join(dir, "b.png")); code != 1 || !strings.Contains(stderr, "not a trace") {
		t.Errorf("not a trace: exit %d, %q", code, stderr)
	}
	wide := filepath.Join(dir, "wide.trace.csv")
	os.WriteFile(wide, []byte("chain,step,level,sigma,x0,x1,x2\n0,1,1,1,0,0,0\n"), 0o644)
	if _, stderr, code := ebmrun(t, "plot", "trace", wide, "-o", filepath.Join(dir, "w.png")); code != 1 || !strings.Contains(stderr, "2-D chains") {
		t.Errorf("3-D trace: exit %d, %q", code, stderr)
	}
}

func TestPlotLossShippedLogs(t *testing.T) {
	t.Parallel()
	logs, _ := filepath.Glob(testenv.Path(t, "models", "*", "train.jsonl"))
	if len(logs) < 4 {
		t.Fatalf("found %d training logs, want at least 4", len(logs))
	}
	dir := t.TempDir()
	for _, log := range logs {
		name := filepath.Base(filepath.Dir(log))
		out := filepath.Join(dir, name+".png")
		_, stderr, code := ebmrun(t, "plot", "loss", log, "-o", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		checkPicture(t, out, 800, 400)
		svg := filepath.Join(dir, name+".svg")
		if _, stderr, code := ebmrun(t, "plot", "loss", log, "-o", svg); code != 0 {
			t.Fatalf("%s svg: exit %d: %s", name, code, stderr)
		}
		b, _ := os.ReadFile(svg)
		// The levels are named by the σ of the model beside the log.
		want := "σ = 0.01"
		if oneLevelEnergy(t, filepath.Join(filepath.Dir(log), "model.onnx")) {
			want = "σ = 1" // contrastive divergence trains at the one σ = 1
		}
		if !bytes.Contains(b, []byte(want)) || !bytes.Contains(b, []byte("all levels")) {
			t.Errorf("%s: the legend lacks the σ levels or the total", svg)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"step\":1,\"loss\":2}\nnot json\n"), 0o644)
	if _, stderr, code := ebmrun(t, "plot", "loss", bad, "-o", filepath.Join(dir, "b.png")); code != 1 || !strings.Contains(stderr, "line 2") {
		t.Errorf("a broken log: exit %d, %q; want 1 naming line 2", code, stderr)
	}
}

func TestPlotUsage(t *testing.T) {
	t.Parallel()
	model := testenv.Path(t, "models", "8gaussians", "model.onnx")
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists.png")
	os.WriteFile(exists, []byte("keep"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"plot", "field", model, "--sigma", "0.1"}, 2, "-o OUT is required"},
		{[]string{"plot", "field", model, "--sigma", "0.1", "-o", "x.jpg"}, 2, "want a .png or .svg file"},
		{[]string{"plot", "field", model, "-o", filepath.Join(dir, "f.png")}, 2, "--sigma S is required"},
		{[]string{"plot", "field", model, "--sigma", "-1", "-o", filepath.Join(dir, "f.png")}, 2, "positive noise level"},
		{[]string{"plot", "field", model, "--sigma", "0.1", "--exact", "gmm", "-o", filepath.Join(dir, "f.png")}, 2, "want toy:NAME"},
		{[]string{"plot", "field", model, "--sigma", "0.1", "--box", "3,1", "-o", filepath.Join(dir, "f.png")}, 2, "lo < hi"},
		{[]string{"plot", "field", model, "--sigma", "0.1", "-o", exists}, 1, "exists; use --force"},
		{[]string{"plot", "anneal", model, "-o", filepath.Join(dir, "a.gif"), "--frames", "0"}, 2, "must be positive"},
		{[]string{"plot", "loss", filepath.Join(dir, "missing.jsonl"), "-o", filepath.Join(dir, "l.png")}, 1, "no such file"},
	} {
		_, stderr, code := ebmrun(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || !strings.HasPrefix(stderr, "ebmrun: ") {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args[1:], code, stderr, tc.code, tc.msg)
		}
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep" {
		t.Error("an existing output was overwritten without --force")
	}
}

func TestPlotDensity(t *testing.T) {
	t.Parallel()
	twoD, images := shippedModels(t)
	dir := t.TempDir()
	for _, path := range twoD {
		if filepath.Base(filepath.Dir(path)) != "8gaussians" {
			continue
		}
		out := filepath.Join(dir, "d.png")
		if _, stderr, code := ebmrun(t, "plot", "density", path, "-o", out, "--cells", "16", "--steps", "20", "--backend", "native"); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		// The log-density with its colour bar beside the data's dots.
		img := checkPicture(t, out, 900, 400)
		if b := img.Bounds(); b.Dx() < 2*b.Dy() {
			t.Errorf("%d×%d: want two panels side by side", b.Dx(), b.Dy())
		}
	}
	out := filepath.Join(dir, "image.png")
	if _, stderr, code := ebmrun(t, "plot", "density", images[0], "-o", out); code != 1 || !strings.Contains(stderr, "density draws 2-D models") {
		t.Errorf("density on an image model: exit %d, %q", code, stderr)
	}
}
