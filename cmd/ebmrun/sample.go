package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newSampleCmd) }

// sampleFlags are the settings of `ebmrun sample`.
type sampleFlags struct {
	spec                    specFlags
	n                       int
	out                     string
	sampler                 string
	sigmas                  string
	steps                   int
	stepLR, snr             float64
	denoise                 bool
	method                  string
	eta, rtol, atol         float64
	times                   []int
	init                    string
	seed                    uint64
	batch, workers, threads int
	backend                 string
	shard                   string
	force, asJSON           bool
	trace                   int
}

func newSampleCmd() *cobra.Command {
	var f sampleFlags
	c := &cobra.Command{
		Use:   "sample MODEL -n N -o OUT",
		Short: "Draw samples from a score model with annealed Langevin dynamics or its successors",
		Long: `sample draws N samples from the score model in MODEL and writes them to OUT,
whose extension picks the format: .npy (float32, shape [N, …data shape]),
.csv (one sample a row), or .png (2-D samples: a scatter plot, or a 2-D
histogram for many points; images [C,H,W]: a grid of the first 100).
OUT is written atomically and never overwritten without --force.

Samplers (docs/design.md): ald (annealed Langevin, NCSN), ula (Langevin at the
smallest σ), cas (consistent annealed sampling), pc (VE predictor–corrector),
ode (the probability-flow ODE from σ_max to σ_min: adaptive RK45 with
--rtol/--atol, or --steps fixed RK45 or --method heun steps), em
(Euler–Maruyama of the reverse VE SDE, over the schedule or --steps
geometric levels), ddpm (ancestral sampling of ε-models with a time input;
--steps K strides the schedule), ddim (DDIM, --eta, --steps K strided or
--times any ascending sub-sequence); the
summary reports each sampler's evaluations per sample. The σ schedule is
--sigmas, else the model's own (metadata); a model with a σ or label input
and neither is refused (store its schedule once with ebmrun meta --sigmas),
an unconditional one uses NCSN's (1 → 0.01, L = 10). Unset settings take the
model's recommendations when they are for the chosen sampler, else that
sampler's own defaults (ald: T = 100 steps per level, ε = 2e-5; ula: 1000
steps; pc: 1 corrector step, snr 0.16; cas: η inside its allowed band; ode:
adaptive at 1e-5).

The same --seed and --batch give the same samples for any --workers, and
--shard i/K writes exactly the i-th of K contiguous slices of the full run.
On the native backend any --batch gives the same samples too; onnxruntime
rounds a matrix product differently by batch shape, so there another --batch
changes the last bits.
A sample that turns NaN or Inf stops the run with an error naming the σ level
and step; nothing is written then. Samples that leave a plausible box (10×
the data range, plus 10σ while still noisy) give a warning naming the level
and step where they first did: usually a step size too large.

Ctrl-C (SIGINT) or SIGTERM stops at the next batch boundary: the batches in
progress finish, the samples done so far are written (.npy and .csv; a .png
needs them all) and stderr says how many; a second signal abandons the
batches in progress. No temporary file is left behind either way. A model
exported with a fixed batch size is run in slices of that size.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runSample(c, args[0], &f) },
	}
	fl := c.Flags()
	countVar(fl, &f.n, "n", "n", 0, "number of samples (required)")
	fl.StringVarP(&f.out, "out", "o", "", "output file: .npy, .csv or .png (required)")
	fl.StringVar(&f.sampler, "sampler", "", strings.Join(sampler.Names(), ", ")+" (default: the model's, else ddpm for time-conditioned ε-models, else ald)")
	fl.StringVar(&f.sigmas, "sigmas", "", "σ schedule: geom:MAX,MIN,L or a comma list, largest first (default: the model's)")
	countVar(fl, &f.steps, "steps", "", 0, "steps per σ level (ald), total steps (ula), corrector steps per level (pc), fixed steps (ode), levels (em), strided time steps (ddpm, ddim); default 100, 1000, 1, adaptive, the schedule, all")
	fl.StringVar(&f.method, "method", sampler.MethodRK45, "ode: rk45 or heun (heun needs --steps)")
	fl.Float64Var(&f.eta, "eta", 0, "ddim: η (0 deterministic, 1 ancestral)")
	fl.IntSliceVar(&f.times, "times", nil, "ddim: the time steps to visit, ascending (default: --steps strided over the schedule)")
	fl.Float64Var(&f.rtol, "rtol", 1e-5, "ode: relative tolerance of adaptive RK45")
	fl.Float64Var(&f.atol, "atol", 1e-5, "ode: absolute tolerance of adaptive RK45")
	fl.Float64Var(&f.stepLR, "step-lr", 0, "step size ε: α_i = ε·σ_i²/σ_L² (ald), α (ula), η = ε/σ_L² (cas); default 2e-5 (cas: in its allowed band)")
	fl.Float64Var(&f.snr, "snr", 0, "signal-to-noise ratio of the pc corrector (default 0.16)")
	fl.BoolVar(&f.denoise, "denoise", false, "finish with NCSNv2's denoising step x + σ_L²·s(x, σ_L) (ald, cas)")
	fl.StringVar(&f.init, "init", "", "initial states: uniform:LO,HI or gaussian:STD (default: uniform over the model's data range, else N(0, σ_max²); ddpm: N(0, 1))")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed")
	countVar(fl, &f.batch, "batch", "", sampler.DefaultBatch, "chains advanced together per model call")
	countVar(fl, &f.workers, "workers", "", 0, "goroutines, each with its own session (default: the number of cores)")
	threadsVar(fl, &f.threads, 0, "threads per session (default: cores / workers)")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	fl.StringVar(&f.shard, "shard", "", "i/K: write only the i-th (0-based) of K contiguous slices of the N samples")
	fl.BoolVar(&f.force, "force", false, "overwrite OUT if it exists")
	fl.BoolVar(&f.asJSON, "json", false, "print a JSON summary on stdout")
	countVar(fl, &f.trace, "trace", "", 0, "record every K-th step of the first 8 chains in OUT's name + .trace.csv")
	f.spec.register(c)
	return c
}

// sampleSummary is what --json prints.
type sampleSummary struct {
	Model          string         `json:"model"`
	Output         string         `json:"output"`
	Trace          string         `json:"trace,omitempty"`
	Backend        string         `json:"backend"`
	Sampler        string         `json:"sampler"`
	Settings       map[string]any `json:"settings"`
	N              int            `json:"n"`
	Start          int            `json:"start"`
	End            int            `json:"end"`
	Batch          int            `json:"batch"`
	Workers        int            `json:"workers"`
	Seed           uint64         `json:"seed"`
	Seconds        float64        `json:"seconds"`
	ComputeSeconds float64        `json:"compute_seconds,omitempty"`
	Evals          int64          `json:"evaluations"`
	EvalsPerSecond float64        `json:"evaluations_per_second"`
	// Escape is where samples first left the plausible box; null if never.
	Escape *sampler.Escape `json:"escape,omitempty"`
}

func runSample(c *cobra.Command, path string, f *sampleFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	cfg := sampler.Config{N: f.n, Seed: f.seed, Batch: f.batch, Workers: f.workers}
	var err error
	if cfg.Shard, cfg.Shards, err = parseShard(f.shard); err != nil {
		return err
	}
	if err := checkOutputs(f.force, f.out, traceOutput(f.out, f.trace)); err != nil {
		return err
	}
	ov, err := f.spec.withSigmas(f.sigmas)
	if err != nil {
		return err
	}
	m, err := importer.Load(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	// An energy model samples through its score −∇x E, built by the autodiff.
	if m, spec, err = sampler.EnergyScoreModel(m, spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(spec.DataShape) == 0 {
		return fmt.Errorf("%s: the shape of one sample is unknown (no ebmrun.data_shape metadata and the data input's shape is not fixed)", path)
	}
	cfg.Dim = int(graph.NumElements(spec.DataShape))
	if fb := spec.FixedBatch; fb > 0 && !c.Flags().Changed("batch") {
		// Whole multiples of the model's batch leave nothing to pad.
		f.batch = (f.batch + fb - 1) / fb * fb
		cfg.Batch = f.batch
	}
	smp, settings, err := buildSampler(c, f, spec)
	if err != nil {
		return err
	}
	if cfg.Init, err = parseInit(f.init, spec, smp); err != nil {
		return err
	}
	settings["init"] = initString(cfg.Init)
	// Sizes from the model and the flags, against the memory budget,
	// before a backend is prepared or OUT is created.
	sized := cfg
	sized.Workers = cmpOr(f.workers, goruntime.GOMAXPROCS(0))
	if err := sampler.Check(smp, sized); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	backend, err := getBackend(c, f.backend)
	if err != nil {
		return err
	}
	workers := cmpOr(f.workers, goruntime.GOMAXPROCS(0))
	threads := cmpOr(f.threads, max(1, goruntime.GOMAXPROCS(0)/workers))
	plan, err := backend.Prepare(m, runtime.Options{Threads: threads})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer plan.Close()
	cfg.Workers = workers
	if f.trace > 0 {
		cfg.TraceEvery, cfg.TraceChains = f.trace, min(8, f.n)
	}

	var progress atomic.Int64
	cfg.Progress = &progress
	cfg.Box, settings["plausible_box"] = plausibleBox(spec)
	start, end := shardBounds(cfg)
	sig := notifyStop(c.ErrOrStderr())
	defer sig.release()
	cfg.Stop = sig.stop
	endProgress := showProgress(c.ErrOrStderr(), &progress, int64(end-start)*int64(smp.Evals()), "sampling", "evals")
	st, err := writeSamples(sig.ctx, f.out, smp, sampler.ModelSource(plan, spec), cfg, spec)
	endProgress()
	if st != nil && st.Escape != nil {
		e := st.Escape
		fmt.Fprintf(c.ErrOrStderr(), "ebmrun: warning: samples left the plausible box %s at %s; %d of %d samples end outside it (%s)\n",
			settings["plausible_box"], e.Where(), e.Outside, st.End-st.Start, escapeHint(smp.Name()))
	}
	if s := sig.received(); s != nil {
		return interruptError(s, err, f.out, st, end-start)
	}
	if err != nil {
		return err
	}
	per := float64(smp.Evals())
	if st.End > st.Start { // adaptive samplers know their count only now
		per = float64(st.Evals) / float64(st.End-st.Start)
		settings["evaluations_per_sample"] = per
	}
	sum := sampleSummary{Model: path, Output: f.out, Backend: backend.Name(), Sampler: smp.Name(), Settings: settings,
		N: st.End - st.Start, Start: st.Start, End: st.End, Batch: f.batch, Workers: workers, Seed: f.seed,
		Seconds: st.Seconds, ComputeSeconds: st.ComputeSeconds, Evals: st.Evals, EvalsPerSecond: st.EvalsPerSecond(), Escape: st.Escape}
	if f.trace > 0 {
		sum.Trace = tracePath(f.out)
		if err := writeTrace(sum.Trace, st.Trace, f.force); err != nil {
			return err
		}
	}
	if f.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %d samples to %s (%s on %s, %.4g evaluations per sample, %.2fs, %.3g evaluations/s)\n",
		sum.N, f.out, sum.Sampler, sum.Backend, per, sum.Seconds, sum.EvalsPerSecond)
	return nil
}

// escapeHint is the setting most likely to keep a sampler's chains in the
// box: the step size of the Langevin samplers, the corrector's SNR, else
// finer steps (the ODE, EM and diffusion samplers have no step size; a poor
// score where the chains went is as likely).
func escapeHint(sampler string) string {
	switch sampler {
	case "ald", "ula", "cas":
		return "a smaller --step-lr may help"
	case "pc":
		return "a smaller --snr may help"
	}
	return "more --steps may help, unless the model's score is poor there"
}

func (f *sampleFlags) check() error {
	switch {
	case f.n <= 0:
		return usagef("-n: want a positive number of samples, got %d", f.n)
	case f.out == "":
		return usagef("-o OUT is required (.npy, .csv or .png)")
	case f.batch <= 0:
		return usagef("--batch: want a positive batch size, got %d", f.batch)
	case f.workers < 0 || f.threads < 0 || f.steps < 0 || f.trace < 0:
		return usagef("--workers, --threads, --steps and --trace must not be negative")
	case f.stepLR < 0 || f.snr < 0 || f.eta < 0 || !(f.rtol > 0) || !(f.atol > 0):
		return usagef("--step-lr, --snr, --eta, --rtol and --atol must be positive")
	}
	switch outFormat(f.out) {
	case ".npy", ".csv", ".png":
	default:
		return usagef("-o %s: want a .npy, .csv or .png file", f.out)
	}
	return nil
}

func outFormat(path string) string {
	i := strings.LastIndexByte(path, '.')
	if i < 0 || strings.ContainsRune(path[i:], '/') {
		return ""
	}
	return strings.ToLower(path[i:])
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// parseShard reads "i/K".
func parseShard(s string) (int, int, error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	k, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || k < 1 || i < 0 || i >= k {
		return 0, 0, usagef("--shard %q: want i/K with 0 ≤ i < K", s)
	}
	return i, k, nil
}

// buildSampler makes the sampler through sampler.FromSpec from the flags
// that were set, and lists what it chose.
func buildSampler(c *cobra.Command, f *sampleFlags, spec *importer.ModelSpec) (sampler.Sampler, map[string]any, error) {
	set := c.Flags().Changed
	ov := sampler.Overrides{Sampler: f.sampler}
	if set("steps") {
		ov.Steps = f.steps
	}
	if set("step-lr") {
		ov.StepLR = f.stepLR
	}
	if set("snr") {
		ov.SNR = f.snr
	}
	if set("denoise") {
		ov.Denoise = &f.denoise
	}
	ov.Method, ov.Eta, ov.RTol, ov.ATol, ov.Times = f.method, f.eta, f.rtol, f.atol, f.times
	smp, err := sampler.FromSpec(spec, ov) // --sigmas is already spec.Sigmas
	if err != nil {
		// Only a flag the user gave makes this a usage error; with none,
		// what failed is the model's own recommendation (or its lack of σ,
		// which --sigmas supplies).
		for _, name := range []string{"sampler", "steps", "step-lr", "snr", "denoise", "method", "eta", "rtol", "atol", "times", "sigmas"} {
			if set(name) || errors.Is(err, sampler.ErrNoSchedule) {
				return nil, nil, usageError{err}
			}
		}
		return nil, nil, fmt.Errorf("the model's recommended sampler (%s): %w", importer.MetaSampler, err)
	}
	return smp, sampler.Describe(smp), nil
}

// parseInit reads --init, or picks sampler.DefaultInit, which ebmrun serve
// uses too.
func parseInit(s string, spec *importer.ModelSpec, smp sampler.Sampler) (sampler.Init, error) {
	if s == "" {
		return sampler.DefaultInit(spec, smp), nil
	}
	in, err := sampler.ParseInit(s)
	if err != nil {
		return nil, usagef("--%s", strings.TrimPrefix(err.Error(), "sampler: "))
	}
	return in, nil
}

func initString(in sampler.Init) string {
	switch v := in.(type) {
	case sampler.Uniform:
		return fmt.Sprintf("uniform:%g,%g", v.Lo, v.Hi)
	case sampler.Gaussian:
		return fmt.Sprintf("gaussian:%g", v.Std)
	}
	return fmt.Sprintf("%v", in)
}

// writeSamples runs the sampler and writes OUT atomically in its format:
// .npy and .csv stream batch by batch; .png needs every sample in memory.
// A run ended by cfg.Stop writes the samples finished by then (.npy with
// its header rewritten to their number), or nothing when there are none or
// OUT is a .png; the error is then sampler.ErrStopped.
func writeSamples(ctx context.Context, out string, smp sampler.Sampler, src sampler.Source, cfg sampler.Config, spec *importer.ModelSpec) (st *sampler.Stats, err error) {
	var runErr error
	run := func(sink func(x []float32, start, n int) error) error {
		st, runErr = sampler.Run(ctx, smp, src, cfg, sink)
		return runErr
	}
	switch outFormat(out) {
	case ".png":
		x, s, err := sampler.Collect(ctx, smp, src, cfg)
		if err != nil {
			return s, err
		}
		title := fmt.Sprintf("%d samples (%s)", len(x)/cfg.Dim, smp.Name())
		return s, tensorio.WriteAtomic(out, func(w io.Writer) error {
			return plot.WriteSamples(w, x, spec.DataShape, spec.DataRange, title)
		})
	case ".csv":
		err = tensorio.WriteAtomic(out, func(w io.Writer) error { return writeCSV(w, cfg.Dim, run) })
	default:
		start, end := shardBounds(cfg)
		shape := append([]int64{int64(end - start)}, spec.DataShape...)
		err = tensorio.WriteAtomic(out, func(w io.Writer) error { return writeNpy(w, shape, run) })
	}
	// st is set by run inside WriteAtomic; read it only after that returns.
	if err == nil && runErr != nil {
		err = runErr // stopped, with what was finished written
	}
	return st, err
}

// writeNpy writes the header first — the shard's sample count is known
// before the run — then each batch as it comes. A stopped run rewrites the
// header in place with the number written.
func writeNpy(w io.Writer, shape []int64, run func(func([]float32, int, int) error) error) error {
	h, err := tensorio.NpyHeader(graph.Float32, shape)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(h); err != nil {
		return err
	}
	var buf []byte
	written := 0
	err = run(func(x []float32, _, n int) error {
		buf = buf[:0]
		for _, v := range x {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		written += n
		_, err := bw.Write(buf)
		return err
	})
	if errors.Is(err, sampler.ErrStopped) && written > 0 {
		wa, ok := w.(io.WriterAt)
		if !ok {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		part := append([]int64{int64(written)}, shape[1:]...)
		h2, err := tensorio.NpyHeaderOfSize(graph.Float32, part, len(h))
		if err != nil {
			return err
		}
		_, err = wa.WriteAt(h2, 0)
		return err
	}
	if err != nil {
		return err
	}
	if int64(written) != shape[0] {
		return fmt.Errorf("sampled %d samples, the header says %d", written, shape[0])
	}
	return bw.Flush()
}

// writeCSV writes a header x0,x1,… and one sample a row, shortest float32
// formatting.
func writeCSV(w io.Writer, dim int, run func(func([]float32, int, int) error) error) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	for j := 0; j < dim; j++ {
		if j > 0 {
			bw.WriteByte(',')
		}
		fmt.Fprintf(bw, "x%d", j)
	}
	bw.WriteByte('\n')
	var line []byte
	rows := 0
	err := run(func(x []float32, _, n int) error {
		for i := 0; i < n; i++ {
			line = line[:0]
			for j, v := range x[i*dim : (i+1)*dim] {
				if j > 0 {
					line = append(line, ',')
				}
				line = strconv.AppendFloat(line, float64(v), 'g', -1, 32)
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
		rows += n
		return nil
	})
	if err != nil && !(errors.Is(err, sampler.ErrStopped) && rows > 0) {
		return err
	}
	return bw.Flush()
}

// shardBounds is the slice of samples this shard writes.
func shardBounds(cfg sampler.Config) (int, int) {
	return sampler.ShardRange(cfg.N, cfg.Shard, max(cfg.Shards, 1))
}

func tracePath(out string) string {
	if i := strings.LastIndexByte(out, '.'); i >= 0 && !strings.ContainsRune(out[i:], '/') {
		out = out[:i]
	}
	return out + ".trace.csv"
}

// writeTrace writes the recorded chain states as CSV: chain, step, level,
// sigma, then the sample's values.
func writeTrace(path string, tps []sampler.TracePoint, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	return tensorio.WriteAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		bw.WriteString("chain,step,level,sigma")
		if len(tps) > 0 {
			for j := range tps[0].X {
				fmt.Fprintf(bw, ",x%d", j)
			}
		}
		bw.WriteByte('\n')
		for _, p := range tps {
			fmt.Fprintf(bw, "%d,%d,%d,%g", p.Chain, p.Step, p.Level, p.Sigma)
			for _, v := range p.X {
				bw.WriteByte(',')
				bw.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			bw.WriteByte('\n')
		}
		return bw.Flush()
	})
}

// plausibleBox is sampler.PlausibleBox with the words the summary shows.
func plausibleBox(spec *importer.ModelSpec) (*sampler.Box, string) {
	b := sampler.PlausibleBox(spec)
	if len(spec.DataRange) == 2 {
		return b, fmt.Sprintf("[%g, %g] (10× the data range, ±10σ while noisy)", b.Lo, b.Hi)
	}
	return b, fmt.Sprintf("[%g, %g] (±10σ more while noisy; the model states no data range)", b.Lo, b.Hi)
}

// stopSignals ends a run cleanly on SIGINT or SIGTERM: the first closes
// stop (the batches in progress finish and are written), a second cancels
// ctx (they are abandoned and nothing is written).
type stopSignals struct {
	ctx     context.Context
	stop    chan struct{}
	release func()
	mu      sync.Mutex
	sig     os.Signal
}

func notifyStop(stderr io.Writer) *stopSignals {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &stopSignals{ctx: ctx, stop: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			s.mu.Lock()
			s.sig = sig
			s.mu.Unlock()
			close(s.stop)
			fmt.Fprintf(stderr, "ebmrun: %s: finishing the batches in progress to write the samples done (again to abandon them)\n", sig)
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("a second %s", sig))
		case <-done:
		}
	}()
	s.release = func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
	return s
}

// received is the first signal, or nil.
func (s *stopSignals) received() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig
}

// interruptError reports a run a signal ended, with the shell's exit status
// for that signal (128 + its number).
func interruptError(sig os.Signal, err error, out string, st *sampler.Stats, total int) error {
	code := 130
	if n, ok := sig.(syscall.Signal); ok {
		code = 128 + int(n)
	}
	if errors.Is(err, sampler.ErrStopped) && st != nil && st.End > st.Start && outFormat(out) != ".png" {
		return exitError{code, fmt.Errorf("interrupted (%s): wrote the %d of %d samples finished before it to %s", sig, st.End-st.Start, total, out)}
	}
	why := "no batch had finished"
	switch {
	case err != nil && !errors.Is(err, sampler.ErrStopped):
		why = "the run was abandoned"
	case outFormat(out) == ".png":
		why = "a .png needs every sample"
	}
	return exitError{code, fmt.Errorf("interrupted (%s): %s; nothing written to %s", sig, why, out)}
}
