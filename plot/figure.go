package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"path/filepath"
	"strings"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Format is an output format of a picture.
type Format string

// Formats, named by their file extensions.
const (
	PNG Format = "png"
	SVG Format = "svg"
	GIF Format = "gif" // animations only (WriteGIF)
)

// FormatOf picks the format from a file name's extension.
func FormatOf(path string) (Format, error) {
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), ".")); ext {
	case "png":
		return PNG, nil
	case "svg":
		return SVG, nil
	case "gif":
		return GIF, nil
	default:
		return "", fmt.Errorf("plot: %s: want a .png, .svg or .gif file", path)
	}
}

// The colours every picture uses for the same things.
var (
	// Model is the learned score and the model's samples.
	Model = color.NRGBA{R: 31, G: 78, B: 156, A: 255}
	// Data is the data and the exact score.
	Data = color.NRGBA{R: 214, G: 96, B: 12, A: 255}
	// Ink is text, totals and outlines.
	Ink = color.NRGBA{R: 30, G: 30, B: 30, A: 255}
)

// DPI is the resolution of PNG output: a 4-inch panel is 480 pixels.
const DPI = 120

// DefaultPanelSize is the side of a square panel.
const DefaultPanelSize = 4 * vg.Inch

// colorBarWidth is the room a panel's colour bar takes to its right; the
// bar with its ticks and label fills colorBarDrawn of it, the rest keeps it
// off the next panel.
const (
	colorBarWidth = 1.25 * vg.Inch
	colorBarDrawn = 1.05 * vg.Inch
)

// titleHeight is the room the figure's title takes above the panels.
const titleHeight = 0.5 * vg.Inch

// Panel is one plot of a figure, with an optional colour bar beside it.
type Panel struct {
	Plot     *gplot.Plot
	ColorBar *gplot.Plot
	// Width is the panel's width without its colour bar (default: the
	// figure's PanelSize).
	Width vg.Length
}

// Figure is a title over panels laid out in rows.
type Figure struct {
	// Title names what is shown: the model, the sampler, σ.
	Title  string
	Panels []Panel
	// Cols is the number of panels per row (default: all in one row).
	Cols int
	// PanelSize is the height of a row and the default panel width
	// (default DefaultPanelSize).
	PanelSize vg.Length
}

func (f *Figure) layout() (cols, rows int, colW []vg.Length, size vg.Length) {
	n := len(f.Panels)
	cols = f.Cols
	if cols <= 0 || cols > n {
		cols = max(n, 1)
	}
	rows = (n + cols - 1) / cols
	size = f.PanelSize
	if size <= 0 {
		size = DefaultPanelSize
	}
	colW = make([]vg.Length, cols)
	for i, p := range f.Panels {
		w := p.Width
		if w <= 0 {
			w = size
		}
		if p.ColorBar != nil {
			w += colorBarWidth
		}
		colW[i%cols] = max(colW[i%cols], w)
	}
	return cols, rows, colW, size
}

// Size is the figure's width and height.
func (f *Figure) Size() (w, h vg.Length) {
	_, rows, colW, size := f.layout()
	for _, cw := range colW {
		w += cw
	}
	h = vg.Length(rows) * size
	if f.Title != "" {
		h += titleHeight
	}
	return w, h
}

// Draw draws the figure on c, whose size should be Size.
func (f *Figure) Draw(c draw.Canvas) {
	cols, _, colW, size := f.layout()
	// An opaque background: transparent PNGs look broken on dark viewers.
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	top := c.Max.Y
	if f.Title != "" {
		sty := draw.TextStyle{Color: Ink, Font: font.From(gplot.DefaultFont, 15), Handler: gplot.DefaultTextHandler,
			XAlign: draw.XCenter, YAlign: draw.YCenter}
		c.FillText(sty, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: top - titleHeight/2}, f.Title)
		top -= titleHeight
	}
	for i, p := range f.Panels {
		r, k := i/cols, i%cols
		x := c.Min.X
		for j := 0; j < k; j++ {
			x += colW[j]
		}
		y1 := top - vg.Length(r)*size
		w := p.Width
		if w <= 0 {
			w = size
		}
		if p.Plot != nil {
			p.Plot.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: x, Y: y1 - size}, Max: vg.Point{X: x + w, Y: y1}}})
		}
		if p.ColorBar != nil {
			// The bar spans the data area of its panel, not the title.
			p.ColorBar.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x + w, Y: y1 - size + 0.05*size},
				Max: vg.Point{X: x + w + colorBarDrawn, Y: y1 - 0.1*size}}})
		}
	}
}

// Write draws the figure as PNG or SVG.
func (f *Figure) Write(w io.Writer, format Format) error {
	if len(f.Panels) == 0 {
		return fmt.Errorf("plot: a figure with no panels")
	}
	width, height := f.Size()
	switch format {
	case PNG:
		img := f.Image()
		return png.Encode(w, img)
	case SVG:
		cv := vgsvg.New(width, height)
		f.Draw(draw.New(cv))
		_, err := cv.WriteTo(w)
		return err
	default:
		return fmt.Errorf("plot: a figure is written as png or svg, not %q", format)
	}
}

// Image renders the figure at DPI.
func (f *Figure) Image() image.Image {
	width, height := f.Size()
	cv := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(DPI))
	f.Draw(draw.New(cv))
	return cv.Image()
}

// newPlot is a plot with the house style: a title, labelled axes, a light
// grid behind the data.
func newPlot(title, xLabel, yLabel string) *gplot.Plot {
	p := gplot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.Title.Padding = 0.08 * vg.Inch
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.X.Label.TextStyle.Font.Size = 11
	p.Y.Label.TextStyle.Font.Size = 11
	return p
}

// Box is a rectangle of the plane: [X0, X1] × [Y0, Y1].
type Box struct{ X0, X1, Y0, Y1 float64 }

// SquareBox is [lo, hi]².
func SquareBox(lo, hi float64) Box { return Box{lo, hi, lo, hi} }

// pad widens b by a fraction of its size on every side.
func (b Box) pad(frac float64) Box {
	dx, dy := frac*(b.X1-b.X0), frac*(b.Y1-b.Y0)
	return Box{b.X0 - dx, b.X1 + dx, b.Y0 - dy, b.Y1 + dy}
}

// DataBox is the box of the finite 2-D points x (pairs), widened by 5%; a
// degenerate coordinate gets ±1.
func DataBox(x []float32) Box {
	var lo, hi [2]float64
	for j := range 2 {
		lo[j], hi[j] = math.Inf(1), math.Inf(-1)
		for i := j; i < len(x); i += 2 {
			v := float64(x[i])
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo[j], hi[j] = min(lo[j], v), max(hi[j], v)
			}
		}
		if math.IsInf(lo[j], 0) {
			lo[j], hi[j] = 0, 0
		}
		if !(hi[j] > lo[j]) {
			lo[j], hi[j] = lo[j]-1, hi[j]+1
		}
	}
	return Box{lo[0], hi[0], lo[1], hi[1]}.pad(0.05)
}

// axisLimit bounds the axes: gonum/plot's tick search never ends on a range
// whose width overflows float64 (a box of ±1e308, from a flag or from a
// model's data range).
const axisLimit = 1e300

func (b Box) apply(p *gplot.Plot) {
	c := func(v float64) float64 { return max(-axisLimit, min(axisLimit, v)) }
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = c(b.X0), c(b.X1), c(b.Y0), c(b.Y1)
}

// Coordinate axis labels: the data have no physical unit, so the unit is
// the data's own.
const (
	XLabel = "x₀ (data units)"
	YLabel = "x₁ (data units)"
)
