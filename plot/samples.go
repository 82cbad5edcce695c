package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ErrShape is returned for samples that are neither 2-D points nor images.
var ErrShape = errors.New("plot: pictures need 2-D samples or images shaped [C,H,W] (C = 1 or 3) or [H,W]")

// ScatterMax is the most points drawn one by one; more become a 2-D
// histogram, which stays readable.
const ScatterMax = 20000

// histBins is the number of histogram bins along each axis.
const histBins = 200

// scatterLayer is the points of x (pairs) as small translucent dots.
func scatterLayer(x []float32, col color.Color) *plotter.Scatter {
	n := len(x) / 2
	xy := make(plotter.XYs, n)
	for i := range xy {
		xy[i].X, xy[i].Y = float64(x[2*i]), float64(x[2*i+1])
	}
	s, _ := plotter.NewScatter(xy) // cannot fail: the values are copied as they are
	s.GlyphStyle.Radius = vg.Points(1)
	if n < 2000 {
		s.GlyphStyle.Radius = vg.Points(1.6)
	}
	s.GlyphStyle.Shape = draw.CircleGlyph{}
	r, g, b, _ := col.RGBA()
	s.GlyphStyle.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 110}
	return s
}

// Scatter draws 2-D points x (pairs) in col over box: one dot a point, or
// past ScatterMax points a 2-D histogram of log counts.
func Scatter(title string, x []float32, box Box, col color.Color) *gplot.Plot {
	p := newPlot(title, XLabel, YLabel)
	AddPoints(p, x, box, col)
	box.apply(p)
	return p
}

// AddPoints adds 2-D points to p as Scatter draws them (a histogram past
// ScatterMax points, counted over box).
func AddPoints(p *gplot.Plot, x []float32, box Box, col color.Color) {
	if len(x)/2 <= ScatterMax {
		p.Add(scatterLayer(x, col))
		return
	}
	g := Grid{Box: box, Cols: histBins, Rows: histBins}
	h, _ := heatLayer(g, hist2D(x, g), HeatOptions{Map: ErrorMap()})
	p.Add(h)
}

// hist2D counts the points in each cell of g and returns log(1+count),
// NaN for empty cells so empty space stays white.
func hist2D(x []float32, g Grid) []float64 {
	z := make([]float64, g.Len())
	dx, dy := (g.X1-g.X0)/float64(g.Cols), (g.Y1-g.Y0)/float64(g.Rows)
	for i := 0; i+1 < len(x); i += 2 {
		c := int(math.Floor((float64(x[i]) - g.X0) / dx))
		r := int(math.Floor((float64(x[i+1]) - g.Y0) / dy))
		if c >= 0 && c < g.Cols && r >= 0 && r < g.Rows {
			z[r*g.Cols+c]++
		}
	}
	for i, v := range z {
		z[i] = math.Log1p(v)
		if v == 0 {
			z[i] = math.NaN()
		}
	}
	return z
}

// ImageShape reads a sample shape as images: channels, height, width; ok is
// false for shapes that are not [C,H,W] with C = 1 or 3, or [H,W].
func ImageShape(shape []int64) (ch, h, w int, ok bool) {
	switch {
	case len(shape) == 2 && shape[0] > 0 && shape[1] > 0:
		return 1, int(shape[0]), int(shape[1]), true
	case len(shape) == 3 && (shape[0] == 1 || shape[0] == 3) && shape[1] > 0 && shape[2] > 0:
		return int(shape[0]), int(shape[1]), int(shape[2]), true
	}
	return 0, 0, 0, false
}

// Is2D reports whether samples of this shape are points of the plane.
func Is2D(shape []int64) bool { return len(shape) == 1 && shape[0] == 2 }

// WriteSamples writes a PNG of samples x of one sample's shape: 2-D points
// as a scatter plot titled title, images [C,H,W] as a bare grid of the first
// GridMax (rng, the data range, maps to black … white; nil: the samples'
// own range).
func WriteSamples(w io.Writer, x []float32, shape []int64, rng []float64, title string) error {
	if Is2D(shape) {
		fig := &Figure{Panels: []Panel{{Plot: Scatter(title, x, DataBox(x), Model)}}, PanelSize: 6 * vg.Inch}
		return fig.Write(w, PNG)
	}
	ch, h, wd, ok := ImageShape(shape)
	if !ok {
		return ErrShape
	}
	return png.Encode(w, ImageGrid(x, ch, h, wd, rng, GridMax))
}

// GridMax is the most images a grid shows by default.
const GridMax = 100

// gridMinTile is the smallest size, in screen pixels, of one image in a
// grid: small images (8×8, 28×28) are enlarged by a whole factor to reach it.
const gridMinTile = 64

// ImageGrid tiles the first (at most limit) images [C,H,W] of x into a
// square grid with a one pixel gap, mapping the range rng (else the
// samples' own) to 0 … 255. Each pixel becomes a square block so small
// images stay visible.
func ImageGrid(x []float32, ch, hgt, wid int, rng []float64, limit int) *image.NRGBA {
	per := ch * hgt * wid
	n := min(len(x)/per, limit)
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / max(cols, 1)
	lo, hi := 0.0, 1.0
	if len(rng) == 2 {
		lo, hi = rng[0], rng[1]
	} else if n > 0 {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, v := range x[:n*per] {
			lo, hi = min(lo, float64(v)), max(hi, float64(v))
		}
		if !(hi > lo) {
			hi = lo + 1
		}
	}
	zoom := max(1, (gridMinTile+max(hgt, wid)-1)/max(hgt, wid))
	th, tw := hgt*zoom, wid*zoom
	img := image.NewNRGBA(image.Rect(0, 0, cols*(tw+1)+1, rows*(th+1)+1))
	level := func(v float32) uint8 {
		t := (float64(v) - lo) / (hi - lo)
		return uint8(math.Round(255 * min(1, max(0, t))))
	}
	for k := 0; k < n; k++ {
		ox, oy := 1+(k%cols)*(tw+1), 1+(k/cols)*(th+1)
		im := x[k*per : (k+1)*per]
		for yy := 0; yy < hgt; yy++ {
			for xx := 0; xx < wid; xx++ {
				var c color.NRGBA
				if ch == 1 {
					g := level(im[yy*wid+xx])
					c = color.NRGBA{g, g, g, 255}
				} else {
					c = color.NRGBA{level(im[yy*wid+xx]), level(im[hgt*wid+yy*wid+xx]), level(im[2*hgt*wid+yy*wid+xx]), 255}
				}
				for dy := 0; dy < zoom; dy++ {
					for dx := 0; dx < zoom; dx++ {
						img.SetNRGBA(ox+xx*zoom+dx, oy+yy*zoom+dy, c)
					}
				}
			}
		}
	}
	return img
}

// ImagePanel shows an image (an ImageGrid, say) under a title, without axes.
func ImagePanel(title string, img image.Image) Panel {
	p := newPlot(title, "", "")
	b := img.Bounds()
	w, h := float64(b.Dx()), float64(b.Dy())
	p.Add(plotter.NewImage(img, 0, 0, w, h))
	p.HideAxes()
	// Keep the image's aspect: the longer side fills the panel.
	s := max(w, h)
	p.X.Min, p.X.Max = (w-s)/2, (w+s)/2
	p.Y.Min, p.Y.Max = (h-s)/2, (h+s)/2
	return Panel{Plot: p}
}

// SamplesPanel is the panel of samples x of one sample's shape: a scatter
// plot over box of 2-D points, or a grid of the first limit images.
func SamplesPanel(title string, x []float32, shape []int64, rng []float64, box Box, limit int) (Panel, error) {
	if Is2D(shape) {
		return Panel{Plot: Scatter(title, x, box, Model)}, nil
	}
	ch, h, w, ok := ImageShape(shape)
	if !ok {
		return Panel{}, ErrShape
	}
	return ImagePanel(title, ImageGrid(x, ch, h, w, rng, limit)), nil
}

// formatCount writes n with thin-space thousands separators: 10 000.
func formatCount(n int) string {
	s := fmt.Sprint(n)
	if n < 10000 {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}
