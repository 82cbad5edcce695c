package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

func init() { commands = append(commands, newInspectCmd) }

// specFlags are the role overrides every command that reads a model takes.
type specFlags struct {
	x, cond, output, condition, kind, sigmas string
}

func (f *specFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.x, "x-input", "", "name of the data input (default: from metadata or inferred)")
	c.Flags().StringVar(&f.cond, "cond-input", "", "name of the noise-condition input")
	c.Flags().StringVar(&f.condition, "condition", "", "noise condition: sigma, labels, time or none")
	c.Flags().StringVar(&f.output, "output", "", "name of the output to use")
	c.Flags().StringVar(&f.kind, "kind", "", "what the output is: score, eps or energy")
}

// withSigmas is overrides with a --sigmas value parsed into it ("" leaves
// the model's schedule); a bad value is a usage error.
func (f *specFlags) withSigmas(sigmas string) (importer.Overrides, error) {
	ov := f.overrides()
	if sigmas != "" {
		var err error
		if ov.Sigmas, err = sampler.ParseSigmas(sigmas); err != nil {
			return ov, usageError{err}
		}
	}
	return ov, nil
}

func (f *specFlags) overrides() importer.Overrides {
	return importer.Overrides{
		XInput: f.x, CondInput: f.cond, Output: f.output,
		Condition: importer.Condition(f.condition), Kind: importer.OutputKind(f.kind),
	}
}

type inspectReport struct {
	File       string               `json:"file"`
	IRVersion  int64                `json:"ir_version"`
	Opsets     map[string]int64     `json:"opsets"`
	Producer   string               `json:"producer"`
	Inputs     []valueReport        `json:"inputs"`
	Outputs    []valueReport        `json:"outputs"`
	Ops        map[string]int       `json:"ops"`
	OpSupport  map[string]opSupport `json:"op_support"`
	Nodes      int                  `json:"nodes"`
	Parameters int64                `json:"parameters"`
	Metadata   map[string]string    `json:"metadata"`
	Spec       *specReport          `json:"spec,omitempty"`
	Classifier *classifierInfo      `json:"classifier,omitempty"`
	SpecError  string               `json:"spec_error,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
	Backends   []backendReport      `json:"backends"`
}

// classifierInfo describes a classifier (ebmrun.kind = classifier).
type classifierInfo struct {
	Logits   string   `json:"logits,omitempty"`
	Features string   `json:"features,omitempty"`
	Classes  []string `json:"classes,omitempty"`
	Error    string   `json:"error,omitempty"`
}

type valueReport struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape string `json:"shape"`
}

type specReport struct {
	XInput    string          `json:"x_input"`
	Condition string          `json:"condition"`
	CondInput string          `json:"condition_input,omitempty"`
	Output    string          `json:"output"`
	Kind      string          `json:"kind"`
	Sigmas    []float64       `json:"sigmas,omitempty"`
	DataShape []int64         `json:"data_shape,omitempty"`
	DataRange []float64       `json:"data_range,omitempty"`
	Betas     *importer.Betas `json:"betas,omitempty"`
	// FixedBatch is the data input's batch size when it was exported fixed.
	FixedBatch int               `json:"fixed_batch,omitempty"`
	Reasons    map[string]string `json:"reasons"`
}

// opSupport says, from graph's op table, which registered backends run an
// op and whether the autodiff differentiates it.
type opSupport struct {
	Backends []string `json:"backends"`
	Gradient string   `json:"gradient"` // "rule", "constant" (no gradient flows) or "missing"
}

// opClaimer is a backend that runs only some ops (native); the others
// (onnxruntime) claim every ONNX op.
type opClaimer interface{ SupportedOps() []string }

func opSupportOf(ops map[string]int) map[string]opSupport {
	claims := map[string]map[string]bool{} // backend → ops; nil: every op
	names := runtime.Names()
	for _, name := range names {
		if b, err := runtime.Get(name); err == nil {
			if oc, ok := b.(opClaimer); ok {
				claims[name] = map[string]bool{}
				for _, op := range oc.SupportedOps() {
					claims[name][op] = true
				}
			}
		}
	}
	grads := map[string]bool{}
	for _, op := range autodiff.Ops() {
		grads[op] = true
	}
	out := map[string]opSupport{}
	for op := range ops {
		s := opSupport{Backends: []string{}, Gradient: "missing"}
		switch {
		case grads[op]:
			s.Gradient = "rule"
		case graph.Op(op) != nil && graph.Op(op).NonDiff:
			s.Gradient = "constant"
		}
		for _, name := range names {
			if c, ok := claims[name]; !ok && graph.Op(op) != nil || c[op] {
				s.Backends = append(s.Backends, name)
			}
		}
		out[op] = s
	}
	return out
}

type backendReport struct {
	Name   string `json:"name"`
	Runs   bool   `json:"runs"`
	Reason string `json:"reason,omitempty"`
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	var sf specFlags
	c := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Describe a model: inputs, outputs, ops, metadata, roles, backends",
		Long: `inspect reads an ONNX model and reports its inputs and outputs, opset and IR
version, producer, an op histogram, its metadata, the score-model roles ebmrun
decided (which input is x, how the noise level is given, what the output
means) with the reason for each, and which backends can run it.

A model that cannot be read or is invalid gives one line on stderr and exit 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			m, err := importer.Load(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
			}
			r := inspect(path, m, sf.overrides())
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printInspect(c.OutOrStdout(), r)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	sf.register(c)
	return c
}

func inspect(path string, m *graph.Model, ov importer.Overrides) *inspectReport {
	r := &inspectReport{
		File:      path,
		IRVersion: m.IRVersion,
		Opsets:    map[string]int64{},
		Producer:  strings.TrimSpace(m.ProducerName + " " + m.ProducerVersion),
		Ops:       m.Graph.OpHistogram(),
		Nodes:     len(m.Graph.Nodes),
		Metadata:  map[string]string{},
	}
	r.OpSupport = opSupportOf(r.Ops)
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		r.Opsets[d] = o.Version
	}
	for _, in := range m.Graph.RuntimeInputs() {
		r.Inputs = append(r.Inputs, valueReport{in.Name, in.DType.String(), shapeString(in)})
	}
	for _, out := range m.Graph.Outputs {
		r.Outputs = append(r.Outputs, valueReport{out.Name, out.DType.String(), shapeString(out)})
	}
	for _, in := range m.Graph.Initializers {
		r.Parameters += in.Tensor.Len()
	}
	for _, p := range m.Metadata {
		r.Metadata[p.Key] = p.Value
	}
	if s, err := importer.Spec(m, ov); err != nil {
		r.SpecError = trimPrefix(err, "importer: ").Error()
		if errors.Is(err, importer.ErrClassifier) {
			r.Classifier = &classifierInfo{}
			if cs, err := importer.Classifier(m); err != nil {
				r.Classifier.Error = trimPrefix(err, "importer: ").Error()
			} else {
				r.Classifier.Logits, r.Classifier.Features, r.Classifier.Classes = cs.Logits, cs.Features, cs.Classes
			}
		}
	} else {
		r.Spec = &specReport{
			XInput: s.XInput, Condition: string(s.Condition), CondInput: s.CondInput,
			Output: s.Output, Kind: string(s.Kind), Sigmas: s.Sigmas,
			DataShape: s.DataShape, DataRange: s.DataRange, Betas: s.Betas, FixedBatch: s.FixedBatch, Reasons: s.Reasons,
		}
		r.Warnings = specWarnings(path, s)
	}
	for _, name := range runtime.Names() {
		br := backendReport{Name: name}
		b, err := runtime.Get(name)
		if err == nil {
			var p runtime.Plan
			p, err = b.Prepare(m, runtime.Options{Threads: 1})
			if err == nil {
				p.Close()
			}
		}
		br.Runs = err == nil
		if err != nil {
			br.Reason = oneLine(trimPrefix(err, "runtime: ").Error())
		}
		r.Backends = append(r.Backends, br)
	}
	return r
}

func shapeString(v graph.ValueInfo) string {
	if v.NonTensor != "" {
		return v.NonTensor
	}
	if !v.HasShape {
		return "rank unknown"
	}
	return v.Shape.String()
}

func printInspect(w io.Writer, r *inspectReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	opsets := make([]string, 0, len(r.Opsets))
	for d, v := range r.Opsets {
		opsets = append(opsets, fmt.Sprintf("%s %d", d, v))
	}
	sort.Strings(opsets)
	fmt.Fprintf(tw, "model\t%s\n", r.File)
	fmt.Fprintf(tw, "producer\t%s\n", orDash(r.Producer))
	fmt.Fprintf(tw, "format\tIR version %d, opset %s\n", r.IRVersion, strings.Join(opsets, ", "))
	fmt.Fprintf(tw, "size\t%d nodes, %d parameters\n", r.Nodes, r.Parameters)
	fmt.Fprintln(tw, "inputs")
	for _, v := range r.Inputs {
		fmt.Fprintf(tw, "  %s\t%s %s\n", v.Name, v.DType, v.Shape)
	}
	fmt.Fprintln(tw, "outputs")
	for _, v := range r.Outputs {
		fmt.Fprintf(tw, "  %s\t%s %s\n", v.Name, v.DType, v.Shape)
	}
	ops := make([]string, 0, len(r.Ops))
	for op := range r.Ops {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if r.Ops[ops[i]] != r.Ops[ops[j]] {
			return r.Ops[ops[i]] > r.Ops[ops[j]]
		}
		return ops[i] < ops[j]
	})
	fmt.Fprintln(tw, "ops\tnodes\tbackends\tgradient")
	for _, op := range ops {
		sup := r.OpSupport[op]
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", op, r.Ops[op], orDash(strings.Join(sup.Backends, " ")), sup.Gradient)
	}
	if len(r.Metadata) > 0 {
		fmt.Fprintln(tw, "metadata")
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, r.Metadata[k])
		}
	}
	if c := r.Classifier; c != nil {
		fmt.Fprintln(tw, "classifier\t(ebmrun.kind = classifier: it measures samples, ebmrun compare --classifier and ebmrun classify; sample refuses it)")
		if c.Error != "" {
			fmt.Fprintf(tw, "  invalid\t%s\n", c.Error)
		} else {
			fmt.Fprintf(tw, "  outputs\tlogits %s, features %s\n", c.Logits, c.Features)
			fmt.Fprintf(tw, "  classes\t%d: %s\n", len(c.Classes), strings.Join(c.Classes, ", "))
		}
	} else {
		fmt.Fprintln(tw, "score-model roles")
	}
	switch {
	case r.Classifier != nil: // said above
	case r.Spec == nil:
		fmt.Fprintf(tw, "  undecided\t%s\n", r.SpecError)
	default:
		s := r.Spec
		fmt.Fprintf(tw, "  x\t%s\t(%s)\n", s.XInput, s.Reasons["x"])
		cond := s.Condition
		if s.CondInput != "" {
			cond += " from input " + s.CondInput
		}
		fmt.Fprintf(tw, "  condition\t%s\t(%s)\n", cond, s.Reasons["condition"])
		fmt.Fprintf(tw, "  output\t%s is a %s\t(%s; %s)\n", s.Output, s.Kind, s.Reasons["output"], s.Reasons["kind"])
		if len(s.Sigmas) > 0 {
			fmt.Fprintf(tw, "  sigmas\t%d levels, %g → %g\t(%s)\n", len(s.Sigmas), s.Sigmas[0], s.Sigmas[len(s.Sigmas)-1], s.Reasons["sigmas"])
		} else if why := s.Reasons["sigmas"]; why != "" {
			fmt.Fprintf(tw, "  sigmas\t-\t(%s)\n", why)
		}
		if s.DataShape != nil {
			fmt.Fprintf(tw, "  data shape\t%v\t(%s)\n", s.DataShape, s.Reasons["data_shape"])
		}
		if s.DataRange != nil {
			fmt.Fprintf(tw, "  data range\t%v\t(%s)\n", s.DataRange, s.Reasons["data_range"])
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(tw, "warnings")
		for _, w := range r.Warnings {
			fmt.Fprintf(tw, "  %s\n", w)
		}
	}
	fmt.Fprintln(tw, "backends")
	if len(r.Backends) == 0 {
		fmt.Fprintln(tw, "  none registered")
	}
	for _, b := range r.Backends {
		if b.Runs {
			fmt.Fprintf(tw, "  %s\truns it\n", b.Name)
		} else {
			fmt.Fprintf(tw, "  %s\tcannot: %s\n", b.Name, b.Reason)
		}
	}
}

// specWarnings are what a user should fix before sampling: a missing σ
// schedule, a batch size fixed at export.
func specWarnings(path string, s *importer.ModelSpec) []string {
	var out []string
	if (s.Condition == importer.CondSigma || s.Condition == importer.CondLabels) && s.Sigmas == nil {
		w := fmt.Sprintf("no σ schedule: sample refuses this %s model until it has one; store the σ it was trained on once with `ebmrun meta %s -o OUT --sigmas geom:MAX,MIN,L` (or pass --sigmas)", condWord(s.Condition), path)
		if s.Condition == importer.CondLabels {
			w += fmt.Sprintf("; if %q is a DDPM time step, give its β schedule instead (--betas linear:START,END,STEPS)", s.CondInput)
		}
		out = append(out, w)
	}
	if s.FixedBatch > 0 {
		out = append(out, fmt.Sprintf("fixed batch: input %q was exported for batches of exactly %d; ebmrun runs it %d samples at a time, padding the last, which is slower than one call per batch; re-export with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={%q: {0: \"N\"}, …}) for every input and output)", s.XInput, s.FixedBatch, s.FixedBatch, s.XInput))
	}
	return out
}

// condWord names a condition in prose.
func condWord(c importer.Condition) string {
	switch c {
	case importer.CondSigma:
		return "σ-conditioned"
	case importer.CondLabels:
		return "label-conditioned"
	case importer.CondTime:
		return "time-conditioned"
	}
	return "unconditional"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// trimPrefix drops a package prefix from an error for messages that already
// say where they come from, keeping the error chain for errors.Is.
func trimPrefix(err error, prefix string) error {
	msg := err.Error()
	if strings.HasPrefix(msg, prefix) {
		return prefixTrimmed{msg[len(prefix):], err}
	}
	return err
}

type prefixTrimmed struct {
	msg string
	err error
}

func (p prefixTrimmed) Error() string { return p.msg }
func (p prefixTrimmed) Unwrap() error { return p.err }

// oneLine folds a multi-line error (errors.Join) into one line.
func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
	return shorten(s, maxErrorLine)
}

// maxErrorLine is the longest error line printed, in bytes: a message
// nested through many subgraphs (If inside If …) keeps its beginning, which
// says what failed, and its end, which says why.
const maxErrorLine = 400

// shorten keeps the first and last parts of s around " … " when s is longer
// than n bytes, cutting at rune boundaries.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := n*2/3, n/3-5
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	cut := len(s) - tail
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[:head] + " … " + s[cut:]
}
