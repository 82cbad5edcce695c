package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newPlotCmd) }

func newPlotCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "plot KIND …",
		Short: "Pictures of a model: score field, annealing, Langevin trajectories, training loss, log-density",
		Long: `plot draws a picture of a model or of a file ebmrun wrote, as PNG or SVG
(-o x.png, -o x.svg; anneal also writes animated GIFs):

  field MODEL --sigma S     the learned score of a 2-D model as arrows, beside
                            the exact score when the data's is known, and a
                            heat map of the error
  anneal MODEL              samples at the end of each σ level; -o x.gif
                            animates the chains through the annealing
  trace FILE.trace.csv      Langevin trajectories that sample --trace recorded
  loss train.jsonl          the training loss per σ level over the steps
  density MODEL             log p of a 2-D model on a grid (as logp computes
                            it) beside the data

Titles name the model, the sampler and σ; axes are in the data's units.`,
	}
	c.AddCommand(newFieldCmd(), newAnnealCmd(), newTraceCmd(), newLossCmd(), newDensityCmd())
	return c
}

// picture holds the output flags every plot takes.
type picture struct {
	out   string
	force bool
}

func (p *picture) register(c *cobra.Command) {
	c.Flags().StringVarP(&p.out, "out", "o", "", "output file: .png or .svg (required)")
	c.Flags().BoolVar(&p.force, "force", false, "overwrite the output if it exists")
}

// check validates -o against the formats allowed.
func (p *picture) check(allowed ...plot.Format) (plot.Format, error) {
	if p.out == "" {
		return "", usagef("-o OUT is required (.png or .svg)")
	}
	f, err := plot.FormatOf(p.out)
	for _, a := range allowed {
		if err == nil && f == a {
			if _, err := os.Stat(p.out); err == nil && !p.force {
				return "", fmt.Errorf("%s exists; use --force to overwrite it", p.out)
			}
			return f, nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = "." + string(a)
	}
	return "", usagef("-o %s: want a %s file", p.out, strings.Join(names, " or "))
}

// writeFigure writes fig to out atomically: a failed render leaves nothing.
func writeFigure(out string, format plot.Format, fig *plot.Figure) error {
	return tensorio.WriteAtomic(out, func(w io.Writer) error { return fig.Write(w, format) })
}

// modelName is how titles name a model: its folder for the usual
// DIR/model.onnx, else its file name.
func modelName(path string) string {
	if filepath.Base(path) == "model.onnx" {
		dir := filepath.Dir(path)
		if abs, err := filepath.Abs(dir); err == nil && (dir == "." || strings.HasPrefix(dir, "..")) {
			dir = filepath.Base(abs)
		}
		return filepath.ToSlash(filepath.Clean(dir))
	}
	return filepath.Base(path)
}

// loadedModel is a model prepared on a backend, with its contract.
type loadedModel struct {
	path    string
	m       *graph.Model
	spec    *importer.ModelSpec
	plan    runtime.Plan
	backend string
}

// loadModel reads, interprets and prepares a model; energy models become
// score models through the autodiff, as sample does.
func loadModel(path string, ov importer.Overrides, backendName string, threads int) (*loadedModel, error) {
	m, err := importer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	if m, spec, err = sampler.EnergyScoreModel(m, spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(spec.DataShape) == 0 {
		return nil, fmt.Errorf("%s: the shape of one sample is unknown (no ebmrun.data_shape metadata and the data input's shape is not fixed)", path)
	}
	backend, err := runtime.Get(backendName)
	if err != nil {
		return nil, err
	}
	plan, err := backend.Prepare(m, runtime.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &loadedModel{path: path, m: m, spec: spec, plan: plan, backend: backend.Name()}, nil
}

func (lm *loadedModel) Close() error { return lm.plan.Close() }

// provenance is the model's ebmrun.provenance metadata, or nil.
func (lm *loadedModel) provenance() map[string]any { return provenanceOf(lm.m) }

func provenanceOf(m *graph.Model) map[string]any {
	if m == nil {
		return nil
	}
	for _, p := range m.Metadata {
		if p.Key == "ebmrun.provenance" {
			var v map[string]any
			if json.Unmarshal([]byte(p.Value), &v) == nil {
				return v
			}
		}
	}
	return nil
}

// trainingToy is the toy distribution the model's provenance says it was
// trained on, or nil.
func trainingToy(m *graph.Model) *dataset.ToyDist {
	name, _ := provenanceOf(m)["dataset"].(string)
	if name == "" {
		return nil
	}
	toy, err := dataset.Toy(name)
	if err != nil {
		return nil
	}
	return toy
}

// level is σ's index in the model's schedule (relative tolerance 1e-6), or
// −1 when it is not one of its levels.
func level(spec *importer.ModelSpec, sigma float64) int {
	for i, s := range spec.Sigmas {
		if math.Abs(s-sigma) <= 1e-6*s {
			return i
		}
	}
	return -1
}

// scoreBatch is the most points sent to the model in one call.
const scoreBatch = 4096

// scoresAt evaluates the model's score at the points x (Dim values each) at
// noise level σ, in float64.
func (lm *loadedModel) scoresAt(x []float32, sigma float64) ([]float64, error) {
	sc, err := sampler.ModelSource(lm.plan, lm.spec)()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", lm.path, err)
	}
	if c, ok := sc.(io.Closer); ok {
		defer c.Close()
	}
	d := int(graph.NumElements(lm.spec.DataShape))
	n := len(x) / d
	out := make([]float64, len(x))
	buf := make([]float32, min(n, scoreBatch)*d)
	nz := sampler.Noise{Sigma: float32(sigma), Level: level(lm.spec, sigma)}
	for s := 0; s < n; s += scoreBatch {
		k := min(scoreBatch, n-s)
		if err := sc.Score(buf[:k*d], x[s*d:(s+k)*d], k, nz); err != nil {
			return nil, fmt.Errorf("%s: %w", lm.path, err)
		}
		for i, v := range buf[:k*d] {
			out[s*d+i] = float64(v)
		}
	}
	return out, nil
}

// checkBox refuses a bad --box (empty: none given) before any work, so that
// it is one usage line.
func checkBox(flag string) error {
	if flag == "" {
		return nil
	}
	_, err := parseBox(flag)
	return err
}

// parseBox reads --box lo,hi.
func parseBox(s string) (plot.Box, error) {
	a, b, ok := strings.Cut(s, ",")
	lo, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	hi, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	// A width past float64 (-1e308,1e308) sent the axis ticks' search into
	// an endless loop.
	if !ok || err1 != nil || err2 != nil || !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || math.IsInf(hi-lo, 0) {
		return plot.Box{}, usagef("--box %q: want lo,hi with lo < hi and a finite width", s)
	}
	return plot.SquareBox(lo, hi), nil
}

// parseToy reads toy:NAME (the data a 2-D model learned, for its exact
// score or density).
func parseToy(flag, s string) (*dataset.ToyDist, error) {
	name, ok := strings.CutPrefix(s, "toy:")
	if !ok {
		return nil, usagef("--%s %q: want toy:NAME (%s)", flag, s, strings.Join(dataset.ToyNames(), ", "))
	}
	toy, err := dataset.Toy(name)
	if err != nil {
		return nil, usageError{trimPrefix(err, "dataset: ")}
	}
	return toy, nil
}

// refData is what is known of the data a 2-D model learned: a toy (with
// an exact score when it is a mixture) or points from a file.
type refData struct {
	toy    *dataset.ToyDist
	points []float32 // pairs; drawn from the toy when it is not a mixture
	note   string    // where it came from, for titles
}

// refPoints is how many data points stand for a density that is not known
// in closed form: p_σ is then their mixture of N(xᵢ, σ²I).
const refPoints = 2000

// resolveData picks the reference data: --exact toy:NAME, else --data FILE,
// else the toy the model's provenance names; nil when none is known.
func resolveData(exact, data string, m *graph.Model, seed uint64, stderr io.Writer) (*refData, error) {
	var r refData
	switch {
	case exact != "":
		toy, err := parseToy("exact", exact)
		if err != nil {
			return nil, err
		}
		r.toy, r.note = toy, "toy "+toy.Name
	case data != "":
		t, err := loadSamples(data)
		if err != nil {
			return nil, err
		}
		if len(t.Shape) != 2 || t.Shape[1] != 2 {
			return nil, fmt.Errorf("--data %s: want 2-D points [N,2], have %v", data, t.Shape)
		}
		pts := t.F32
		if len(pts) > 2*refPoints {
			pts = pts[:2*refPoints]
		}
		r.points, r.note = pts, fmt.Sprintf("%d points of %s", len(pts)/2, filepath.Base(data))
		return &r, nil
	default:
		toy := trainingToy(m)
		if toy == nil {
			return nil, nil
		}
		fmt.Fprintf(stderr, "ebmrun: the model was trained on toy:%s (provenance); comparing with it\n", toy.Name)
		r.toy, r.note = toy, "toy "+toy.Name
	}
	if r.toy.GMM == nil {
		r.points = float32s(r.toy.Sample(nil, refPoints, rand.New(rand.NewPCG(seed, 3))))
		r.note = fmt.Sprintf("pσ of %d points of toy %s", refPoints, r.toy.Name)
	}
	return &r, nil
}

func float32s(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func float64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// logDensity is log p_σ at the points x (pairs): the mixture's own, or the
// data points' mixture of N(xᵢ, σ²I) — exactly p_σ of the sample.
func (r *refData) logDensity(x []float32, sigma float64) []float64 {
	n := len(x) / 2
	out := make([]float64, n)
	if r.toy != nil && r.toy.GMM != nil {
		p := make([]float64, 2)
		for i := range out {
			p[0], p[1] = float64(x[2*i]), float64(x[2*i+1])
			out[i] = r.toy.GMM.LogProbSigma(p, sigma)
		}
		return out
	}
	m := len(r.points) / 2
	inv := 1 / (2 * sigma * sigma)
	norm := -math.Log(float64(m)) - math.Log(2*math.Pi*sigma*sigma)
	for i := range out {
		px, py := float64(x[2*i]), float64(x[2*i+1])
		best := math.Inf(-1)
		for j := 0; j < m; j++ {
			dx, dy := px-float64(r.points[2*j]), py-float64(r.points[2*j+1])
			best = max(best, -(dx*dx+dy*dy)*inv)
		}
		var s float64
		for j := 0; j < m; j++ {
			dx, dy := px-float64(r.points[2*j]), py-float64(r.points[2*j+1])
			s += math.Exp(-(dx*dx+dy*dy)*inv - best)
		}
		out[i] = best + math.Log(s) + norm
	}
	return out
}

// defaultBox is the square a 2-D model is drawn over: --box, else the
// toy's natural scale, else the model's data range, else the data's box.
func defaultBox(flag string, r *refData, spec *importer.ModelSpec) (plot.Box, error) {
	switch {
	case flag != "":
		return parseBox(flag)
	case r != nil && r.toy != nil:
		return plot.SquareBox(-r.toy.Box, r.toy.Box), nil
	case len(spec.DataRange) == 2:
		return plot.SquareBox(spec.DataRange[0], spec.DataRange[1]), nil
	case r != nil && len(r.points) > 0:
		return plot.DataBox(r.points), nil
	}
	return plot.SquareBox(-3, 3), nil
}

// errNot2D says a plot needs a 2-D model.
func errNot2D(what, path string, shape []int64) error {
	return fmt.Errorf("%s: %s draws 2-D models; this one's samples are shaped %v", path, what, shape)
}

var errNoSigma = errors.New("--sigma S is required: the noise level to draw the score at")
