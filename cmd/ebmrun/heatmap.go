package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/tensorio"
)

// heatmapRange is how many nats below its maximum the log-density map
// shows; lower values share the darkest colour, so the modes' shape stays
// visible rather than the far tails'.
const heatmapRange = 12

// writeHeatmap evaluates log p on a grid over the data's box and draws it
// beside the data's histogram.
func writeHeatmap(c *cobra.Command, e *density.Estimator, x *graph.Tensor, o density.Options, f *logpFlags) error {
	if e.Dim() != 2 {
		return usagef("--heatmap draws 2-D models; this one has %d values per point", e.Dim())
	}
	x0, x1 := dataBox(x.F32, 0)
	y0, y1 := dataBox(x.F32, 1)
	g := f.grid
	pts := make([]float32, 0, 2*g*g)
	for r := 0; r < g; r++ {
		for col := 0; col < g; col++ {
			pts = append(pts, float32(x0+(float64(col)+0.5)*(x1-x0)/float64(g)), float32(y0+(float64(r)+0.5)*(y1-y0)/float64(g)))
		}
	}
	o.Dequantize, o.Progress, o.KeepPrior = false, nil, false
	res, err := e.LogP(context.Background(), pts, g*g, o)
	if err != nil {
		return fmt.Errorf("heat map: %w", trimPrefix(err, "density: "))
	}
	title := fmt.Sprintf("log p_σ (σ = %.3g)", res.From)
	if res.Process == "vp" {
		title = "log p"
	}
	return tensorio.WriteAtomic(f.heatmap, func(w io.Writer) error {
		return logDensityPNG(w, x.F32, res.LogP, g, [4]float64{x0, x1, y0, y1}, title)
	})
}

// logDensityPNG draws a log-density on a g×g grid (row-major from the
// bottom-left, over box = x0, x1, y0, y1) next to a 2-D histogram of the
// data on the same box, as one PNG. It knows nothing of models, so it can
// live with the other plotting helpers.
func logDensityPNG(w io.Writer, data []float32, logp []float64, g int, box [4]float64, title string) error {
	top := math.Inf(-1)
	for _, v := range logp {
		if !math.IsNaN(v) {
			top = math.Max(top, v)
		}
	}
	z := make([]float64, len(logp))
	for i, v := range logp {
		z[i] = math.Max(v, top-heatmapRange)
	}
	left := plot.New()
	left.Title.Text = title
	left.Add(plotter.NewHeatMap(&gridXYZ{n: g, x0: box[0], dx: (box[1] - box[0]) / float64(g), y0: box[2], dy: (box[3] - box[2]) / float64(g), z: z}, palette.Heat(64, 1)))
	right := plot.New()
	right.Title.Text = fmt.Sprintf("data (%d points)", len(data)/2)
	right.Add(plotter.NewHeatMap(newHist2D(data, box[0], box[1], box[2], box[3], min(g, 200)), palette.Heat(64, 1)))
	for _, p := range []*plot.Plot{left, right} {
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = box[0], box[1], box[2], box[3]
		p.X.Label.Text, p.Y.Label.Text = "x0", "x1"
	}
	img := vgimg.New(12*vg.Inch, 6*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4}
	cs := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(cs[0][0])
	right.Draw(cs[0][1])
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// gridXYZ is values on a regular grid, a plotter.GridXYZ.
type gridXYZ struct {
	n              int
	x0, dx, y0, dy float64
	z              []float64
}

func (h *gridXYZ) Dims() (int, int)   { return h.n, h.n }
func (h *gridXYZ) Z(c, r int) float64 { return h.z[r*h.n+c] }
func (h *gridXYZ) X(c int) float64    { return h.x0 + (float64(c)+0.5)*h.dx }
func (h *gridXYZ) Y(r int) float64    { return h.y0 + (float64(r)+0.5)*h.dy }
