package main

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// chromium finds Debian's headless-capable Chromium: a missing browser
// fails the test under CI=true and skips it elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed; run scripts/install-test-deps.sh (Debian package chromium)")
	return ""
}

// runChromium runs the browser headless on a local file with everything
// that would reach the network or a desktop switched off.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// imagesLoaded is a script that writes, once the page has loaded, each
// image's natural width into the body's data-widths attribute, for
// --dump-dom to show.
const imagesLoaded = `<script>
window.addEventListener("load", function () {
  var w = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    w.push(im.complete ? im.naturalWidth : -1);
  }
  document.body.setAttribute("data-widths", w.join(","));
});
</script>`

var widthsAttr = regexp.MustCompile(`data-widths="([0-9,\-]*)"`)

// TestReportRendersInChromium writes the report of a 2-D and of the image
// model and renders each in headless Chromium: the page is self-contained
// (no address outside it), every image decodes, and the screenshot is not
// blank.
func TestReportRendersInChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	fashion := "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
	for _, tc := range []struct {
		name    string
		args    []string
		figures int
	}{
		// Samples, annealing, two score fields, training.
		{"8gaussians", []string{"-n", "300", "--steps", "20"}, 5},
		// Samples, annealing, training.
		{"fashion_mnist", []string{"-n", "4", "--steps", "1", "--data", fashion, "--eval-n", "8"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "fashion_mnist" {
				testenv.Require(t, fashion, "apt-get install dataset-fashion-mnist")
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "report.html")
			model := testenv.Path(t, "models", tc.name, "model.onnx")
			args := append([]string{"report", model, "-o", out, "--backend", "native"}, tc.args...)
			if _, stderr, code := ebmrun(t, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			page, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			html := string(page)
			if n := strings.Count(html, `src="data:image/png;base64,`); n != tc.figures {
				t.Errorf("%d inlined figures, want %d", n, tc.figures)
			}
			for _, ref := range []string{"http://", "https://", `src="file:`, "<link"} {
				if strings.Contains(html, ref) {
					t.Errorf("the page refers outside itself (%q)", ref)
				}
			}
			// SSM at each of the model's σ levels, and the three sample metrics.
			mod, err := importer.Load(model)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := importer.Spec(mod, importer.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(html, "<tr><td>"); n != len(spec.Sigmas) || n < 2 {
				t.Errorf("%d SSM rows, want one per σ level (%d)", n, len(spec.Sigmas))
			}
			for _, want := range []string{"MMD²", "energy distance", "sliced Wasserstein-1", "score-model roles", "Provenance", "dsm"} {
				if !strings.Contains(html, want) {
					t.Errorf("the page lacks %q", want)
				}
			}

			shot := filepath.Join(dir, "shot.png")
			runChromium(t, bin, "--window-size=1300,2400", "--screenshot="+shot, "file://"+out)
			f, err := os.Open(shot)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatalf("the screenshot: %v", err)
			}
			ink := inkFraction(img)
			var sum, sq float64
			b := img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r, g, bl, _ := img.At(x, y).RGBA()
					v := float64(r+g+bl) / (3 * 0xffff)
					sum += v
					sq += v * v
				}
			}
			n := float64(b.Dx() * b.Dy())
			sd := math.Sqrt(sq/n - (sum/n)*(sum/n))
			t.Logf("screenshot %d×%d: %.1f%% ink, luminance sd %.3f", b.Dx(), b.Dy(), 100*ink, sd)
			// A page of text alone has a few per cent of ink; the figures
			// bring it well past that.
			if ink < 0.08 || sd < 0.1 {
				t.Errorf("the screenshot looks blank: %.1f%% ink, luminance sd %.3f", 100*ink, sd)
			}

			check := filepath.Join(dir, "check.html")
			if err := os.WriteFile(check, []byte(strings.Replace(html, "</body>", imagesLoaded+"</body>", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			dom := runChromium(t, bin, "--virtual-time-budget=10000", "--dump-dom", "file://"+check)
			m := widthsAttr.FindSubmatch(dom)
			if m == nil {
				t.Fatalf("the page's load handler did not run; DOM: %.300s", dom)
			}
			widths := strings.Split(string(m[1]), ",")
			if len(widths) != tc.figures {
				t.Errorf("%d images in the DOM, want %d", len(widths), tc.figures)
			}
			for i, w := range widths {
				if v, err := strconv.Atoi(w); err != nil || v < 300 {
					t.Errorf("image %d: natural width %s, want a decoded picture (≥ 300 pixels)", i, w)
				}
			}
		})
	}
}
