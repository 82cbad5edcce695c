package plot

import (
	"fmt"
	"image/color"
	"math"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
)

// Grid is a regular grid of cell centres over a box: column c is at
// X0 + (c+½)·(X1−X0)/Cols, row r at Y0 + (r+½)·(Y1−Y0)/Rows. Values on a
// grid are stored row by row, r·Cols + c, the order XYs lists the points in.
type Grid struct {
	Box
	Cols, Rows int
}

// Square is an n×n grid over [lo, hi]².
func Square(lo, hi float64, n int) Grid { return Grid{Box: SquareBox(lo, hi), Cols: n, Rows: n} }

// Len is the number of points.
func (g Grid) Len() int { return g.Cols * g.Rows }

// X is column c's centre.
func (g Grid) X(c int) float64 { return g.X0 + (float64(c)+0.5)*(g.X1-g.X0)/float64(g.Cols) }

// Y is row r's centre.
func (g Grid) Y(r int) float64 { return g.Y0 + (float64(r)+0.5)*(g.Y1-g.Y0)/float64(g.Rows) }

// XYs lists the points, row by row.
func (g Grid) XYs() plotter.XYs {
	out := make(plotter.XYs, 0, g.Len())
	for r := range g.Rows {
		for c := range g.Cols {
			out = append(out, plotter.XY{X: g.X(c), Y: g.Y(r)})
		}
	}
	return out
}

// Points lists the points as float32 pairs, the layout of a batch of 2-D
// samples a model takes.
func (g Grid) Points() []float32 {
	out := make([]float32, 0, 2*g.Len())
	for _, p := range g.XYs() {
		out = append(out, float32(p.X), float32(p.Y))
	}
	return out
}

// gridZ adapts values on a grid to gonum's GridXYZ.
type gridZ struct {
	g Grid
	z []float64
}

func (h gridZ) Dims() (int, int)   { return h.g.Cols, h.g.Rows }
func (h gridZ) Z(c, r int) float64 { return h.z[r*h.g.Cols+c] }
func (h gridZ) X(c int) float64    { return h.g.X(c) }
func (h gridZ) Y(r int) float64    { return h.g.Y(r) }

// ErrorMap is the scale of magnitudes and errors: white (0) through yellow
// and red to black (largest).
func ErrorMap() palette.ColorMap { return palette.Reverse(moreland.BlackBody()) }

// DensityMap is the pale scale drawn under arrows and trajectories: white
// (least likely) to grey-blue (most likely).
func DensityMap() palette.ColorMap {
	m, err := moreland.NewLuminance([]color.Color{
		color.NRGBA{R: 110, G: 125, B: 160, A: 255},
		color.NRGBA{R: 255, G: 255, B: 255, A: 255},
	})
	if err != nil {
		panic(err) // fixed controls of increasing luminance: cannot fail
	}
	return palette.Reverse(m)
}

// HeatOptions say how HeatMap colours its values.
type HeatOptions struct {
	// Map is the colour scale (default ErrorMap).
	Map palette.ColorMap
	// Min and Max bound the scale; both zero means the finite values' range.
	Min, Max float64
	// Label names the values and their unit, beside the colour bar.
	Label string
	// NoColorBar leaves the colour bar out (for backgrounds).
	NoColorBar bool
}

// heatColors is the number of steps a heat map's scale is drawn with.
const heatColors = 128

// finiteRange is the range of the finite values of z; 0, 1 when none.
func finiteRange(z []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range z {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	return lo, hi
}

// heatLayer is the heat map plotter of z on g, and the scale it used.
func heatLayer(g Grid, z []float64, o HeatOptions) (*plotter.HeatMap, palette.ColorMap) {
	if len(z) != g.Len() {
		panic(fmt.Sprintf("plot: %d values for a %d×%d grid", len(z), g.Cols, g.Rows))
	}
	cm := o.Map
	if cm == nil {
		cm = ErrorMap()
	}
	lo, hi := o.Min, o.Max
	if lo == 0 && hi == 0 {
		lo, hi = finiteRange(z)
	}
	cm.SetMin(lo)
	cm.SetMax(hi)
	h := plotter.NewHeatMap(gridZ{g, z}, cm.Palette(heatColors))
	h.Min, h.Max = lo, hi
	// Values outside the scale take its end colours rather than vanishing;
	// NaN (no value) stays transparent.
	cols := cm.Palette(heatColors).Colors()
	h.Underflow, h.Overflow = cols[0], cols[len(cols)-1]
	h.Rasterized = true
	return h, cm
}

// HeatMap draws the values z on the grid g (one per point, row by row; NaN
// is left blank) with a colour bar, titled title, axes in data units. This
// is the picture of any scalar function of a 2-D point: an error, a
// magnitude, a log-density.
func HeatMap(title string, g Grid, z []float64, o HeatOptions) Panel {
	p := newPlot(title, XLabel, YLabel)
	h, cm := heatLayer(g, z, o)
	p.Add(h)
	g.Box.apply(p)
	panel := Panel{Plot: p}
	if !o.NoColorBar {
		panel.ColorBar = colorBar(cm, o.Label)
	}
	return panel
}

// colorBar is a vertical colour bar of cm labelled label.
func colorBar(cm palette.ColorMap, label string) *gplot.Plot {
	p := gplot.New()
	cb := &plotter.ColorBar{ColorMap: cm, Vertical: true, Colors: heatColors}
	p.Add(cb)
	p.HideX()
	p.X.Padding = 0
	p.Y.Label.Text = label
	p.Y.Label.TextStyle.Font.Size = 10
	p.Y.Padding = 0
	p.Title.Padding = 0
	return p
}

// LogDensityMap is the scale of a log-density drawn on its own: Kindlmann's
// black → purple → green → yellow → white, brightest where most likely.
func LogDensityMap() palette.ColorMap { return moreland.Kindlmann() }

// LogDensityRange is how many nats below its peak a log-density map shows:
// lower values share the darkest colour, so the shape of the modes stays
// visible rather than the far tails'.
const LogDensityRange = 12

// LogDensityFigure draws log p on the grid g (one value per point, row by
// row), on LogDensityMap, beside the data (2-D points; nil for none) over
// the same box, drawn as Scatter draws them in Data orange. title names the model; heatTitle says
// which density ("log p_σ at σ = 0.01").
func LogDensityFigure(title, heatTitle string, g Grid, logp []float64, data []float32) *Figure {
	top := maxFinite(logp)
	fig := &Figure{Title: title, Panels: []Panel{HeatMap(heatTitle, g, logp, HeatOptions{
		Map: LogDensityMap(), Min: top - LogDensityRange, Max: top, Label: "log p (nats)"})}}
	if len(data) >= 2 {
		p := Scatter(fmt.Sprintf("data (%s points)", formatCount(len(data)/2)), data, g.Box, Data)
		fig.Panels = append(fig.Panels, Panel{Plot: p})
	}
	return fig
}
