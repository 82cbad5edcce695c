package plot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Arrows draws a vector field on a grid: one arrow per point, pointing
// along the vector. Scores span orders of magnitude (|s| grows like
// distance/σ² away from the data), so lengths are clipped: a vector of
// magnitude Ref or more is drawn 0.9 of a cell long, shorter ones in
// proportion. Two fields drawn with the same Ref compare directly.
type Arrows struct {
	Grid Grid
	// V holds the vectors, two values per grid point, row by row.
	V     []float64
	Ref   float64
	Color color.Color
	Width vg.Length
}

// Plot implements gonum's plot.Plotter.
func (a *Arrows) Plot(c draw.Canvas, plt *gplot.Plot) {
	trX, trY := plt.Transforms(&c)
	cellX := (a.Grid.X1 - a.Grid.X0) / float64(a.Grid.Cols)
	cellY := (a.Grid.Y1 - a.Grid.Y0) / float64(a.Grid.Rows)
	cell := 0.9 * min(cellX, cellY)
	sty := draw.LineStyle{Color: a.Color, Width: a.Width}
	for r := range a.Grid.Rows {
		for k := range a.Grid.Cols {
			i := r*a.Grid.Cols + k
			u, v := a.V[2*i], a.V[2*i+1]
			m := math.Hypot(u, v)
			if !(m > 0) || math.IsInf(m, 0) {
				continue
			}
			l := cell * min(m, a.Ref) / a.Ref
			x0, y0 := a.Grid.X(k), a.Grid.Y(r)
			// The arrow is centred on its grid point.
			tail := vg.Point{X: trX(x0 - 0.5*l*u/m), Y: trY(y0 - 0.5*l*v/m)}
			tip := vg.Point{X: trX(x0 + 0.5*l*u/m), Y: trY(y0 + 0.5*l*v/m)}
			c.StrokeLine2(sty, tail.X, tail.Y, tip.X, tip.Y)
			// The head in screen space, so it keeps its shape on any aspect.
			dx, dy := float64(tip.X-tail.X), float64(tip.Y-tail.Y)
			sl := math.Hypot(dx, dy)
			if sl < 1 {
				continue
			}
			h := min(0.35*sl, float64(vg.Points(4)))
			for _, turn := range []float64{0.45, -0.45} {
				ang := math.Atan2(dy, dx) + math.Pi + turn
				c.StrokeLine2(sty, tip.X, tip.Y, tip.X+vg.Length(h*math.Cos(ang)), tip.Y+vg.Length(h*math.Sin(ang)))
			}
		}
	}
}

// DataRange implements gonum's plot.DataRanger.
func (a *Arrows) DataRange() (xmin, xmax, ymin, ymax float64) {
	return a.Grid.X0, a.Grid.X1, a.Grid.Y0, a.Grid.Y1
}

// magnitudes lists |v| of the finite vectors of v (pairs).
func magnitudes(v []float64) []float64 {
	out := make([]float64, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		if m := math.Hypot(v[i], v[i+1]); !math.IsNaN(m) && !math.IsInf(m, 0) {
			out = append(out, m)
		}
	}
	return out
}

// quantile is the q-quantile of a (sorted in place); 0 for none.
func quantile(a []float64, q float64) float64 {
	if len(a) == 0 {
		return 0
	}
	sort.Float64s(a)
	return a[min(len(a)-1, int(q*float64(len(a))))]
}

// ScoreField is what the picture of a 2-D model's score at one σ shows:
// the learned field as arrows, the exact field beside it when the data's
// score is known, and a heat map of how far apart they are.
type ScoreField struct {
	// Title says which model, and at which σ.
	Title string
	Sigma float64
	// Arrows is the coarse grid the arrows are drawn on; Learned and Exact
	// are the scores there (pairs, row by row; Exact nil when unknown).
	Arrows         Grid
	Learned, Exact []float64
	// Fine is the grid of the heat maps. LearnedFine and ExactFine are the
	// scores there; LogDensity is log p_σ (exact, or of a data sample
	// convolved with N(0, σ²I)), drawn under the arrows; nil when unknown.
	Fine                   Grid
	LearnedFine, ExactFine []float64
	LogDensity             []float64
	// DensityNote says where LogDensity comes from, for the heat map's
	// title when the exact score is unknown ("p_σ of 2 000 data points").
	DensityNote string
}

func (f *ScoreField) check() error {
	if len(f.Learned) != 2*f.Arrows.Len() || len(f.LearnedFine) != 2*f.Fine.Len() {
		return errors.New("plot: the learned score does not match its grids")
	}
	if f.Exact != nil && (len(f.Exact) != 2*f.Arrows.Len() || len(f.ExactFine) != 2*f.Fine.Len()) {
		return errors.New("plot: the exact score does not match its grids")
	}
	if f.LogDensity != nil && len(f.LogDensity) != f.Fine.Len() {
		return errors.New("plot: the log-density does not match its grid")
	}
	return nil
}

// Figure lays the field out: learned arrows, exact arrows (when known),
// then the heat map: ‖s_θ − ∇log pσ‖ when the exact score is known, else
// ‖s_θ‖·p_σ when the density is, else ‖s_θ‖.
func (f *ScoreField) Figure() (*Figure, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	// One arrow scale for both fields: the 95th percentile of the exact
	// magnitudes (else the learned), so the long arrows far from the data
	// do not shrink the informative ones to dots.
	ref := quantile(magnitudes(f.Learned), 0.95)
	if f.Exact != nil {
		ref = quantile(magnitudes(f.Exact), 0.95)
	}
	if !(ref > 0) {
		ref = 1
	}
	sig := fmt.Sprintf("σ = %.3g", f.Sigma)
	arrows := func(title string, v []float64, col color.Color) Panel {
		p := newPlot(title, XLabel, YLabel)
		if f.LogDensity != nil {
			h, _ := heatLayer(f.Fine, f.LogDensity, HeatOptions{Map: DensityMap(), Min: densityFloor(f.LogDensity)})
			p.Add(h)
		}
		p.Add(&Arrows{Grid: f.Arrows, V: v, Ref: ref, Color: col, Width: vg.Points(0.9)})
		f.Fine.Box.apply(p)
		return Panel{Plot: p}
	}
	fig := &Figure{Title: f.Title}
	fig.Panels = append(fig.Panels, arrows("learned score sθ(x, "+sig+")", f.Learned, Model))
	var z []float64
	var title, label string
	switch {
	case f.Exact != nil:
		fig.Panels = append(fig.Panels, arrows("exact score grad log pσ(x), "+sig, f.Exact, Data))
		z = make([]float64, f.Fine.Len())
		for i := range z {
			z[i] = math.Hypot(f.LearnedFine[2*i]-f.ExactFine[2*i], f.LearnedFine[2*i+1]-f.ExactFine[2*i+1])
		}
		title, label = "error ‖sθ − grad log pσ‖", "‖sθ − grad log pσ‖ (1/data unit)"
	case f.LogDensity != nil:
		z = make([]float64, f.Fine.Len())
		lmax := maxFinite(f.LogDensity)
		for i := range z {
			z[i] = math.Hypot(f.LearnedFine[2*i], f.LearnedFine[2*i+1]) * math.Exp(f.LogDensity[i]-lmax)
		}
		title, label = "‖sθ‖ weighted by pσ / max pσ", "‖sθ‖·pσ/max pσ (1/data unit)"
		if f.DensityNote != "" {
			title += " (" + f.DensityNote + ")"
		}
	default:
		z = make([]float64, f.Fine.Len())
		for i := range z {
			z[i] = math.Hypot(f.LearnedFine[2*i], f.LearnedFine[2*i+1])
		}
		title, label = "‖sθ‖ (the data density is unknown)", "‖sθ‖ (1/data unit)"
	}
	// The scale stops at the 99th percentile: a few huge values at the
	// box's corners would wash out the rest.
	hi := quantile(append([]float64(nil), z...), 0.99)
	if !(hi > 0) {
		hi = 1
	}
	fig.Panels = append(fig.Panels, HeatMap(title, f.Fine, z, HeatOptions{Map: ErrorMap(), Min: 0, Max: hi, Label: label}))
	return fig, nil
}

func maxFinite(z []float64) float64 {
	_, hi := finiteRange(z)
	return hi
}

// densityFloor is where a log-density background starts to be coloured:
// 7 nats (a factor of 1 000) below its peak, so the shape of the mass
// shows, not the tails.
func densityFloor(logp []float64) float64 { return maxFinite(logp) - 7 }
