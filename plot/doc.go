// Package plot draws the pictures ebmrun makes of score models: sample
// scatter plots and 2-D histograms, image grids, score fields as arrows
// beside the exact field, heat maps, Langevin trajectories, per-σ training
// curves, and animated GIFs of chains through the annealing.
//
// It builds on gonum.org/v1/plot and knows nothing of models or backends:
// callers evaluate scores on a Grid and hand the numbers over. A picture is
// a Figure — a title over a grid of Panels, each a gonum plot with an
// optional colour bar — written as PNG or SVG by Figure.Write, or rendered
// to an image for a GIF frame by Figure.Image:
//
//	g := plot.Square(-3, 3, 60)
//	z := make([]float64, g.Len())
//	for i, p := range g.XYs() {
//		z[i] = -(p.X*p.X + p.Y*p.Y) / 2 // log N(0, I), up to a constant
//	}
//	fig := &plot.Figure{Title: "log-density", Panels: []plot.Panel{plot.HeatMap("log p(x)", g, z, plot.HeatOptions{Label: "log p (nats)"})}}
//	err := fig.Write(w, plot.PNG)
//
// Colours are the same in every picture: the model and its samples in Model
// blue, data and exact quantities in Data orange, magnitudes and errors on
// one white → yellow → red → black scale (ErrorMap), densities on a pale
// one (DensityMap).
package plot
