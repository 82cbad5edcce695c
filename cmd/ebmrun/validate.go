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
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/runtime/tolerance"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newValidateCmd) }

type validateRow struct {
	Output  string  `json:"output"`
	Pair    string  `json:"pair"` // "native vs ort", "native vs expected"
	MaxAbs  float64 `json:"max_abs_err"`
	MaxRel  float64 `json:"max_rel_err"`
	Pass    bool    `json:"pass"`
	Problem string  `json:"problem,omitempty"`
}

type validateReport struct {
	File     string            `json:"file"`
	Inputs   string            `json:"inputs"` // folder, or "generated (seed S, batch N)"
	Backends []string          `json:"backends"`
	RTol     float64           `json:"rtol"`
	ATol     float64           `json:"atol"`
	STol     float64           `json:"stol"`
	Rows     []validateRow     `json:"rows"`
	Errors   map[string]string `json:"errors,omitempty"` // backend → why it could not run
	Pass     bool              `json:"pass"`
}

func newValidateCmd() *cobra.Command {
	var (
		inputsDir, expectDir, backends string
		tol                            = tolerance.FixtureTolerances[graph.Float32]
		asJSON                         bool
		batch                          int
		seed                           uint64
		sf                             specFlags
	)
	c := &cobra.Command{
		Use:   "validate MODEL",
		Short: "Check that a model computes the same outputs on every backend and against reference outputs",
		Long: `validate runs the model on each backend and compares the outputs pairwise and,
with --expect, against reference outputs saved by the framework that produced the
model (PyTorch, say): the cross-framework check.

Inputs come from --inputs DIR (one <input name>.npy per input) or are generated to
fit the model's roles: x ~ N(0, 1), σ log-uniform over its schedule, labels and
time steps uniform. Expected outputs are <output name>.npy files in --expect DIR.

An element passes when |a − b| ≤ atol + stol·max|b| + rtol·|b|, b being the
reference (the expected output, or the second backend of a pair); stol scales
with the output's largest magnitude, for outputs divided by a small σ.
A table shows the largest absolute and relative errors per output and pair;
any mismatch exits 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			if batch < 1 {
				return usagef("--batch must be at least 1")
			}
			if tol.RTol < 0 || tol.ATol < 0 || tol.STol < 0 {
				return usagef("tolerances must not be negative")
			}
			names := splitList(backends)
			if len(names) == 0 {
				return usagef("--backends names no backend")
			}
			m, err := importer.Load(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
			}
			ins, from, err := validateInputs(m, inputsDir, batch, seed, sf.overrides())
			if err != nil {
				return err
			}
			r := &validateReport{File: path, Inputs: from, Backends: names, RTol: tol.RTol, ATol: tol.ATol, STol: tol.STol, Errors: map[string]string{}}
			results := map[string][]*graph.Tensor{}
			for _, name := range names {
				outs, err := runOn(name, m, ins)
				if err != nil {
					r.Errors[name] = oneLine(err.Error())
					continue
				}
				results[name] = outs
			}
			var expect []*graph.Tensor
			if expectDir != "" {
				if expect, err = readNamed("--expect", expectDir, m.Graph.Outputs); err != nil {
					return err
				}
			}
			tols := tolerance.Tolerances{graph.Float32: tol, graph.Int64: {}, graph.Bool: {}}
			for oi, out := range m.Graph.Outputs {
				for i, a := range names {
					if results[a] == nil {
						continue
					}
					for _, b := range names[i+1:] {
						if results[b] != nil {
							r.Rows = append(r.Rows, compareRow(out.Name, a+" vs "+b, results[a][oi], results[b][oi], tols))
						}
					}
					if expect != nil {
						r.Rows = append(r.Rows, compareRow(out.Name, a+" vs expected", results[a][oi], expect[oi], tols))
					}
				}
			}
			r.Pass = len(r.Errors) == 0 && len(r.Rows) > 0
			for _, row := range r.Rows {
				r.Pass = r.Pass && row.Pass
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printValidate(c.OutOrStdout(), r)
			}
			if !r.Pass {
				return exitError{1, validateFailure(r)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&inputsDir, "inputs", "", "folder of <input name>.npy files (default: generated inputs)")
	c.Flags().StringVar(&expectDir, "expect", "", "folder of <output name>.npy reference outputs")
	c.Flags().StringVar(&backends, "backends", "native,ort", "comma-separated backends to run and compare")
	c.Flags().Float64Var(&tol.RTol, "rtol", tol.RTol, "tolerance relative to each reference element")
	c.Flags().Float64Var(&tol.ATol, "atol", tol.ATol, "absolute tolerance")
	c.Flags().Float64Var(&tol.STol, "stol", tol.STol, "tolerance relative to the reference output's largest magnitude")
	c.Flags().IntVar(&batch, "batch", 16, "batch size of generated inputs")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of generated inputs")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	sf.register(c)
	return c
}

func validateFailure(r *validateReport) error {
	var bad []string
	for name, why := range r.Errors {
		if !strings.HasPrefix(why, name+":") {
			why = name + ": " + why
		}
		bad = append(bad, why)
	}
	n := 0
	for _, row := range r.Rows {
		if !row.Pass {
			n++
		}
	}
	if n > 0 {
		bad = append(bad, fmt.Sprintf("%d comparison(s) out of tolerance", n))
	}
	if len(r.Rows) == 0 && len(r.Errors) == 0 {
		bad = append(bad, "nothing to compare: name two backends or give --expect")
	}
	return fmt.Errorf("%s: validation failed: %s", r.File, strings.Join(bad, "; "))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runOn prepares the model on one backend and runs it once.
func runOn(name string, m *graph.Model, ins []*graph.Tensor) ([]*graph.Tensor, error) {
	b, err := runtime.Get(name)
	if err != nil {
		return nil, err
	}
	plan, err := b.Prepare(m, runtime.Options{})
	if err != nil {
		return nil, err
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	outs := make([]*graph.Tensor, len(plan.Outputs()))
	for i := range outs {
		outs[i] = new(graph.Tensor)
	}
	if err := sess.Run(ins, outs); err != nil {
		return nil, err
	}
	return outs, nil
}

func readNamed(flag, dir string, vs []graph.ValueInfo) ([]*graph.Tensor, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil || errors.Is(err, os.ErrNotExist) {
			what := "output"
			if flag == "--inputs" {
				what = "input"
			}
			return nil, fmt.Errorf("%s %s: no such folder (want a folder of <%s name>.npy files)", flag, dir, what)
		}
		return nil, fmt.Errorf("%s %s: %w", flag, dir, errors.Unwrap(err))
	}
	out := make([]*graph.Tensor, len(vs))
	for i, v := range vs {
		p := filepath.Join(dir, v.Name+".npy")
		t, err := tensorio.ReadNpyFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: no %s.npy for %q", dir, v.Name, v.Name)
			}
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// validateInputs reads the inputs from dir, or generates inputs that fit the
// model's score-model roles.
func validateInputs(m *graph.Model, dir string, batch int, seed uint64, ov importer.Overrides) ([]*graph.Tensor, string, error) {
	decl := m.Graph.RuntimeInputs()
	if dir != "" {
		ins, err := readNamed("--inputs", dir, decl)
		return ins, dir, err
	}
	spec, err := importer.Spec(m, ov)
	if err != nil {
		return nil, "", fmt.Errorf("cannot generate inputs (%v); give --inputs DIR", trimPrefix(err, "importer: "))
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	sigmas := spec.Sigmas
	if len(sigmas) == 0 {
		sigmas = []float64{1, 0.01}
	}
	lo, hi := math.Log(sigmas[len(sigmas)-1]), math.Log(sigmas[0])
	if lo > hi {
		lo, hi = hi, lo
	}
	ins := make([]*graph.Tensor, len(decl))
	for i, v := range decl {
		shape := []int64{int64(batch)}
		if v.HasShape {
			shape = shape[:0]
			for j, d := range v.Shape {
				switch {
				case d.Known():
					shape = append(shape, d.Value)
				case j == 0:
					shape = append(shape, int64(batch))
				default:
					return nil, "", fmt.Errorf("input %q has unknown dimension %d (%s); give --inputs DIR", v.Name, j, v.Shape)
				}
			}
		}
		// Generated inputs are bounded by the memory budget before they are
		// allocated: --batch 1e12 asked for 8 TB at once.
		n, err := graph.CheckedNumElements(shape)
		if err == nil {
			err = membudget.Elems(fmt.Sprintf("generated input %q %v", v.Name, shape), n, 8)
		}
		if err != nil {
			return nil, "", err
		}
		switch {
		case v.Name == spec.CondInput && spec.Condition == importer.CondSigma:
			t := graph.NewFloat32(shape, nil)
			for k := range t.F32 {
				t.F32[k] = float32(math.Exp(lo + (hi-lo)*rng.Float64()))
			}
			ins[i] = t
		case v.Name == spec.CondInput && spec.Condition == importer.CondLabels:
			t := graph.NewInt64(shape, nil)
			for k := range t.I64 {
				t.I64[k] = int64(rng.IntN(len(sigmas)))
			}
			ins[i] = t
		case v.Name == spec.CondInput && spec.Condition == importer.CondTime:
			steps := 1000
			if spec.Betas != nil && spec.Betas.Steps > 0 {
				steps = spec.Betas.Steps
			}
			if v.DType == graph.Int64 {
				t := graph.NewInt64(shape, nil)
				for k := range t.I64 {
					t.I64[k] = int64(rng.IntN(steps))
				}
				ins[i] = t
			} else {
				t := graph.NewFloat32(shape, nil)
				for k := range t.F32 {
					t.F32[k] = float32(rng.IntN(steps))
				}
				ins[i] = t
			}
		case v.DType == graph.Float32:
			t := graph.NewFloat32(shape, nil)
			for k := range t.F32 {
				t.F32[k] = float32(rng.NormFloat64())
			}
			ins[i] = t
		default:
			return nil, "", fmt.Errorf("cannot generate %s input %q; give --inputs DIR", v.DType, v.Name)
		}
	}
	return ins, fmt.Sprintf("generated (seed %d, batch %d)", seed, batch), nil
}

func compareRow(output, pair string, a, b *graph.Tensor, tols tolerance.Tolerances) validateRow {
	row := validateRow{Output: output, Pair: pair}
	if err := tolerance.Compare(a, b, tols); err != nil {
		row.Problem = oneLine(err.Error())
	} else {
		row.Pass = true
	}
	if a.DType == graph.Float32 && b.DType == graph.Float32 && len(a.F32) == len(b.F32) {
		for i := range a.F32 {
			d := math.Abs(float64(a.F32[i]) - float64(b.F32[i]))
			if math.IsNaN(d) {
				continue
			}
			row.MaxAbs = math.Max(row.MaxAbs, d)
			if w := math.Abs(float64(b.F32[i])); w > 0 {
				row.MaxRel = math.Max(row.MaxRel, d/w)
			}
		}
	}
	return row
}

func printValidate(w io.Writer, r *validateReport) {
	fmt.Fprintf(w, "model   %s\ninputs  %s\n", r.File, r.Inputs)
	fmt.Fprintf(w, "pass if |a−b| ≤ %g + %g·max|b| + %g·|b|\n\n", r.ATol, r.STol, r.RTol)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tCOMPARISON\tMAX ABS ERR\tMAX REL ERR\tRESULT")
	for _, row := range r.Rows {
		res := "pass"
		if !row.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3g\t%.3g\t%s\n", row.Output, row.Pair, row.MaxAbs, row.MaxRel, res)
	}
	tw.Flush()
	for _, row := range r.Rows {
		if row.Problem != "" {
			fmt.Fprintf(w, "  %s, %s: %s\n", row.Output, row.Pair, row.Problem)
		}
	}
	for name, why := range r.Errors {
		fmt.Fprintf(w, "backend %s could not run: %s\n", name, why)
	}
}
