// Command modes shows the theory's warning that Langevin dynamics moves
// badly between modes: the mode weights found by the unadjusted Langevin
// algorithm (ULA) on the exact score, by annealed Langevin dynamics (ALD) on
// the exact noised scores, and by CD energies' own Langevin chains
// (models/8gaussians_energy_cd, bench/modes/2modes_energy_cd), against the
// true weights, with the total-variation distance TV = ½Σ|ŵ − w|. Every
// chain starts uniform on the distribution's box; samples are assigned to
// the nearest mode. For the energies it also gives the weights exp(−E)
// itself puts in each mode's cell (grid quadrature), the weights their
// chains would find if they mixed. With -fig it also draws the weights as grouped bars, one panel per
// target (the README's docs/modes.png):
//
//	go run ./bench/modes [-n 2000] [-seed 0] [-fig docs/modes.png]
package main

import (
	"flag"
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"text/tabwriter"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "modes: %v\n", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	g    *dataset.GMM
	box  float64
	cd   string // a trained energy of this distribution, or ""
}

func run() error {
	n := flag.Int("n", 2000, "chains per method")
	seed := flag.Uint64("seed", 0, "seed")
	fig := flag.String("fig", "", "also draw the weights as bar charts to this PNG or SVG file")
	flag.Parse()
	eight, err := dataset.Toy("8gaussians")
	if err != nil {
		return err
	}
	two, err := dataset.NewGMM([]float64{0.8, 0.2}, [][]float64{{-2, 0}, {2, 0}}, []float64{0.5, 0.5})
	if err != nil {
		return err
	}
	targets := []target{
		{"8 Gaussians (equal weights)", eight.GMM, eight.Box, "models/8gaussians_energy_cd/model.onnx"},
		{"2 modes, weights 0.8 / 0.2, ±2, std 0.5", two, 4.5, "bench/modes/2modes_energy_cd/model.onnx"},
	}
	fmt.Printf("mode weights from %d chains each, started uniform on the box; TV = ½Σ|ŵ − w|\n", *n)
	fmt.Printf("ULA: exact score, 1000 steps, ε = 1e-3; ALD: exact noised scores, σ geometric 5 → 0.01, 10 levels × 100 steps, ε = 5e-6; energy: the CD model's Langevin, 1000 steps, α = 0.01\n\n")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	var panels []plot.Panel
	for _, t := range targets {
		rows := []weightsRow{{"truth", t.g.Weights}}
		fmt.Fprintf(w, "%s\t\t\t\n", t.name)
		fmt.Fprintf(w, "method\tweights\tTV\t\n")
		fmt.Fprintf(w, "truth\t%s\t0\t\n", fmtW(t.g.Weights))
		r := rand.New(rand.NewPCG(*seed, 1))
		x := start(*n, t.box, r)
		ula(t.g, x, r)
		wt := weights(t.g, x)
		fmt.Fprintf(w, "ULA\t%s\t%.3f\t\n", fmtW(wt), tv(wt, t.g.Weights))
		rows = append(rows, weightsRow{fmt.Sprintf("ULA (TV %.2f)", tv(wt, t.g.Weights)), wt})
		x = start(*n, t.box, r)
		ald(t.g, x, r)
		wt = weights(t.g, x)
		fmt.Fprintf(w, "ALD\t%s\t%.3f\t\n", fmtW(wt), tv(wt, t.g.Weights))
		rows = append(rows, weightsRow{fmt.Sprintf("annealed Langevin (TV %.2f)", tv(wt, t.g.Weights)), wt})
		if t.cd != "" {
			x = start(*n, t.box, r)
			if err := energyLangevin(t.cd, x, *n, r); err != nil {
				return err
			}
			wt = weights(t.g, x)
			fmt.Fprintf(w, "CD energy\t%s\t%.3f\t\n", fmtW(wt), tv(wt, t.g.Weights))
			rows = append(rows, weightsRow{fmt.Sprintf("CD energy's Langevin (TV %.2f)", tv(wt, t.g.Weights)), wt})
			if wt, err = energyWeights(t.cd, t.g, 2*t.box); err != nil {
				return err
			}
			fmt.Fprintf(w, "CD energy's density\t%s\t%.3f\t\n", fmtW(wt), tv(wt, t.g.Weights))
			rows = append(rows, weightsRow{fmt.Sprintf("CD energy's density, grid (TV %.2f)", tv(wt, t.g.Weights)), wt})
		}
		p, err := weightsPanel(t.name, rows)
		if err != nil {
			return err
		}
		panels = append(panels, p)
		fmt.Fprintf(w, "\t\t\t\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if *fig != "" {
		f := &plot.Figure{Title: fmt.Sprintf("Mode weights: samplers' from %d chains started uniform on the box, and the CD energy's own", *n), Panels: panels}
		return writeFigure(*fig, f)
	}
	return nil
}

type weightsRow struct {
	label string
	w     []float64
}

// barColors: the truth in the data colour, the samplers after it.
var barColors = []color.Color{plot.Data, color.NRGBA{R: 150, G: 150, B: 150, A: 255}, plot.Model,
	color.NRGBA{R: 60, G: 150, B: 80, A: 255}, color.NRGBA{R: 160, G: 210, B: 160, A: 255}}

// weightsPanel draws one target's mode weights as bars grouped by mode, one
// bar per method.
func weightsPanel(title string, rows []weightsRow) (plot.Panel, error) {
	p := gplot.New()
	p.Title.Text = title
	p.X.Label.Text = "mode"
	p.Y.Label.Text = "weight"
	p.Y.Min = 0
	k := len(rows[0].w)
	bw := vg.Length(2.6 * 72 / float64(k*len(rows))) // fill most of a 4-inch panel
	for i, r := range rows {
		bars, err := newBars(r.w, bw)
		if err != nil {
			return plot.Panel{}, err
		}
		bars.Offset = vg.Length(float64(i)-float64(len(rows)-1)/2) * bw
		bars.Color = barColors[i%len(barColors)]
		bars.LineStyle.Width = 0
		p.Add(bars)
		p.Legend.Add(r.label, bars)
	}
	names := make([]string, k)
	top := 0.0
	for j := range names {
		names[j] = fmt.Sprint(j + 1)
		for _, r := range rows {
			top = math.Max(top, r.w[j])
		}
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Max = 1.45 * top // room for the legend above the bars
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	return plot.Panel{Plot: p, Width: 5 * vg.Inch}, nil
}

func newBars(w []float64, width vg.Length) (*plotter.BarChart, error) {
	return plotter.NewBarChart(plotter.Values(w), width)
}

func writeFigure(path string, f *plot.Figure) error {
	format, err := plot.FormatOf(path)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := f.Write(out, format); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func start(n int, box float64, r *rand.Rand) []float64 {
	x := make([]float64, 2*n)
	for i := range x {
		x[i] = box * (2*r.Float64() - 1)
	}
	return x
}

func ula(g *dataset.GMM, x []float64, r *rand.Rand) {
	const eps = 1e-3
	var s []float64
	for k := 0; k < 1000; k++ {
		s = g.Score(s, x, 0)
		for i := range x {
			x[i] += eps/2*s[i] + math.Sqrt(eps)*r.NormFloat64()
		}
	}
}

func ald(g *dataset.GMM, x []float64, r *rand.Rand) {
	const eps, levels = 5e-6, 10
	var s []float64
	for l := 0; l < levels; l++ {
		sigma := 5 * math.Pow(0.01/5, float64(l)/(levels-1))
		a := eps * sigma * sigma / (0.01 * 0.01)
		for k := 0; k < 100; k++ {
			s = g.Score(s, x, sigma)
			for i := range x {
				x[i] += a/2*s[i] + math.Sqrt(a)*r.NormFloat64()
			}
		}
	}
}

func loadEnergy(path string) (*density.Energy, error) {
	m, err := importer.Load(path)
	if err != nil {
		return nil, err
	}
	spec, err := importer.Spec(m, importer.Overrides{})
	if err != nil {
		return nil, err
	}
	be, err := runtime.Get("auto")
	if err != nil {
		return nil, err
	}
	return density.NewEnergy(be, m, spec, 0, runtime.Options{Threads: 1})
}

// energyWeights is the mass exp(−E) puts in each mode's cell (the points
// nearest that mode), by midpoint quadrature on [−box, box]²: the weights
// the energy itself holds, which its chains should find.
func energyWeights(path string, g *dataset.GMM, box float64) ([]float64, error) {
	e, err := loadEnergy(path)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	const k = 400
	h := 2 * box / k
	x := make([]float32, 2*k)
	en := make([]float64, k)
	logw := make([][]float64, g.Len())
	for i := 0; i < k; i++ { // one grid row per call
		for j := 0; j < k; j++ {
			x[2*j], x[2*j+1] = float32(-box+(float64(j)+0.5)*h), float32(-box+(float64(i)+0.5)*h)
		}
		if err := e.Eval(en, nil, x, k); err != nil {
			return nil, err
		}
		for j := 0; j < k; j++ {
			m := g.Nearest([]float64{float64(x[2*j]), float64(x[2*j+1])})
			logw[m] = append(logw[m], -en[j])
		}
	}
	// Normalise in log space: −E can be large.
	top := math.Inf(-1)
	for _, l := range logw {
		for _, v := range l {
			top = math.Max(top, v)
		}
	}
	w := make([]float64, g.Len())
	var sum float64
	for m, l := range logw {
		for _, v := range l {
			w[m] += math.Exp(v - top)
		}
		sum += w[m]
	}
	for m := range w {
		w[m] /= sum
	}
	return w, nil
}

func energyLangevin(path string, x []float64, n int, r *rand.Rand) error {
	e, err := loadEnergy(path)
	if err != nil {
		return err
	}
	defer e.Close()
	const alpha = 0.01
	xf := make([]float32, len(x))
	en, grad := make([]float64, n), make([]float64, len(x))
	for k := 0; k < 1000; k++ {
		for i, v := range x {
			xf[i] = float32(v)
		}
		if err := e.Eval(en, grad, xf, n); err != nil {
			return err
		}
		for i := range x {
			x[i] += -alpha*grad[i] + math.Sqrt(2*alpha)*r.NormFloat64()
		}
	}
	return nil
}

func weights(g *dataset.GMM, x []float64) []float64 {
	w := make([]float64, g.Len())
	n := len(x) / 2
	for i := 0; i < n; i++ {
		w[g.Nearest(x[2*i:2*i+2])] += 1 / float64(n)
	}
	return w
}

func tv(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / 2
}

func fmtW(w []float64) string {
	s := ""
	for i, v := range w {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.3f", v)
	}
	return s
}
