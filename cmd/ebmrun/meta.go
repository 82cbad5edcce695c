package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newMetaCmd) }

// metaFlags are the settings of `ebmrun meta`.
type metaFlags struct {
	spec                 specFlags
	out                  string
	show, force          bool
	sigmas, betas        string
	dataShape, dataRange string
	sampler              string
	steps                int
	stepLR, snr          float64
	denoise              bool
}

func newMetaCmd() *cobra.Command {
	var f metaFlags
	c := &cobra.Command{
		Use:   "meta MODEL (-o OUT [flags] | --show)",
		Short: "Write the ebmrun.* metadata (roles, σ or β schedule, data shape and range, sampler) into a model",
		Long: `meta stores what ebmrun needs to know about a model in the model itself, as
the ebmrun.* metadata keys (docs/design.md, "The score-model contract"), so
that sample, eval and inspect need no flags afterwards. It is meant for
models exported by PyTorch or anything else without that metadata.

Every role ebmrun decides — from the flags, else the model's existing
metadata, else inference from names, dtypes and shapes — is written, so the
result no longer depends on inference; inspect shows the reasons. The flags
are the role overrides of sample and inspect (--x-input, --cond-input,
--condition, --output, --kind) and the facts:

  --sigmas      the σ schedule the model was trained on (geom:MAX,MIN,L or a list)
  --betas       a DDPM model's linear β schedule, linear:START,END,STEPS
  --data-shape  one sample's shape, e.g. 2 or 1,28,28
  --data-range  LO,HI, the data's box (sample's default initial states)
  --sampler     the recommended sampler, with --steps, --step-lr, --snr, --denoise

Only the metadata changes: the graph and weights are copied as they are. OUT
is written atomically and never overwritten without --force (it may be MODEL
itself). --show prints the ebmrun.* keys (of OUT after writing, else of MODEL).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runMeta(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "file to write the model with its metadata to")
	fl.BoolVar(&f.show, "show", false, "print the ebmrun.* metadata")
	fl.BoolVar(&f.force, "force", false, "overwrite OUT if it exists")
	fl.StringVar(&f.sigmas, "sigmas", "", "σ schedule: geom:MAX,MIN,L or a comma list, largest first")
	fl.StringVar(&f.betas, "betas", "", "DDPM β schedule: linear:START,END,STEPS")
	fl.StringVar(&f.dataShape, "data-shape", "", "shape of one sample: comma-separated sizes")
	fl.StringVar(&f.dataRange, "data-range", "", "LO,HI: the box the data lies in")
	fl.StringVar(&f.sampler, "sampler", "", "recommended sampler: "+strings.Join(sampler.Names(), ", "))
	countVar(fl, &f.steps, "steps", "", 0, "recommended steps (per level for ald; total for ula; corrector steps for pc)")
	fl.Float64Var(&f.stepLR, "step-lr", 0, "recommended step size ε")
	fl.Float64Var(&f.snr, "snr", 0, "recommended pc signal-to-noise ratio")
	fl.BoolVar(&f.denoise, "denoise", false, "recommend the final denoising step")
	f.spec.register(c)
	return c
}

func runMeta(c *cobra.Command, path string, f *metaFlags) error {
	changed := false
	c.Flags().Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "out", "show", "force":
		default:
			changed = true
		}
	})
	switch {
	case f.out == "" && changed:
		return usagef("-o OUT is required to write metadata")
	case f.out == "" && !f.show:
		return usagef("give -o OUT to write the metadata, or --show to print it")
	}
	if f.out == "" {
		m, err := importer.Load(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
		}
		kv := map[string]string{}
		for _, p := range m.Metadata {
			if strings.HasPrefix(p.Key, "ebmrun.") {
				kv[p.Key] = p.Value
			}
		}
		return printMeta(c.OutOrStdout(), kv)
	}
	if _, err := os.Stat(f.out); err == nil && !f.force && !sameFile(f.out, path) {
		return fmt.Errorf("%s exists; use --force to overwrite it", f.out)
	}
	ov, err := f.overrides()
	if err != nil {
		return err
	}
	data, err := importer.ReadFile(path, importer.Limits{})
	if err != nil {
		return trimPrefix(err, "importer: ")
	}
	m, err := importer.Decode(data, importer.Options{Dir: filepath.Dir(path)})
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))}
	}
	f.setSampler(c, spec)
	// The flags' values are checked as they will be read back, before
	// anything is written (--snr NaN failed in the JSON encoder).
	if err := spec.Validate(); err != nil {
		return usageError{trimPrefix(err, "importer: ")}
	}
	// The recommendation must make a sampler; a missing σ schedule is
	// written as it is, with a note.
	if _, err := sampler.FromSpec(spec, sampler.Overrides{}); errors.Is(err, sampler.ErrNoSchedule) {
		fmt.Fprintf(c.ErrOrStderr(), "ebmrun: note: %s has a %s input but no σ schedule yet; sample refuses it until --sigmas is given here or there\n", path, spec.Condition)
	} else if err != nil && spec.Kind != importer.OutEnergy {
		return usageError{err}
	}
	kv, err := spec.Metadata()
	if err != nil {
		return err
	}
	b, err := importer.SetMetadata(data, kv)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	// What is written must read back to the same roles, from its own folder
	// (external weights are looked for beside it).
	m2, err := importer.Decode(b, importer.Options{Dir: filepath.Dir(f.out)})
	if err != nil {
		return fmt.Errorf("%s: the written model would not load (%v); write it in the folder of %s when its weights are in files beside it", f.out, trimPrefix(err, "importer: "), path)
	}
	if _, err := importer.Spec(m2, importer.Overrides{}); err != nil {
		return fmt.Errorf("%s: the written metadata does not read back: %w", f.out, trimPrefix(err, "importer: "))
	}
	if err := tensorio.WriteAtomic(f.out, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	if f.show {
		return printMeta(c.OutOrStdout(), kv)
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s with %d ebmrun.* metadata keys (ebmrun meta %s --show lists them)\n", f.out, len(kv), f.out)
	return nil
}

// overrides reads the role and fact flags.
func (f *metaFlags) overrides() (importer.Overrides, error) {
	ov := f.spec.overrides()
	var err error
	if f.sigmas != "" {
		if ov.Sigmas, err = sampler.ParseSigmas(f.sigmas); err != nil {
			return ov, usageError{fmt.Errorf("--sigmas: %w", err)}
		}
	}
	if f.betas != "" {
		if ov.Betas, err = parseBetas(f.betas); err != nil {
			return ov, err
		}
	}
	if f.dataShape != "" {
		for _, p := range strings.Split(strings.Trim(f.dataShape, "[] "), ",") {
			d, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil || d < 1 {
				return ov, usagef("--data-shape %q: want positive sizes separated by commas, e.g. 1,28,28", f.dataShape)
			}
			ov.DataShape = append(ov.DataShape, d)
		}
	}
	if f.dataRange != "" {
		vals, err := parseFloats(strings.Trim(f.dataRange, "[] "))
		if err != nil || len(vals) != 2 || !(vals[0] < vals[1]) {
			return ov, usagef("--data-range %q: want LO,HI with LO < HI", f.dataRange)
		}
		ov.DataRange = vals
	}
	return ov, nil
}

// setSampler applies the sampler flags to the model's recommendation; a
// new sampler name starts from no settings, as the old ones were for another.
func (f *metaFlags) setSampler(c *cobra.Command, spec *importer.ModelSpec) {
	set := c.Flags().Changed
	rec := spec.Sampler
	if set("sampler") && f.sampler != rec.Sampler {
		rec = importer.SamplerDefaults{Sampler: f.sampler}
	}
	if set("steps") {
		rec.Steps = f.steps
	}
	if set("step-lr") {
		rec.StepLR = f.stepLR
	}
	if set("snr") {
		rec.SNR = f.snr
	}
	if set("denoise") {
		rec.Denoise = f.denoise
	}
	spec.Sampler = rec
}

// parseBetas reads linear:START,END,STEPS.
func parseBetas(s string) (*importer.Betas, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "linear:")
	vals, err := parseFloats(rest)
	if !ok || err != nil || len(vals) != 3 || vals[2] != math.Trunc(vals[2]) ||
		!(vals[0] > 0 && vals[1] > 0 && vals[0] < 1 && vals[1] < 1 && vals[2] >= 1 && vals[2] <= 1e6) {
		return nil, usagef("--betas %q: want linear:START,END,STEPS with 0 < START, END < 1 and a whole number of steps", s)
	}
	return &importer.Betas{Start: vals[0], End: vals[1], Steps: int(vals[2])}, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q is not a finite number", p)
		}
		out = append(out, v)
	}
	return out, nil
}

func printMeta(w io.Writer, kv map[string]string) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, kv[k])
	}
	if len(keys) == 0 {
		fmt.Fprintln(tw, "(no ebmrun.* metadata)")
	}
	return tw.Flush()
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
