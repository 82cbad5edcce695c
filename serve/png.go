package serve

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

func runtimeOptions(o Options) runtime.Options { return runtime.Options{Threads: o.Threads} }

// canPlot says whether samples of the model can be drawn: 2-D points, or
// images [C,H,W] with 1 or 3 channels.
func canPlot(spec *importer.ModelSpec) error {
	s := spec.DataShape
	switch {
	case len(s) == 1 && s[0] == 2:
		return nil
	case len(s) == 3 && (s[0] == 1 || s[0] == 3):
		return nil
	}
	return fmt.Errorf("image/png: samples of shape %v are neither 2-D points nor images [C,H,W]", s)
}

// writePNG draws 2-D samples as a density image (darker: more points) or
// the first 100 image samples as a grid.
func writePNG(w io.Writer, x []float32, spec *importer.ModelSpec) error {
	s := spec.DataShape
	if len(s) == 1 {
		return png.Encode(w, pointsImage(x, 512))
	}
	return png.Encode(w, imageGrid(x, int(s[0]), int(s[1]), int(s[2]), spec.DataRange))
}

func pointsImage(x []float32, size int) image.Image {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		lo, hi = min(lo, float64(v)), max(hi, float64(v))
	}
	if !(hi > lo) {
		lo, hi = lo-1, lo+1
	}
	pad := (hi - lo) * 0.05
	lo, hi = lo-pad, hi+pad
	counts := make([]int, size*size)
	peak := 1
	for i := 0; i+1 < len(x); i += 2 {
		c := int((float64(x[i]) - lo) / (hi - lo) * float64(size))
		r := size - 1 - int((float64(x[i+1])-lo)/(hi-lo)*float64(size))
		if c >= 0 && c < size && r >= 0 && r < size {
			counts[r*size+c]++
			peak = max(peak, counts[r*size+c])
		}
	}
	img := image.NewGray(image.Rect(0, 0, size, size))
	for i, n := range counts {
		v := 255.0
		if n > 0 {
			v = 200 * (1 - math.Log1p(float64(n))/math.Log1p(float64(peak)))
		}
		img.Pix[i] = uint8(v)
	}
	return img
}

func imageGrid(x []float32, ch, h, wd int, rng []float64) image.Image {
	per := ch * h * wd
	n := min(100, len(x)/per)
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	lo, hi := 0.0, 1.0
	if len(rng) == 2 {
		lo, hi = rng[0], rng[1]
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*(wd+1)+1, rows*(h+1)+1))
	level := func(v float32) uint8 {
		t := (float64(v) - lo) / (hi - lo)
		return uint8(255 * min(1, max(0, t)))
	}
	for k := range n {
		ox, oy := 1+(k%cols)*(wd+1), 1+(k/cols)*(h+1)
		s := x[k*per : (k+1)*per]
		for r := range h {
			for c := range wd {
				var col color.RGBA
				if ch == 1 {
					g := level(s[r*wd+c])
					col = color.RGBA{g, g, g, 255}
				} else {
					col = color.RGBA{level(s[r*wd+c]), level(s[h*wd+r*wd+c]), level(s[2*h*wd+r*wd+c]), 255}
				}
				img.SetRGBA(ox+c, oy+r, col)
			}
		}
	}
	return img
}
