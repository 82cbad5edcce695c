package serve

import (
	"bytes"
	"fmt"
	"io"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
)

func runtimeOptions(o Options) runtime.Options { return runtime.Options{Threads: o.Threads} }

// canPlot says whether samples of the model can be drawn, by the rule the
// sample command's .png output follows: 2-D points, or images.
func canPlot(spec *importer.ModelSpec) error {
	if _, _, _, ok := plot.ImageShape(spec.DataShape); ok || plot.Is2D(spec.DataShape) {
		return nil
	}
	return fmt.Errorf("image/png: samples of shape %v: %w", spec.DataShape, plot.ErrShape)
}

// writePNG draws the samples as `ebmrun sample -o x.png` does: a scatter
// plot of 2-D points titled with their number and sampler, or a grid of the
// first images. The picture is drawn whole before a byte is written, so a
// failure still gets an error answer rather than half a PNG.
func writePNG(w io.Writer, x []float32, n int, spec *importer.ModelSpec, samplerName string) error {
	var buf bytes.Buffer
	title := fmt.Sprintf("%d samples (%s)", n, samplerName)
	if err := plot.WriteSamples(&buf, x, spec.DataShape, spec.DataRange, title); err != nil {
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}
