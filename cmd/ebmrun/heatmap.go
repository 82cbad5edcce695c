package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/tensorio"
)

// writeHeatmap evaluates log p on a grid over the data's box and draws it
// beside the data (plot.LogDensityFigure: values more than
// plot.LogDensityRange nats below the peak share the darkest colour, so the
// modes' shape stays visible rather than the far tails').
func writeHeatmap(c *cobra.Command, e *density.Estimator, x *graph.Tensor, o density.Options, f *logpFlags) error {
	if e.Dim() != 2 {
		return usagef("--heatmap draws 2-D models; this one has %d values per point", e.Dim())
	}
	g := plot.Grid{Box: plot.DataBox(x.F32), Cols: f.grid, Rows: f.grid}
	o.Dequantize, o.Progress, o.KeepPrior = false, nil, false
	res, err := e.LogP(context.Background(), g.Points(), g.Len(), o)
	if err != nil {
		return fmt.Errorf("heat map: %w", trimPrefix(err, "density: "))
	}
	heat := fmt.Sprintf("log pσ at σ = %.3g (ODE to σ = %.3g)", res.From, res.To)
	if res.Process == "vp" {
		heat = "log p (VP ODE)"
	}
	title := "log-density by the probability-flow ODE"
	if path := c.Flags().Arg(0); path != "" {
		title = modelName(path) + " — " + title
	}
	fig := plot.LogDensityFigure(title, heat, g, res.LogP, x.F32)
	return tensorio.WriteAtomic(f.heatmap, func(w io.Writer) error { return fig.Write(w, plot.PNG) })
}
