package plot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chainColors tell chains apart (ColorBrewer's Dark2, readable on white and
// on the pale density scale).
func chainColors() []color.Color {
	p, err := brewer.GetPalette(brewer.TypeQualitative, "Dark2", 8)
	if err != nil {
		panic(err) // a palette that ships with gonum
	}
	return p.Colors()
}

// Trajectories draws the paths of a few Langevin chains in the plane: each
// chain (a list of 2-D points in step order) as a line that fades in as the
// chain goes — the first, high-noise steps jump far and would hide the
// rest — from an open circle (start) to a dot (end). Under them, logp on
// the grid g when given (nil for none), on the pale density scale.
func Trajectories(title string, chains [][]float32, box Box, g *Grid, logp []float64) (*gplot.Plot, error) {
	if len(chains) == 0 {
		return nil, errors.New("plot: no chains to draw")
	}
	p := newPlot(title, XLabel, YLabel)
	if g != nil && logp != nil {
		h, _ := heatLayer(*g, logp, HeatOptions{Map: DensityMap(), Min: densityFloor(logp)})
		p.Add(h)
	}
	cols := chainColors()
	for i, ch := range chains {
		n := len(ch) / 2
		if n == 0 {
			continue
		}
		xy := make(plotter.XYs, n)
		for j := range xy {
			xy[j].X, xy[j].Y = float64(ch[2*j]), float64(ch[2*j+1])
		}
		col := cols[i%len(cols)]
		p.Add(&fadingLine{xy: xy, col: col})
		start, _ := plotter.NewScatter(xy[:1])
		start.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: draw.RingGlyph{}}
		end, _ := plotter.NewScatter(xy[n-1:])
		end.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
		p.Add(start, end)
	}
	box.apply(p)
	return p, nil
}

// fadingLine is a polyline whose opacity grows from 10% to 100% along it.
type fadingLine struct {
	xy  plotter.XYs
	col color.Color
}

// Plot implements gonum's plot.Plotter.
func (l *fadingLine) Plot(c draw.Canvas, plt *gplot.Plot) {
	trX, trY := plt.Transforms(&c)
	r, g, b, _ := l.col.RGBA()
	n := len(l.xy)
	for j := 1; j < n; j++ {
		t := float64(j) / float64(max(1, n-1))
		a := uint8(255 * (0.1 + 0.9*t*t))
		sty := draw.LineStyle{Color: color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}, Width: vg.Points(0.5 + 0.7*t)}
		pts := c.ClipLinesXY([]vg.Point{
			{X: trX(l.xy[j-1].X), Y: trY(l.xy[j-1].Y)},
			{X: trX(l.xy[j].X), Y: trY(l.xy[j].Y)},
		})
		for _, seg := range pts {
			c.StrokeLines(sty, seg)
		}
	}
}

// LossCurves draws a training log: the loss at each σ level against the
// training step, on a log scale (a linear one when every loss is at or
// below zero, as contrastive divergence's are), one colour per level from the largest σ
// (dark) to the smallest (light), and the total in black. perSigma[k][i]
// is level k's loss at steps[i] (NaN where it was not measured); sigmas
// labels the levels (nil: by index). yLabel names the loss and its
// weighting.
func LossCurves(title string, steps []float64, total []float64, perSigma [][]float64, sigmas []float64, yLabel string) (Panel, error) {
	if len(steps) == 0 {
		return Panel{}, errors.New("plot: an empty training log")
	}
	p := newPlot(title, "training step", yLabel)
	logY := false
	for _, ys := range append([][]float64{total}, perSigma...) {
		for _, y := range ys {
			logY = logY || (y > 0 && !math.IsInf(y, 0))
		}
	}
	if logY {
		p.Y.Scale = gplot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	p.Add(plotter.NewGrid())
	// The legend stands beside the plot, where it hides no curve.
	leg := gplot.New()
	leg.HideAxes()
	leg.Legend.Top = true
	leg.Legend.Left = true
	leg.Legend.TextStyle.Font.Size = 9
	cm := moreland.Kindlmann()
	cm.SetMin(0)
	cm.SetMax(1)
	drawn := 0
	line := func(ys []float64, col color.Color, w vg.Length, name string) error {
		var xy plotter.XYs
		for i, y := range ys {
			// A log axis cannot show 0 or below; SSM-type losses can be
			// negative, so those points are left out, not clamped.
			if i < len(steps) && (y > 0 || !logY && !math.IsNaN(y)) && !math.IsInf(y, 0) {
				xy = append(xy, plotter.XY{X: steps[i], Y: y})
			}
		}
		if len(xy) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.LineStyle = draw.LineStyle{Color: col, Width: w}
		p.Add(l)
		leg.Legend.Add(name, l)
		drawn++
		return nil
	}
	for k, ys := range perSigma {
		// Kindlmann's scale without its black and white ends.
		t := 0.12 + 0.7*float64(k)/float64(max(1, len(perSigma)-1))
		col, _ := cm.At(t)
		name := fmt.Sprintf("level %d", k+1)
		if k < len(sigmas) {
			name = fmt.Sprintf("σ = %.3g", sigmas[k])
		}
		if err := line(ys, col, vg.Points(1.2), name); err != nil {
			return Panel{}, fmt.Errorf("plot: %s: %w", name, err)
		}
	}
	if total != nil {
		if err := line(total, Ink, vg.Points(2.2), "all levels"); err != nil {
			return Panel{}, fmt.Errorf("plot: total: %w", err)
		}
	}
	if drawn == 0 {
		return Panel{}, errors.New("plot: no loss to draw (a log scale needs a positive one)")
	}
	return Panel{Plot: p, ColorBar: leg, Width: 6 * vg.Inch}, nil
}

// logTicks marks a log axis at 1, 2 and 5 times the powers of ten, and at
// every integer multiple when the axis spans less than a decade and a half
// (gonum's LogTicks labels only the powers, which a loss curve may never
// cross).
type logTicks struct{}

// Ticks implements gonum's plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []gplot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	labelled := map[int]bool{1: true, 2: true, 5: true}
	if math.Log10(hi/lo) < 1.5 {
		labelled = map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}
	}
	var out []gplot.Tick
	for k := math.Floor(math.Log10(lo)); math.Pow(10, k) <= hi; k++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, k)
			if v < lo || v > hi {
				continue
			}
			t := gplot.Tick{Value: v}
			if labelled[m] {
				t.Label = strconv.FormatFloat(v, 'g', 3, 64)
			}
			out = append(out, t)
		}
	}
	return out
}
