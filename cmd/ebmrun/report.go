package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newReportCmd) }

// reportFlags are the settings of `ebmrun report`.
type reportFlags struct {
	s      sampleFlags
	pic    picture
	data   string
	evalN  int
	fields string
}

func newReportCmd() *cobra.Command {
	var f reportFlags
	c := &cobra.Command{
		Use:   "report MODEL -o report.html",
		Short: "One self-contained HTML page about a model: contract, samples, score field, SSM, metrics, provenance",
		Long: `report writes one HTML file, its pictures inlined (nothing else to ship with
it), with what inspect knows of the model; samples of its default sampler
and the chains at the end of each noise level; for 2-D models the score
field at two noise levels, beside the exact one when the data's is known;
sliced score matching at every σ of the schedule on held-out data; MMD²,
energy distance and sliced Wasserstein of the samples against that data;
the training loss per σ when train.jsonl lies beside the model; and the
model's provenance.

The data (--data) are a .npy/.csv/IDX file or toy:NAME:N; by default the
toy the model's provenance names (fresh draws, a stream training never
used), else data.npy beside the model, else none (no SSM, no metrics).
Pixel data in [0, 255] are scaled to the model's data range.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runReport(c, args[0], &f) },
	}
	registerSamplerFlags(c, &f.s)
	fl := c.Flags()
	fl.StringVarP(&f.pic.out, "out", "o", "", "output file: .html (required)")
	fl.BoolVar(&f.pic.force, "force", false, "overwrite the output if it exists")
	fl.StringVar(&f.data, "data", "", "held-out data: a .npy/.csv/IDX file or toy:NAME:N (default: the model's toy, else data.npy beside it)")
	fl.IntVar(&f.evalN, "eval-n", 0, "data points for SSM and the metrics (default 2000 for 2-D models, 100 for images)")
	fl.StringVar(&f.fields, "field-sigmas", "", "comma list of at most 12 σ for the score-field pictures (default: two levels of the schedule)")
	return c
}

// reportPage is what the template shows.
type reportPage struct {
	Name, File, Command string
	Summary             []keyValue
	Inspect             string
	Figures             []reportFigure
	SSM                 []ssmRow
	SSMNote             string
	Metrics             []keyValue
	MetricsNote         string
	Provenance          []keyValue
}

type keyValue struct{ Key, Value string }

type reportFigure struct {
	Heading, Caption string
	Src              template.URL
	Width            int
}

type ssmRow struct{ Sigma, Value, StdErr string }

func runReport(c *cobra.Command, path string, f *reportFlags) error {
	if f.pic.out == "" {
		return usagef("-o report.html is required")
	}
	if ext := strings.ToLower(filepath.Ext(f.pic.out)); ext != ".html" && ext != ".htm" {
		return usagef("-o %s: want an .html file", f.pic.out)
	}
	if isRegularFile(f.pic.out) && !f.pic.force {
		return fmt.Errorf("%s exists; use --force to overwrite it", f.pic.out)
	}
	if f.evalN < 0 {
		return usagef("--eval-n is %d; want a positive number of points", f.evalN)
	}
	if f.fields != "" { // checked before the sampling it would follow
		if _, err := fieldSigmas(f.fields, nil); err != nil {
			return err
		}
	}
	ov, err := samplerOverrides(&f.s)
	if err != nil {
		return err
	}
	raw, err := importer.Load(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	var ib bytes.Buffer
	printInspect(&ib, inspect(path, raw, ov))
	lm, err := loadModel(path, ov, f.s.backend, 0)
	if err != nil {
		return err
	}
	defer lm.Close()
	spec := lm.spec
	is2D := plot.Is2D(spec.DataShape)
	page := &reportPage{Name: modelName(path), File: path, Inspect: ib.String(),
		Command: "ebmrun " + strings.Join(quoteArgs(reportArgs(c, path)), " ")}

	run, err := sampleWithSnapshots(c, lm, &f.s, 50)
	if err != nil {
		return err
	}
	page.Summary = append(page.Summary,
		keyValue{"file", path},
		keyValue{"samples", fmt.Sprintf("%d, shaped %v", run.n, spec.DataShape)},
		keyValue{"sampler", fmt.Sprintf("%s (%s)", run.smp.Name(), settingsString(run.settings))},
		keyValue{"backend", fmt.Sprintf("%s, %.2f s, %.3g evaluations/s", lm.backend, run.stats.Seconds, run.stats.EvalsPerSecond())})

	n := f.evalN
	if n == 0 {
		n = 2000
		if !is2D {
			n = 100
		}
	}
	data, dataNote, err := reportData(f.data, path, lm, n, f.s.seed)
	if err != nil {
		return err
	}
	if data != nil {
		page.Summary = append(page.Summary, keyValue{"data", dataNote})
	}

	title := fmt.Sprintf("%s — %s, %d chains, seed %d", page.Name, run.smp.Name(), run.n, f.s.seed)
	box := plot.DataBox(run.final)
	if is2D && len(spec.DataRange) == 2 {
		box = plot.SquareBox(spec.DataRange[0], spec.DataRange[1])
	}
	if toy := trainingToy(lm.m); is2D && toy != nil {
		box = plot.SquareBox(-toy.Box, toy.Box)
	}
	// Samples, beside the data when there are some.
	samples := &plot.Figure{Title: title}
	sp, _ := plot.SamplesPanel(fmt.Sprintf("%d samples", run.n), run.final, spec.DataShape, spec.DataRange, box, 36) // shape checked
	samples.Panels = append(samples.Panels, sp)
	if data != nil {
		var dp plot.Panel
		if is2D {
			dp = plot.Panel{Plot: plot.Scatter(fmt.Sprintf("%d data points", data.Shape[0]), data.F32, box, plot.Data)}
		} else {
			dp, _ = plot.SamplesPanel("data", data.F32, spec.DataShape, spec.DataRange, box, 36)
		}
		samples.Panels = append(samples.Panels, dp)
	}
	if err := page.addFigure("Samples", "The model's samples with its default sampler (left) and the data (right).", samples); err != nil {
		return err
	}
	if err := page.addFigure("Annealing", "The chains at the end of each noise level, then after the final step.",
		levelsFigure(title, run, spec, box)); err != nil {
		return err
	}
	if is2D && spec.Condition != importer.CondTime {
		sigmas, err := fieldSigmas(f.fields, spec)
		if err != nil {
			return err
		}
		for _, s := range sigmas {
			fig, err := fieldFigure(io.Discard, lm, s, "", "", "", 21, 100, f.s.seed)
			if err != nil {
				return err
			}
			if err := page.addFigure(fmt.Sprintf("Score field at σ = %.3g", s),
				"Arrows: the learned score (blue) and, when the data's score is known, the exact one (orange), on one scale; arrows at the 95th percentile of the magnitudes or longer are drawn full length. Right: where they differ.", fig); err != nil {
				return err
			}
		}
	}
	if log := filepath.Join(filepath.Dir(path), "train.jsonl"); isRegularFile(log) {
		if l, err := readTrainLog(log); err == nil {
			yLabel := "loss per sample"
			if loss, _ := lm.provenance()["loss"].(string); loss != "" {
				yLabel = strings.ToUpper(loss) + " loss per sample"
			}
			var sig []float64
			if len(spec.Sigmas) == len(l.perSigma) {
				sig = spec.Sigmas
			}
			if panel, err := plot.LossCurves(page.Name+": training loss per noise level", l.steps, l.total, l.perSigma, sig, yLabel); err == nil {
				if err := page.addFigure("Training", "From train.jsonl beside the model.", &plot.Figure{Panels: []plot.Panel{panel}, PanelSize: 4.5 * 72}); err != nil {
					return err
				}
			}
		}
	}
	if data == nil {
		page.SSMNote = "No data: give --data to evaluate sliced score matching."
		page.MetricsNote = "No data: give --data to compare the samples with it."
	} else {
		if err := page.addSSM(c, lm, data, f.s.seed); err != nil {
			return err
		}
		if err := page.addMetrics(run.final, data, f.s.seed); err != nil {
			return err
		}
	}
	prov := lm.provenance()
	keys := make([]string, 0, len(prov))
	for k := range prov {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := json.Marshal(prov[k])
		page.Provenance = append(page.Provenance, keyValue{k, strings.Trim(string(v), `"`)})
	}
	err = tensorio.WriteAtomic(f.pic.out, func(w io.Writer) error { return reportTemplate.Execute(w, page) })
	if err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s\n", f.pic.out)
	return nil
}

// addFigure renders fig as a paletted PNG (a third of the size, alike to
// the eye) and inlines it as a data: URI.
func (p *reportPage) addFigure(heading, caption string, fig *plot.Figure) error {
	var b bytes.Buffer
	if err := plot.WriteCompactPNG(&b, fig.Image()); err != nil {
		return err
	}
	w, _ := fig.Size()
	p.Figures = append(p.Figures, reportFigure{Heading: heading, Caption: caption,
		Src:   template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())),
		Width: int(math.Round(float64(w))) * 4 / 3})
	return nil
}

// addSSM evaluates sliced score matching at each σ of the schedule.
func (p *reportPage) addSSM(c *cobra.Command, lm *loadedModel, data *graph.Tensor, seed uint64) error {
	if len(lm.spec.Sigmas) == 0 || lm.spec.Condition == importer.CondTime {
		p.SSMNote = "The model has no σ schedule to evaluate at."
		return nil
	}
	backend, err := runtime.Get(lm.backend)
	if err != nil {
		return err
	}
	e, err := eval.NewEvaluator(backend, lm.m, lm.spec, runtime.Options{})
	if err != nil {
		p.SSMNote = "Not evaluated: " + trimPrefix(err, "eval: ").Error()
		return nil
	}
	defer e.Close()
	res, err := e.Evaluate(context.Background(), data, eval.ObjectiveOptions{Objective: eval.SSM, Sigmas: lm.spec.Sigmas, Seed: seed})
	if err != nil {
		return fmt.Errorf("%s: %w", lm.path, trimPrefix(err, "eval: "))
	}
	for _, r := range res {
		p.SSM = append(p.SSM, ssmRow{fmt.Sprintf("%.3g", r.Sigma), fmt.Sprintf("%.4g", r.Value), fmt.Sprintf("%.2g", r.StdErr)})
	}
	p.SSMNote = fmt.Sprintf("Sliced score matching vᵀ∇x(vᵀs) + ½(vᵀs)², one Rademacher projection a point, on %d data points perturbed at each σ (lower is better), seed %d.", data.Shape[0], seed)
	return nil
}

// addMetrics compares the samples with the data.
func (p *reportPage) addMetrics(samples []float32, data *graph.Tensor, seed uint64) error {
	d := int(graph.NumElements(data.Shape[1:]))
	r, err := eval.Compare(samples, data.F32, d, eval.Options{Seed: seed})
	if err != nil {
		p.MetricsNote = "Not compared: " + trimPrefix(err, "eval: ").Error()
		return nil
	}
	est := func(e eval.Estimate) string {
		s := fmt.Sprintf("%.3g", e.Value)
		if !math.IsNaN(e.StdErr) {
			s += fmt.Sprintf(" ± %.2g", e.StdErr)
		}
		if !math.IsNaN(e.PValue) {
			s += fmt.Sprintf(" (p = %.3g)", e.PValue)
		}
		return s
	}
	p.Metrics = []keyValue{{"MMD² (RBF, several bandwidths)", est(r.MMD2)}, {"energy distance", est(r.Energy)}, {"sliced Wasserstein-1", est(r.SW1)}}
	p.MetricsNote = fmt.Sprintf("%d samples against %d data points (%d and %d of them for the kernel tests); p is the permutation test's p-value for “one distribution”.", r.NX, r.NY, r.UsedX, r.UsedY)
	return nil
}

// reportData reads --data, else the model's toy, else data.npy beside the
// model, keeping at most n points shaped like the model's samples.
func reportData(flag, path string, lm *loadedModel, n int, seed uint64) (*graph.Tensor, string, error) {
	spec := lm.spec
	var t *graph.Tensor
	var note string
	var err error
	switch {
	case flag != "":
		if t, _, err = evalData(flag, seed); err != nil {
			return nil, "", err
		}
		note = flag
	case trainingToy(lm.m) != nil && plot.Is2D(spec.DataShape):
		toy := trainingToy(lm.m)
		spec := fmt.Sprintf("toy:%s:%d", toy.Name, n)
		if t, _, err = evalData(spec, seed); err != nil {
			return nil, "", err
		}
		note = spec + " (the provenance's toy, fresh draws)"
	case isRegularFile(filepath.Join(filepath.Dir(path), "data.npy")):
		held := filepath.Join(filepath.Dir(path), "data.npy")
		if t, err = loadSamples(held); err != nil {
			return nil, "", err
		}
		note = held
	default:
		return nil, "", nil
	}
	per := graph.NumElements(spec.DataShape)
	if len(t.Shape) < 2 || graph.NumElements(t.Shape[1:]) != per {
		return nil, "", fmt.Errorf("data %s: samples shaped %v, the model's are %v", note, t.Shape[1:], spec.DataShape)
	}
	rows := min(int(t.Shape[0]), n)
	t = graph.NewFloat32(append([]int64{int64(rows)}, spec.DataShape...), t.F32[:int64(rows)*per])
	if len(spec.DataRange) == 2 {
		lo, hi := spec.DataRange[0], spec.DataRange[1]
		mn, mx := math.Inf(1), math.Inf(-1)
		for _, v := range t.F32 {
			mn, mx = min(mn, float64(v)), max(mx, float64(v))
		}
		if mx > hi+1e-6 && mn >= 0 && mx <= 255 && hi-lo <= 2 {
			t = t.Clone()
			if _, err := dataset.ScaleFromRange(t, [2]float64{0, 255}, lo, hi); err != nil {
				return nil, "", err
			}
			note += fmt.Sprintf(", pixels scaled from [0, 255] to [%g, %g]", lo, hi)
		}
	}
	return t, fmt.Sprintf("%s, %d points", note, rows), nil
}

// maxFieldSigmas bounds --field-sigmas.
const maxFieldSigmas = 12

// fieldSigmas reads --field-sigmas, or picks the schedule's middle level and
// the one three from the end (where the model's detail shows).
func fieldSigmas(flag string, spec *importer.ModelSpec) ([]float64, error) {
	if flag != "" {
		s, err := sampler.ParseSigmas(flag)
		if err != nil {
			return nil, usagef("--field-sigmas: %v", trimPrefix(err, "sampler: "))
		}
		// Each is a pair of pictures on the page: 2000 ran for minutes.
		if len(s) > maxFieldSigmas {
			return nil, usagef("--field-sigmas: %d levels; a report draws at most %d", len(s), maxFieldSigmas)
		}
		return s, nil
	}
	L := len(spec.Sigmas)
	if L == 0 {
		return []float64{0.1}, nil
	}
	if L < 4 {
		return []float64{spec.Sigmas[L-1]}, nil
	}
	return []float64{spec.Sigmas[L/2], spec.Sigmas[L-3]}, nil
}

func settingsString(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "sigmas" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %v", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// reportArgs is the command line that made the report, for its provenance.
func reportArgs(c *cobra.Command, path string) []string {
	args := []string{"report", path}
	c.Flags().Visit(func(f *pflag.Flag) {
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return args
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}} — ebmrun report</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1e1e1e; max-width: 1400px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 13px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.92em; }
code { font-size: 0.92em; }
</style>
</head>
<body>
<h1>{{.Name}}</h1>
<p class="note">Made by <code>{{.Command}}</code></p>
<table>{{range .Summary}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table>
{{range .Figures}}
<h2>{{.Heading}}</h2>
<figure><img src="{{.Src}}" width="{{.Width}}" alt="{{.Heading}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
<h2>Sliced score matching per noise level</h2>
<p class="note">{{.SSMNote}}</p>
{{if .SSM}}<table><tr><th>σ</th><th>SSM</th><th>standard error</th></tr>{{range .SSM}}<tr><td>{{.Sigma}}</td><td>{{.Value}}</td><td>{{.StdErr}}</td></tr>{{end}}</table>{{end}}
<h2>Samples against data</h2>
<p class="note">{{.MetricsNote}}</p>
{{if .Metrics}}<table>{{range .Metrics}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table>{{end}}
<h2>Model</h2>
<pre>{{.Inspect}}</pre>
<h2>Provenance</h2>
{{if .Provenance}}<table>{{range .Provenance}}<tr><th>{{.Key}}</th><td><code>{{.Value}}</code></td></tr>{{end}}</table>{{else}}<p class="note">The model carries no ebmrun.provenance metadata.</p>{{end}}
</body>
</html>
`))
