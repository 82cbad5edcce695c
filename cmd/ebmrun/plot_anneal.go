package main

import (
	"context"
	"fmt"
	"image"
	"io"
	"sort"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

// annealFlags are the settings of `ebmrun plot anneal`: sample's sampler
// flags, a picture and the GIF's pace.
type annealFlags struct {
	s      sampleFlags
	pic    picture
	frames int
	delay  int
}

func newAnnealCmd() *cobra.Command {
	var f annealFlags
	c := &cobra.Command{
		Use:   "anneal MODEL -o OUT",
		Short: "Samples at the end of each σ level of the annealing; an animated GIF of the chains",
		Long: `anneal runs the sampler as sample does and draws the chains at the end of each
noise level: 2-D samples as scatter panels over one box, images as grids.
With -o x.gif it writes an animation of the chains through the annealing
instead, --frames pictures long. Samplers with more than 12 levels (ddpm)
show 10 evenly spaced moments.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runAnneal(c, args[0], &f) },
	}
	registerSamplerFlags(c, &f.s)
	fl := c.Flags()
	fl.IntVar(&f.frames, "frames", 60, fmt.Sprintf("frames of a GIF (at most %d)", maxFrames))
	fl.IntVar(&f.delay, "delay", 8, fmt.Sprintf("hundredths of a second per GIF frame (at most %d)", plot.MaxGIFDelay))
	fl.StringVarP(&f.pic.out, "out", "o", "", "output file: .png, .svg or .gif (required)")
	fl.BoolVar(&f.pic.force, "force", false, "overwrite the output if it exists")
	return c
}

// registerSamplerFlags adds sample's sampler settings to a command that
// samples on the way to a picture; buildSampler reads them.
func registerSamplerFlags(c *cobra.Command, s *sampleFlags) {
	fl := c.Flags()
	fl.IntVarP(&s.n, "n", "n", 0, "chains (default 1000 for 2-D models, 16 for images)")
	fl.StringVar(&s.sampler, "sampler", "", "ald, ula, cas, pc or ddpm (default: the model's)")
	fl.StringVar(&s.sigmas, "sigmas", "", "σ schedule: geom:MAX,MIN,L or a comma list (default: the model's)")
	fl.IntVar(&s.steps, "steps", 0, "steps per σ level (as sample's --steps)")
	fl.Float64Var(&s.stepLR, "step-lr", 0, "step size ε (as sample's --step-lr)")
	fl.Float64Var(&s.snr, "snr", 0, "pc corrector's signal-to-noise ratio")
	fl.BoolVar(&s.denoise, "denoise", false, "finish with the denoising step")
	fl.StringVar(&s.init, "init", "", "initial states: uniform:LO,HI or gaussian:STD")
	fl.Uint64Var(&s.seed, "seed", 0, "random seed")
	fl.StringVar(&s.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	s.spec.register(c)
}

// snapshot is the chains at one recorded moment.
type snapshot struct {
	step, level int
	sigma       float64
	x           []float32 // chains in order
}

// maxFrames bounds --frames: each frame is a rendered picture held until
// the GIF is written (10⁹ frames ran until killed).
const maxFrames = 1000

func runAnneal(c *cobra.Command, path string, f *annealFlags) error {
	format, err := f.pic.check(plot.PNG, plot.SVG, plot.GIF)
	if err != nil {
		return err
	}
	if f.s.n < 0 || f.s.steps < 0 || f.frames < 1 || f.delay < 1 {
		return usagef("-n, --steps, --frames and --delay must be positive")
	}
	if f.frames > maxFrames || f.delay > plot.MaxGIFDelay {
		return usagef("--frames wants 1 … %d and --delay 1 … %d", maxFrames, plot.MaxGIFDelay)
	}
	ov, err := samplerOverrides(&f.s)
	if err != nil {
		return err
	}
	lm, err := loadModel(path, ov, f.s.backend, 0)
	if err != nil {
		return err
	}
	defer lm.Close()
	run, err := sampleWithSnapshots(c, lm, &f.s, f.frames)
	if err != nil {
		return err
	}
	spec, smp, n, final, snaps := lm.spec, run.smp, run.n, run.final, run.snaps
	is2D := plot.Is2D(spec.DataShape)
	title := fmt.Sprintf("%s — %s, %d chains, seed %d", modelName(path), smp.Name(), n, f.s.seed)
	box := plot.DataBox(final)
	if is2D && len(spec.DataRange) == 2 {
		box = plot.SquareBox(spec.DataRange[0], spec.DataRange[1])
	}
	panel := func(title string, x []float32, limit int) plot.Panel {
		p, _ := plot.SamplesPanel(title, x, spec.DataShape, spec.DataRange, box, limit) // the shape was checked
		return p
	}
	if format == plot.GIF {
		frames := pick(snaps, f.frames)
		imgs := make([]image.Image, 0, len(frames)+1)
		for _, s := range frames {
			fig := &plot.Figure{Title: title, Panels: []plot.Panel{
				panel(fmt.Sprintf("step %d of %d, level %d, σ = %.3g", s.step, smp.Evals(), s.level, s.sigma), s.x, 16)}}
			imgs = append(imgs, fig.Image())
		}
		fig := &plot.Figure{Title: title, Panels: []plot.Panel{panel("final samples", final, 16)}}
		imgs = append(imgs, fig.Image())
		err = tensorio.WriteAtomic(f.pic.out, func(w io.Writer) error { return plot.WriteGIF(w, imgs, f.delay) })
	} else {
		err = writeFigure(f.pic.out, format, levelsFigure(title, run, spec, box))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s (%d chains, %s on %s)\n", f.pic.out, n, smp.Name(), lm.backend)
	return nil
}

// samplerOverrides are the role overrides with --sigmas.
func samplerOverrides(f *sampleFlags) (importer.Overrides, error) {
	return f.spec.withSigmas(f.sigmas)
}

// annealRun is a sampling run with the chains recorded along the way.
type annealRun struct {
	smp      sampler.Sampler
	settings map[string]any
	n        int
	final    []float32
	snaps    []snapshot
	stats    *sampler.Stats
}

// sampleWithSnapshots samples f.n chains (default 1000 2-D points or 16
// images) as sample would, recording them about frames times on the way.
func sampleWithSnapshots(c *cobra.Command, lm *loadedModel, f *sampleFlags, frames int) (*annealRun, error) {
	spec := lm.spec
	is2D := plot.Is2D(spec.DataShape)
	if _, _, _, ok := plot.ImageShape(spec.DataShape); !is2D && !ok {
		return nil, fmt.Errorf("%s: %w", lm.path, plot.ErrShape)
	}
	n := f.n
	if n == 0 {
		n = 1000
		if !is2D {
			n = 16
		}
	}
	smp, settings, err := buildSampler(c, f, spec)
	if err != nil {
		return nil, err
	}
	cfg := sampler.Config{N: n, Dim: int(graph.NumElements(spec.DataShape)), Seed: f.seed, TraceChains: n}
	if cfg.Init, err = parseInit(f.init, spec, smp); err != nil {
		return nil, err
	}
	settings["init"] = initString(cfg.Init)
	if err := smp.Validate(); err != nil {
		return nil, usageError{err}
	}
	cfg.TraceEvery = traceEvery(smp, settings, frames)
	var progress atomic.Int64
	cfg.Progress = &progress
	stop := showProgress(c.ErrOrStderr(), &progress, int64(n)*int64(smp.Evals()), "sampling", "evals")
	final, st, err := sampler.Collect(context.Background(), smp, sampler.ModelSource(lm.plan, spec), cfg)
	stop()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", lm.path, err)
	}
	return &annealRun{smp: smp, settings: settings, n: n, final: final, snaps: snapshots(st.Trace, n, cfg.Dim), stats: st}, nil
}

// levelsFigure shows the chains at the end of each noise level and the
// final samples.
func levelsFigure(title string, run *annealRun, spec *importer.ModelSpec, box plot.Box) *plot.Figure {
	fig := &plot.Figure{Title: title + ": the chains at the end of each noise level", Cols: 4, PanelSize: 3 * 72}
	if !plot.Is2D(spec.DataShape) {
		fig.PanelSize = 2.6 * 72
	}
	panel := func(title string, x []float32) plot.Panel {
		p, _ := plot.SamplesPanel(title, x, spec.DataShape, spec.DataRange, box, 16) // the shape was checked
		return p
	}
	for _, s := range levelEnds(run.snaps) {
		fig.Panels = append(fig.Panels, panel(fmt.Sprintf("level %d, σ = %.3g", s.level, s.sigma), s.x))
	}
	fig.Panels = append(fig.Panels, panel("final samples", run.final))
	return fig
}

// traceEvery records enough steps for the frames wanted and, for annealed
// Langevin, a divisor of the steps per level, so the last step of every
// level is among those recorded.
func traceEvery(smp sampler.Sampler, settings map[string]any, frames int) int {
	every := max(1, smp.Evals()/max(1, frames))
	if _, ok := smp.(*sampler.ALD); ok {
		t, _ := settings["steps"].(int)
		if t > 0 {
			every = min(every, t)
			for t%every != 0 {
				every--
			}
		}
	}
	return every
}

// snapshots groups recorded trace points by step, in step order, each with
// every chain.
func snapshots(tps []sampler.TracePoint, n, dim int) []snapshot {
	by := map[int]*snapshot{}
	for _, p := range tps {
		s := by[p.Step]
		if s == nil {
			s = &snapshot{step: p.Step, level: p.Level, sigma: p.Sigma, x: make([]float32, n*dim)}
			by[p.Step] = s
		}
		copy(s.x[p.Chain*dim:], p.X)
	}
	out := make([]snapshot, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	return out
}

// levelEnds is the last snapshot of each level; with more than 12 levels,
// 10 snapshots evenly spaced over the run.
func levelEnds(snaps []snapshot) []snapshot {
	var out []snapshot
	for i, s := range snaps {
		if i+1 == len(snaps) || snaps[i+1].level != s.level {
			out = append(out, s)
		}
	}
	if len(out) > 12 {
		return pick(snaps, 10)
	}
	return out
}

// pick takes k snapshots evenly spaced, the last included.
func pick(snaps []snapshot, k int) []snapshot {
	if len(snaps) <= k {
		return snaps
	}
	out := make([]snapshot, k)
	for i := range out {
		out[i] = snaps[(i+1)*len(snaps)/k-1]
	}
	return out
}
