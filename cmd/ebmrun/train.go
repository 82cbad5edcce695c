package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/trainer"
)

func init() { commands = append(commands, newTrainCmd) }

// trainFlags are the settings of `ebmrun train`.
type trainFlags struct {
	data, arch, loss, proj, sigmas, scale string

	confine, cdStep, cdNoise, cdReinit, cdReg float64
	cdK, cdBuffer                             int
	act                                       string
	width, depth, channels                    int
	steps, batch, warmup                      int
	lr, wd, clip, ema, fdEps, stepLR          float64
	seed                                      uint64
	out, backend, resume, ckpt, logPath       string
	ckptEvery, logEvery, threads              int
	stepsPerLevel                             int
	force, asJSON                             bool
	labels, classes                           string
	features                                  int

	resolved string // what --sigmas ncsnv2 worked out, said on stderr
}

func newTrainCmd() *cobra.Command {
	var f trainFlags
	c := &cobra.Command{
		Use:   "train --data DATA --out MODEL.onnx",
		Short: "Train a noise-conditional score network (NCSN) and export it to ONNX",
		Long: `train fits a noise-conditional score network s(x, σ) to DATA and writes it,
with its averaged (EMA) weights and ebmrun metadata, to OUT as ONNX.

DATA is a toy distribution (` + strings.Join(dataset.ToyNames(), ", ") + `),
drawn afresh every step, or a data set: a .npy, .csv or IDX file (gzipped or
not) or a folder of PNG images, visited in shuffled epochs. Images are scaled
from [0, 255] to [0, 1] unless --scale says otherwise.

Losses (λ(σ) = σ², σ drawn per sample from --sigmas): dsm (denoising score
matching), ssm and ssm-vr (sliced score matching through a second-order
autodiff), fd-ssm (finite-difference SSM, forward passes only).

A checkpoint is written every --checkpoint-every steps, at the end, and on
Ctrl-C (which then stops cleanly). --resume CKPT continues a run bit for bit
as if it had not stopped, with the settings stored in the checkpoint: flags
given again override them (--steps to train longer, --threads), and a change
that would alter the run (--lr, say) is refused, naming only what differs. The log (JSON lines: loss,
loss per σ level, step time) goes to --log.

--arch classifier trains an image classifier instead (softmax cross-entropy
on labelled images, Adam with a cosine learning rate, EMA weights; no
checkpoints), exported as kind classifier with logits and features outputs:
the measure of image samples that ` + "`ebmrun compare --classifier`" + ` and
` + "`ebmrun classify`" + ` use. Labels come from --labels, or for
…-images-idx3-ubyte[.gz] from the …-labels-idx1-ubyte[.gz] file beside it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runTrain(c, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "toy distribution name, data file or folder of PNG images (required)")
	fl.StringVar(&f.arch, "arch", "mlp", "network: mlp (vectors), energy-mlp (an energy E(x, σ) for vectors), unet (images), energy-conv (a convolutional energy for images) or classifier (an image classifier whose features compare sample sets)")
	fl.StringVar(&f.labels, "labels", "", "classifier: IDX, .npy or .csv file of the images' labels 0 … K−1 (default: the data file's name with images-idx3 → labels-idx1)")
	fl.StringVar(&f.classes, "classes", "", "classifier: comma-separated class names in label order (default: Fashion-MNIST's for a fashion-mnist file, else the label numbers)")
	countVar(fl, &f.features, "features", "", 0, "classifier: penultimate feature units (default 128)")
	fl.Float64Var(&f.confine, "confine", 0, "energy-mlp, energy-conv: coefficient c of the fixed ½c‖x‖² that keeps exp(−E) integrable (default 0.1)")
	countVar(fl, &f.cdK, "cd-steps", "", 0, "cd: Langevin steps per negative (default 20)")
	fl.Float64Var(&f.cdStep, "cd-step-size", 0, "cd: α of x ← x − α∇E + √(2α)·noise·z (default 0.01)")
	fl.Float64Var(&f.cdNoise, "cd-noise", 0, "cd: Langevin noise scale (default 1: unadjusted Langevin for exp(−E))")
	countVar(fl, &f.cdBuffer, "buffer", "", 0, "cd: persistent replay buffer size (0: negatives start from uniform noise)")
	fl.Float64Var(&f.cdReinit, "reinit", 0, "cd: fraction of buffer starts redrawn from noise each step (default 0.05)")
	fl.Float64Var(&f.cdReg, "energy-reg", 0, "cd: α_reg of α_reg·(E(x⁺)² + E(x⁻)²) (default 1, negative: off)")
	countVar(fl, &f.width, "width", "", 0, "mlp: hidden units (default 128)")
	countVar(fl, &f.depth, "depth", "", 0, "mlp: hidden layers (default 3); energy-conv: convolutions (default 3)")
	fl.StringVar(&f.act, "act", "", "mlp, energy-mlp, energy-conv: activation: "+strings.Join(trainer.Activations, ", ")+" (default silu)")
	countVar(fl, &f.channels, "channels", "", 0, "unet: channels of the first level (default 32); energy-conv: channels per convolution (default 32); classifier: of the first convolution, the second has twice as many (default 32)")
	fl.StringVar(&f.loss, "loss", "dsm", "loss: "+strings.Join(trainer.LossNames, ", ")+"; with energy-mlp or energy-conv also "+strings.Join(trainer.EnergyLossNames, ", "))
	fl.StringVar(&f.proj, "projection", "", "slicing vectors of the SSM losses: rademacher, gaussian or sphere (default rademacher)")
	fl.Float64Var(&f.fdEps, "fd-eps", 0, "fd-ssm: finite-difference step relative to σ (default 0.01)")
	fl.StringVar(&f.sigmas, "sigmas", "", "σ schedule: geom:MAX,MIN,L, a comma list, largest first, or ncsnv2[:MIN] (NCSNv2's rules from the data; default geom:1,0.01,10)")
	countVar(fl, &f.steps, "steps", "", 3000, "Adam steps in all")
	countVar(fl, &f.batch, "batch", "", 128, "samples per step")
	fl.Float64Var(&f.lr, "lr", 1e-3, "Adam learning rate")
	fl.Float64Var(&f.wd, "weight-decay", 0, "decoupled (AdamW) weight decay")
	fl.Float64Var(&f.clip, "clip", 0, "clip gradients to this global L2 norm (0: off)")
	countVar(fl, &f.warmup, "warmup", "", 0, "steps of linear learning-rate warm-up")
	fl.Float64Var(&f.ema, "ema", 0.999, "decay of the weight average exported (negative: export the weights themselves)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed: initial weights, batches, σ and noise")
	fl.StringVar(&f.scale, "scale", "auto", "data scaling: auto (images from [0,255] to [0,1], else none), none, standardize, or range:LO,HI")
	fl.Float64Var(&f.stepLR, "step-lr", 0, "annealed Langevin step size ε the model recommends (default 2e-5; with --sigmas ncsnv2, NCSNv2's rule for --steps-per-level)")
	countVar(fl, &f.stepsPerLevel, "steps-per-level", "", 0, "annealed Langevin steps per σ level T the model recommends (default 100; with --sigmas ncsnv2, 5)")
	fl.StringVarP(&f.out, "out", "o", "", "the ONNX model to write (required)")
	fl.StringVar(&f.backend, "backend", "auto", "backend running the training step: auto (ort when it loads, else native), native, ort")
	threadsVar(fl, &f.threads, 0, "backend threads (default: every core)")
	fl.StringVar(&f.resume, "resume", "", "continue from this checkpoint, with its settings")
	fl.StringVar(&f.ckpt, "checkpoint", "", "checkpoint file (default: OUT without .onnx + .ckpt, or the --resume file)")
	countVar(fl, &f.ckptEvery, "checkpoint-every", "", 1000, "write a checkpoint every K steps (0: only at the end and on Ctrl-C)")
	fl.StringVar(&f.logPath, "log", "", "JSON-lines training log (default: OUT without .onnx + .train.jsonl; - for stdout)")
	countVar(fl, &f.logEvery, "log-every", "", 100, "steps per log line")
	fl.BoolVar(&f.force, "force", false, "overwrite OUT if it exists")
	fl.BoolVar(&f.asJSON, "json", false, "print a JSON summary on stdout")
	return c
}

// trainSummary is what --json prints.
type trainSummary struct {
	Model      string  `json:"model"`
	Checkpoint string  `json:"checkpoint"`
	Log        string  `json:"log,omitempty"`
	Backend    string  `json:"backend"`
	Data       string  `json:"data"`
	Arch       string  `json:"arch"`
	Loss       string  `json:"loss"`
	Steps      int     `json:"steps"`
	Resumed    int     `json:"resumed_from,omitempty"`
	Seconds    float64 `json:"seconds"`
	StepMS     float64 `json:"step_ms"`
	FinalLoss  float64 `json:"final_loss"` // mean of the last 100 steps
	Parameters int     `json:"parameters"`
}

func (f *trainFlags) config(data trainer.Data) (trainer.Config, error) {
	cfg := trainer.Config{
		Loss: f.loss, CD: trainer.CDConfig{K: f.cdK, StepSize: f.cdStep, NoiseScale: f.cdNoise, Buffer: f.cdBuffer, Reinit: f.cdReinit, Reg: f.cdReg},
		Projection: f.proj, FDEps: f.fdEps, Steps: f.steps, Batch: f.batch,
		LR: f.lr, WeightDecay: f.wd, ClipNorm: f.clip, Warmup: f.warmup, EMA: f.ema,
		Seed: f.seed, Threads: f.threads,
	}
	if f.ema == 0 {
		cfg.EMA = -1 // --ema 0: no averaging (Config's zero means the default)
	}
	switch f.arch {
	case "mlp":
		cfg.Arch = trainer.MLP{Width: f.width, Depth: f.depth, Act: f.act}
	case "unet":
		cfg.Arch = trainer.UNet{Channels: f.channels}
	case "energy-mlp":
		cfg.Arch = trainer.EnergyMLP{Width: f.width, Depth: f.depth, Act: f.act, Confine: f.confine}
	case "energy-conv":
		cfg.Arch = trainer.EnergyConv{Channels: f.channels, Depth: f.depth, Act: f.act, Confine: f.confine}
	default:
		return cfg, usagef("train: --arch %q: want mlp, energy-mlp, unet, energy-conv or classifier", f.arch)
	}
	defaults := importer.SamplerDefaults{Sampler: "ald", Steps: sampler.DefaultSteps, StepLR: f.stepLR, Denoise: true}
	switch {
	case f.sigmas == "ncsnv2" || strings.HasPrefix(f.sigmas, "ncsnv2:"):
		s, err := ncsnv2Schedule(f, data)
		if err != nil {
			return cfg, err
		}
		cfg.Sigmas = s
		defaults.Steps = 5
		if f.stepsPerLevel > 0 {
			defaults.Steps = f.stepsPerLevel
		}
		if defaults.StepLR == 0 {
			if defaults.StepLR, err = sampler.NCSNv2StepSize(s, defaults.Steps); err != nil {
				return cfg, err
			}
		}
		f.resolved = fmt.Sprintf("--sigmas %s: σ from %.4g to %.4g in %d levels (ratio %.4f), sampler T = %d, ε = %.4g",
			f.sigmas, s[0], s[len(s)-1], len(s), s[0]/s[1], defaults.Steps, defaults.StepLR)
	case f.sigmas != "":
		s, err := sampler.ParseSigmas(f.sigmas)
		if err != nil {
			return cfg, usageError{fmt.Errorf("train: --sigmas: %w", err)}
		}
		cfg.Sigmas = s
	}
	if f.stepsPerLevel > 0 {
		defaults.Steps = f.stepsPerLevel
	}
	if defaults.StepLR != 0 || defaults.Steps != sampler.DefaultSteps {
		if defaults.StepLR == 0 {
			defaults.StepLR = sampler.DefaultStepLR
		}
		cfg.Sampler = defaults
	}
	if f.steps < 1 || f.batch < 1 {
		return cfg, usagef("train: --steps %d and --batch %d must be positive", f.steps, f.batch)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

func runTrain(c *cobra.Command, f *trainFlags) error {
	if f.arch == "classifier" {
		return runTrainClassifier(c, f)
	}
	var changed []string
	if f.resume != "" {
		var err error
		if changed, err = resumeFlags(c, f.resume); err != nil {
			return err
		}
	}
	if f.data == "" || f.out == "" {
		return usagef("train: --data and --out are required")
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return fmt.Errorf("train: %s exists; pass --force to overwrite it", f.out)
	}
	data, err := loadTrainData(f.data, f.scale)
	if err != nil {
		return err
	}
	cfg, err := f.config(data)
	if err != nil {
		return err
	}
	if f.resolved != "" {
		fmt.Fprintf(c.ErrOrStderr(), "ebmrun: train: %s\n", f.resolved)
	}
	be, err := getBackend(c, f.backend)
	if err != nil {
		return err
	}
	tr, err := trainer.New(cfg, data, be)
	if err != nil {
		return err
	}
	defer tr.Close()
	tr.SetCheckpointFlags(savedFlags(c))
	base := strings.TrimSuffix(f.out, ".onnx")
	ckpt := f.ckpt
	if ckpt == "" {
		ckpt = base + ".ckpt"
		if f.resume != "" {
			ckpt = f.resume
		}
	}
	resumed := 0
	if f.resume != "" {
		if err := tr.LoadCheckpoint(f.resume); err != nil {
			return err
		}
		if len(changed) > 0 {
			fmt.Fprintf(c.ErrOrStderr(), "ebmrun: train: resuming %s at step %d with %s\n", f.resume, tr.Done(), strings.Join(changed, ", "))
		}
		resumed = tr.Done()
	}
	logW, logName, closeLog, err := openTrainLog(f.logPath, base, f.resume != "", c.OutOrStdout())
	if err != nil {
		return err
	}
	defer closeLog()

	ctx, received, release := onStepSignals(c.Context(), c.ErrOrStderr(), "finishing the step in progress to write the checkpoint "+ckpt,
		"stopped without finishing the step in progress: what came after the checkpoint last written ("+ckpt+", if any) is lost")
	defer release()
	bar := trainProgress(c.ErrOrStderr(), cfg.Steps, resumed)
	start := time.Now()
	// The summary's loss is the mean of the last (up to) 100 steps.
	var recent [100]float64
	err = tr.Run(ctx, trainer.RunOptions{
		Checkpoint: ckpt, CheckpointEvery: f.ckptEvery, Log: logW, LogEvery: f.logEvery,
		Progress: func(s *trainer.StepStats) {
			recent[s.Step%len(recent)] = s.Loss
			bar(s)
		},
	})
	bar(nil)
	secs := time.Since(start).Seconds()
	if errors.Is(err, trainer.ErrInterrupted) {
		return exitError{signalStatus(received()), fmt.Errorf("train: interrupted at step %d of %d; nothing is lost: the checkpoint %s holds step %d with its settings, and `ebmrun train --resume %s` continues the run exactly (no model exported yet)", tr.Done(), cfg.Steps, ckpt, tr.Done(), ckpt)}
	}
	if err != nil {
		return err
	}
	extra := map[string]any{"command": commandLine(c), "train_seconds": math.Round(secs*10) / 10}
	if resumed > 0 {
		extra["resumed_from"] = resumed
	}
	if err := tr.Export(f.out, extra); err != nil {
		return err
	}
	var last float64
	k := min(tr.Done()-resumed, len(recent))
	for i := 0; i < k; i++ {
		last += recent[(tr.Done()-i)%len(recent)] / float64(k)
	}
	n := 0
	for _, p := range tr.Params() {
		n += len(p)
	}
	sum := trainSummary{Model: f.out, Checkpoint: ckpt, Log: logName, Backend: be.Name(), Data: data.Name(),
		Arch: f.arch, Loss: cfg.Loss, Steps: tr.Done(), Resumed: resumed, Seconds: secs, FinalLoss: last, Parameters: n}
	if d := tr.Done() - resumed; d > 0 {
		sum.StepMS = secs * 1000 / float64(d)
	}
	if f.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	switch {
	case logName == "-":
	case tr.Done() == resumed:
		// Resumed with --steps at the checkpoint's step: nothing trained,
		// the checkpoint's weights exported.
		fmt.Fprintf(c.OutOrStdout(), "exported the checkpoint's %d steps (%s, %s, %s); wrote %s\n",
			tr.Done(), data.Name(), f.arch, cfg.Loss, f.out)
	default:
		fmt.Fprintf(c.OutOrStdout(), "trained %d steps (%s, %s, %s on %s) in %.1f s (%.2f ms/step), loss %.4f (mean of the last 100 steps); wrote %s\n",
			tr.Done(), data.Name(), f.arch, cfg.Loss, be.Name(), secs, sum.StepMS, last, f.out)
	}
	return nil
}

// commandLine rebuilds the command from the flags set, for provenance.
func commandLine(c *cobra.Command) string {
	parts := []string{"ebmrun", c.Name()}
	c.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "json" || f.Name == "force" {
			return
		}
		v := f.Value.String()
		if v == "" || strings.ContainsAny(v, " \t\"'") {
			v = strconv.Quote(v)
		}
		parts = append(parts, "--"+f.Name+" "+v)
	})
	return strings.Join(parts, " ")
}

// loadTrainData resolves --data: a toy name (unless a file of that name
// exists), else a data set through dataset.Load, scaled as --scale says.
func loadTrainData(spec, scale string) (trainer.Data, error) {
	if _, err := os.Stat(spec); err != nil {
		if _, terr := dataset.Toy(spec); terr == nil {
			return trainer.NewToyData(spec)
		}
		if os.IsNotExist(err) {
			return nil, usagef("train: --data %q is neither a toy distribution (%s) nor a file", spec, strings.Join(dataset.ToyNames(), ", "))
		}
		return nil, err
	}
	t, err := dataset.Load(spec)
	if err != nil {
		return nil, err
	}
	rng, err := scaleData(t, spec, scale, "train")
	if err != nil {
		return nil, err
	}
	return trainer.NewTensorData(filepath.Base(spec), t, rng)
}

// scaleData scales t in place as --scale says (auto: images from [0, 255]
// to [0, 1], other data as they are) and returns the data range it set, nil
// when it set none; cmd names the command in errors.
func scaleData(t *graph.Tensor, spec, scale, cmd string) ([]float64, error) {
	var rng []float64
	switch {
	case scale == "auto" && len(t.Shape) >= 3:
		s, err := dataset.ScaleFromRange(t, [2]float64{0, 255}, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w (pass --scale)", cmd, spec, err)
		}
		rng = s.DataRange()
	case scale == "auto" || scale == "none":
	case scale == "standardize":
		s, err := dataset.Standardize(t)
		if err != nil {
			return nil, err
		}
		rng = s.DataRange()
	case strings.HasPrefix(scale, "range:"):
		lo, hi, ok := strings.Cut(strings.TrimPrefix(scale, "range:"), ",")
		l, err1 := strconv.ParseFloat(lo, 64)
		h, err2 := strconv.ParseFloat(hi, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, usagef("%s: --scale %q: want range:LO,HI", cmd, scale)
		}
		s, err := dataset.ScaleToRange(t, l, h)
		if err != nil {
			return nil, err
		}
		rng = s.DataRange()
	default:
		return nil, usagef("%s: --scale %q: want auto, none, standardize or range:LO,HI", cmd, scale)
	}
	return rng, nil
}

// openTrainLog opens the JSON-lines log: appended to when resuming, else
// truncated; "-" is stdout.
func openTrainLog(path, base string, resume bool, stdout io.Writer) (io.Writer, string, func(), error) {
	if path == "" {
		path = base + ".train.jsonl"
	}
	if path == "-" {
		return stdout, "-", func() {}, nil
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resume {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	fh, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, "", nil, fmt.Errorf("train: log: %w", err)
	}
	return fh, path, func() { fh.Close() }, nil
}

// trainProgress returns a callback that draws a bar with the loss and it/s
// when w is a terminal, and does nothing otherwise; nil finishes the bar.
func trainProgress(w io.Writer, total, done int) func(*trainer.StepStats) {
	if !isTerminal(w) {
		return func(*trainer.StepStats) {}
	}
	bar := newBar(w, int64(total), "training", progressbar.OptionShowCount())
	_ = bar.Set(done)
	var avg float64
	return func(s *trainer.StepStats) {
		if s == nil {
			_ = bar.Finish()
			return
		}
		if avg == 0 {
			avg = s.Loss
		}
		avg = 0.98*avg + 0.02*s.Loss
		bar.Describe(fmt.Sprintf("training, loss %.4f", avg))
		_ = bar.Set(s.Step)
	}
}

// notSaved are the train flags that belong to one invocation, not to the
// run a checkpoint continues.
var notSaved = map[string]bool{"resume": true, "force": true, "json": true}

// savedFlags are the train flags set on this command line, by name, as a
// checkpoint keeps them.
func savedFlags(c *cobra.Command) map[string]string {
	out := map[string]string{}
	c.Flags().Visit(func(fl *pflag.Flag) {
		if !notSaved[fl.Name] {
			out[fl.Name] = fl.Value.String()
		}
	})
	return out
}

// resumeFlags sets every flag the checkpoint's run set and this command
// line does not, and lists the flags given now with other values.
func resumeFlags(c *cobra.Command, ckpt string) ([]string, error) {
	saved, err := trainer.ReadCheckpointFlags(ckpt)
	if err != nil {
		return nil, fmt.Errorf("train: --resume: %w", trimPrefix(err, "trainer: "))
	}
	var changed []string
	names := make([]string, 0, len(saved))
	for name := range saved {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fl := c.Flags().Lookup(name)
		if fl == nil || notSaved[name] {
			continue
		}
		if fl.Changed {
			if now := fl.Value.String(); now != saved[name] {
				changed = append(changed, fmt.Sprintf("--%s %s (was %s)", name, now, saved[name]))
			}
			continue
		}
		if err := c.Flags().Set(name, saved[name]); err != nil {
			return nil, fmt.Errorf("train: --resume %s: stored flag --%s %q: %w", ckpt, name, saved[name], err)
		}
	}
	return changed, nil
}

// ncsnv2Schedule applies NCSNv2's rules to the training data: σ₁ the
// largest distance between two of 2 000 data points, σ_L from
// "ncsnv2:MIN" (default 0.01), the ratio from the data's dimension.
func ncsnv2Schedule(f *trainFlags, data trainer.Data) ([]float64, error) {
	sigmaMin := sampler.DefaultSigmaMin
	if rest, ok := strings.CutPrefix(f.sigmas, "ncsnv2:"); ok {
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, usagef("train: --sigmas %q: want ncsnv2 or ncsnv2:MIN with MIN > 0", f.sigmas)
		}
		sigmaMin = v
	}
	sigmaMax, err := trainer.MaxPairDistance(data, 2000, f.seed)
	if err != nil {
		return nil, fmt.Errorf("train: --sigmas ncsnv2: %w", err)
	}
	dim := 1
	for _, d := range data.Shape() {
		dim *= int(d)
	}
	s, err := sampler.NCSNv2Sigmas(sigmaMax, sigmaMin, dim)
	if err != nil {
		return nil, usageError{fmt.Errorf("train: --sigmas %s: %w", f.sigmas, err)}
	}
	return s, nil
}
