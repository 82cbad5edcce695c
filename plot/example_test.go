package plot_test

import (
	"bytes"
	"fmt"
	"image/png"

	"github.com/ebmrun/ebmrun/plot"
)

// A heat map of a function of the plane, with its colour bar, as a PNG.
func ExampleHeatMap() {
	g := plot.Square(-3, 3, 60)
	z := make([]float64, g.Len())
	for i, p := range g.XYs() {
		z[i] = -(p.X*p.X + p.Y*p.Y) / 2 // log N(0, I) up to a constant
	}
	fig := &plot.Figure{Title: "a standard normal", Panels: []plot.Panel{
		plot.HeatMap("log p(x)", g, z, plot.HeatOptions{Map: plot.DensityMap(), Label: "log p (nats)"}),
	}}
	var b bytes.Buffer
	if err := fig.Write(&b, plot.PNG); err != nil {
		fmt.Println(err)
		return
	}
	img, err := png.Decode(&b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(img.Bounds().Dx(), "×", img.Bounds().Dy(), "pixels")
	// Output: 630 × 540 pixels
}
