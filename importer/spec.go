package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// Metadata keys the trainer writes and ModelSpec reads. Every key is optional;
// what is missing is inferred from the graph. JSON values are noted.
const (
	MetaKind           = "ebmrun.kind"            // score | eps | energy
	MetaCondition      = "ebmrun.condition"       // sigma | labels | time | none
	MetaXInput         = "ebmrun.x_input"         // name of the data input
	MetaConditionInput = "ebmrun.condition_input" // name of the noise-condition input
	MetaOutput         = "ebmrun.output"          // name of the output used
	MetaSigmas         = "ebmrun.sigmas"          // JSON list, descending σ schedule
	MetaDataShape      = "ebmrun.data_shape"      // JSON list, shape of one sample
	MetaDataRange      = "ebmrun.data_range"      // JSON [lo, hi]
	MetaSampler        = "ebmrun.sampler"         // JSON SamplerDefaults
	MetaBetas          = "ebmrun.betas"           // JSON {"start":…,"end":…,"steps":…} for ε-models with a time input
	MetaProvenance     = "ebmrun.provenance"      // JSON object: dataset, loss, steps, seed, version …
)

// Condition is how a model is told the noise level.
type Condition string

// Noise conditions.
const (
	CondSigma  Condition = "sigma"  // float σ per sample, [N] or [N,1]
	CondLabels Condition = "labels" // int64 index into the σ schedule, [N]
	CondTime   Condition = "time"   // diffusion step t per sample, [N]
	CondNone   Condition = "none"   // unconditional
)

// OutputKind is what a model's output means.
type OutputKind string

// Output kinds.
const (
	OutScore  OutputKind = "score"  // ∇x log p_σ(x)
	OutEps    OutputKind = "eps"    // predicted noise ε
	OutEnergy OutputKind = "energy" // scalar E(x) per sample; s = −∇x E
)

// SamplerDefaults are the sampler settings a model recommends.
type SamplerDefaults struct {
	Sampler string  `json:"sampler,omitempty"` // ald | ula | cas | pc | ddpm
	Steps   int     `json:"steps,omitempty"`   // per σ level
	StepLR  float64 `json:"step_lr,omitempty"` // ε of annealed Langevin
	SNR     float64 `json:"snr,omitempty"`     // predictor–corrector
	Denoise bool    `json:"denoise,omitempty"` // final denoising step
}

// Betas is a linear DDPM β schedule.
type Betas struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Steps int     `json:"steps"`
}

// ModelSpec says which input is the data, how the noise level is given, and
// what the output means — the score-model contract of docs/design.md.
type ModelSpec struct {
	XInput     string
	CondInput  string // "" when Condition is CondNone
	Condition  Condition
	CondRank   int // rank of the condition input: 1 for [N], 2 for [N,1]
	Output     string
	Kind       OutputKind
	Sigmas     []float64 // descending; nil when unknown
	DataShape  []int64   // one sample's shape; nil when unknown
	DataRange  []float64 // [lo, hi]; nil when unknown
	Sampler    SamplerDefaults
	Betas      *Betas
	Provenance map[string]any
	// FixedBatch is the batch size the data input was exported with when it
	// is fixed ([16,2] rather than [N,2]); 0 for a dynamic batch. Such a
	// model runs only on batches of exactly that many samples.
	FixedBatch int
	// Reasons says, per role ("x", "condition", "output", "kind", "sigmas",
	// "data_shape", "data_range"), where the decision came from:
	// "metadata", "flag", or "inferred from …".
	Reasons map[string]string
}

// Overrides are roles and facts set by the user (flags); empty fields are
// not set. Each wins over the model's metadata.
type Overrides struct {
	XInput, CondInput, Output string
	Condition                 Condition
	Kind                      OutputKind
	Sigmas                    []float64
	DataShape                 []int64
	DataRange                 []float64 // [lo, hi]
	Betas                     *Betas
}

// Spec decides the model's roles: metadata first, then names, dtypes and
// shapes; the overrides win over both.
func Spec(m *graph.Model, ov Overrides) (*ModelSpec, error) {
	s := &ModelSpec{Reasons: map[string]string{}}
	meta := func(k string) string { v, _ := m.Meta(k); return strings.TrimSpace(v) }
	ins := m.Graph.RuntimeInputs()
	if len(ins) == 0 {
		return nil, fmt.Errorf("importer: model has no inputs")
	}
	if len(m.Graph.Outputs) == 0 {
		return nil, fmt.Errorf("importer: model has no outputs")
	}
	if IsClassifier(m) && ov.Kind == "" {
		return nil, fmt.Errorf("importer: %w", ErrClassifier)
	}
	byName := map[string]graph.ValueInfo{}
	for _, in := range ins {
		byName[in.Name] = in
	}

	// The data input.
	switch {
	case ov.XInput != "":
		s.XInput, s.Reasons["x"] = ov.XInput, "flag"
	case meta(MetaXInput) != "":
		s.XInput, s.Reasons["x"] = meta(MetaXInput), "metadata"
	default:
		s.XInput, s.Reasons["x"] = inferX(ins)
	}
	x, ok := byName[s.XInput]
	if !ok {
		return nil, fmt.Errorf("importer: data input %q is not an input of the model (inputs: %s)", s.XInput, names(ins))
	}
	if x.DType != graph.Float32 {
		return nil, fmt.Errorf("importer: data input %q is %s, want float32", x.Name, x.DType)
	}

	// The noise condition.
	var rest []graph.ValueInfo
	for _, in := range ins {
		if in.Name != s.XInput {
			rest = append(rest, in)
		}
	}
	switch {
	case ov.CondInput != "" || ov.Condition != "":
		s.CondInput, s.Condition = ov.CondInput, ov.Condition
		s.Reasons["condition"] = "flag"
	case meta(MetaCondition) != "":
		s.Condition, s.CondInput = Condition(meta(MetaCondition)), meta(MetaConditionInput)
		s.Reasons["condition"] = "metadata"
	default:
		// A β schedule without a σ schedule marks a diffusion model, whose
		// second input is its time step whatever it is called.
		diffusion := (ov.Betas != nil || meta(MetaBetas) != "") && len(ov.Sigmas) == 0 && meta(MetaSigmas) == ""
		s.CondInput, s.Condition, s.Reasons["condition"] = inferCondition(rest, diffusion)
	}
	if s.Condition != CondNone && s.CondInput == "" && len(rest) == 1 {
		s.CondInput = rest[0].Name
	}
	if s.Condition == "" && s.CondInput != "" {
		if c, ok := byName[s.CondInput]; ok {
			_, s.Condition, _ = inferCondition([]graph.ValueInfo{c}, false)
		}
	}
	switch s.Condition {
	case CondNone:
		s.CondInput = ""
	case CondSigma, CondLabels, CondTime:
		c, ok := byName[s.CondInput]
		if !ok {
			return nil, fmt.Errorf("importer: condition input %q is not an input of the model (inputs: %s)", s.CondInput, names(ins))
		}
		s.CondRank = 1
		if c.HasShape {
			s.CondRank = len(c.Shape)
		}
		if s.CondRank < 1 || s.CondRank > 2 || (s.CondRank == 2 && c.Shape[1].Known() && c.Shape[1].Value != 1) {
			return nil, fmt.Errorf("importer: condition input %q has shape %s, want [N] or [N,1]", c.Name, c.Shape)
		}
		if s.Condition == CondLabels && c.DType != graph.Int64 {
			return nil, fmt.Errorf("importer: label input %q is %s, want int64", c.Name, c.DType)
		}
		if s.Condition == CondSigma && c.DType != graph.Float32 {
			return nil, fmt.Errorf("importer: σ input %q is %s, want float32", c.Name, c.DType)
		}
	default:
		return nil, fmt.Errorf("importer: unknown noise condition %q (want sigma, labels, time or none)", s.Condition)
	}
	for _, in := range rest {
		if in.Name != s.CondInput {
			return nil, fmt.Errorf("importer: input %q has no role (data input %q, condition input %q); set roles with flags or ebmrun.* metadata", in.Name, s.XInput, s.CondInput)
		}
	}

	// The output.
	switch {
	case ov.Output != "":
		s.Output, s.Reasons["output"] = ov.Output, "flag"
	case meta(MetaOutput) != "":
		s.Output, s.Reasons["output"] = meta(MetaOutput), "metadata"
	default:
		s.Output, s.Reasons["output"] = m.Graph.Outputs[0].Name, "inferred: first output"
	}
	var out *graph.ValueInfo
	for i := range m.Graph.Outputs {
		if m.Graph.Outputs[i].Name == s.Output {
			out = &m.Graph.Outputs[i]
		}
	}
	if out == nil {
		return nil, fmt.Errorf("importer: output %q is not an output of the model", s.Output)
	}
	switch {
	case ov.Kind != "":
		s.Kind, s.Reasons["kind"] = ov.Kind, "flag"
	case meta(MetaKind) != "":
		s.Kind, s.Reasons["kind"] = OutputKind(meta(MetaKind)), "metadata"
	default:
		s.Kind, s.Reasons["kind"] = inferKind(*out, x, s.Condition)
	}
	switch s.Kind {
	case OutScore, OutEps, OutEnergy:
	default:
		return nil, fmt.Errorf("importer: unknown output kind %q (want score, eps or energy)", s.Kind)
	}

	// Schedules and data facts.
	if err := s.readFacts(m, ov, x); err != nil {
		return nil, err
	}
	if (s.Condition == CondLabels || s.Condition == CondSigma) && s.Sigmas == nil {
		s.Reasons["sigmas"] = "unknown: the model is sampled only on the σ it was trained on; give --sigmas or store them with `ebmrun meta MODEL -o OUT --sigmas …`"
	}
	if x.HasShape && len(x.Shape) > 0 && x.Shape[0].Known() && x.Shape[0].Value > 0 {
		s.FixedBatch = int(x.Shape[0].Value)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ModelSpec) readFacts(m *graph.Model, ov Overrides, x graph.ValueInfo) error {
	meta := func(k string) string { v, _ := m.Meta(k); return strings.TrimSpace(v) }
	switch {
	case len(ov.Sigmas) > 0:
		s.Sigmas, s.Reasons["sigmas"] = ov.Sigmas, "flag"
	case meta(MetaSigmas) != "":
		if err := json.Unmarshal([]byte(meta(MetaSigmas)), &s.Sigmas); err != nil {
			return fmt.Errorf("importer: metadata %s: %v", MetaSigmas, err)
		}
		s.Reasons["sigmas"] = "metadata"
	}
	for i, v := range s.Sigmas {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("importer: σ schedule entry %d is %v; every σ must be positive and finite", i, v)
		}
	}
	if len(ov.DataShape) > 0 {
		s.DataShape, s.Reasons["data_shape"] = ov.DataShape, "flag"
	} else if v := meta(MetaDataShape); v != "" {
		if err := json.Unmarshal([]byte(v), &s.DataShape); err != nil {
			return fmt.Errorf("importer: metadata %s: %v", MetaDataShape, err)
		}
		s.Reasons["data_shape"] = "metadata"
	} else if x.HasShape && len(x.Shape) >= 2 {
		dims := x.Shape[1:].Ints()
		known := true
		for _, d := range dims {
			known = known && d > 0
		}
		if known {
			s.DataShape, s.Reasons["data_shape"] = dims, "inferred from the shape of "+x.Name
		}
	}
	if len(ov.DataRange) > 0 {
		if len(ov.DataRange) != 2 || !(ov.DataRange[0] < ov.DataRange[1]) {
			return fmt.Errorf("importer: data range %v: want [lo, hi] with lo < hi", ov.DataRange)
		}
		s.DataRange, s.Reasons["data_range"] = ov.DataRange, "flag"
	} else if v := meta(MetaDataRange); v != "" {
		if err := json.Unmarshal([]byte(v), &s.DataRange); err != nil || len(s.DataRange) != 2 || !(s.DataRange[0] < s.DataRange[1]) {
			return fmt.Errorf("importer: metadata %s must be [lo, hi] with lo < hi, got %s", MetaDataRange, v)
		}
		s.Reasons["data_range"] = "metadata"
	}
	if v := meta(MetaSampler); v != "" {
		if err := json.Unmarshal([]byte(v), &s.Sampler); err != nil {
			return fmt.Errorf("importer: metadata %s: %v", MetaSampler, err)
		}
	}
	if ov.Betas != nil {
		b := *ov.Betas
		s.Betas, s.Reasons["betas"] = &b, "flag"
	} else if v := meta(MetaBetas); v != "" {
		s.Betas = new(Betas)
		if err := json.Unmarshal([]byte(v), s.Betas); err != nil {
			return fmt.Errorf("importer: metadata %s: %v", MetaBetas, err)
		}
		s.Reasons["betas"] = "metadata"
	}
	if err := checkBetas(s.Betas); err != nil {
		return err
	}
	if v := meta(MetaProvenance); v != "" {
		if err := json.Unmarshal([]byte(v), &s.Provenance); err != nil {
			return fmt.Errorf("importer: metadata %s: %v", MetaProvenance, err)
		}
	}
	return nil
}

// WriteMetadata stores the spec in the model's metadata under the ebmrun.*
// keys, so a model exported by ebmrun needs no flags.
func (s *ModelSpec) WriteMetadata(m *graph.Model) error {
	kv, err := s.Metadata()
	if err != nil {
		return err
	}
	for _, k := range MetaKeys {
		if v, ok := kv[k]; ok {
			m.SetMeta(k, v)
		}
	}
	return nil
}

// MetaKeys are the metadata keys ebmrun reads, in the order it writes them.
var MetaKeys = []string{MetaKind, MetaCondition, MetaXInput, MetaConditionInput, MetaOutput, MetaSigmas,
	MetaDataShape, MetaDataRange, MetaSampler, MetaBetas, MetaProvenance}

// Metadata is the spec as ebmrun.* metadata: key → value, JSON where the
// key's value is structured. Facts that are unknown have no key.
func (s *ModelSpec) Metadata() (map[string]string, error) {
	kv := map[string]string{
		MetaKind:      string(s.Kind),
		MetaCondition: string(s.Condition),
		MetaXInput:    s.XInput,
		MetaOutput:    s.Output,
	}
	if s.CondInput != "" {
		kv[MetaConditionInput] = s.CondInput
	}
	set := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("importer: writing metadata %s: %w", k, err)
		}
		kv[k] = string(b)
		return nil
	}
	var errs []error
	if s.Sigmas != nil {
		errs = append(errs, set(MetaSigmas, s.Sigmas))
	}
	if s.DataShape != nil {
		errs = append(errs, set(MetaDataShape, s.DataShape))
	}
	if s.DataRange != nil {
		errs = append(errs, set(MetaDataRange, s.DataRange))
	}
	if s.Sampler != (SamplerDefaults{}) {
		errs = append(errs, set(MetaSampler, s.Sampler))
	}
	if s.Betas != nil {
		errs = append(errs, set(MetaBetas, s.Betas))
	}
	if s.Provenance != nil {
		errs = append(errs, set(MetaProvenance, s.Provenance))
	}
	return kv, errors.Join(errs...)
}

var (
	xNames     = []string{"x", "input", "inputs", "data", "sample", "samples", "images", "image", "x_t", "xt", "input.1"}
	sigmaNames = []string{"sigma", "sigmas", "noise_level", "noise_levels", "std", "log_sigma"}
	labelNames = []string{"labels", "label", "y", "noise_label", "level", "levels", "sigma_index", "idx"}
	timeNames  = []string{"t", "time", "times", "timestep", "timesteps", "step", "steps"}
	// diffusionTimeNames are read as a time step when the model has a β
	// schedule: DDPM code often calls it labels.
	diffusionTimeNames = append([]string{"labels", "label", "noise_label", "noise_labels"}, timeNames...)
)

func has(list []string, name string) bool {
	name = strings.ToLower(name)
	for _, n := range list {
		if n == name {
			return true
		}
	}
	return false
}

func names(vs []graph.ValueInfo) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.Quote(v.Name)
	}
	return strings.Join(out, ", ")
}

func inferX(ins []graph.ValueInfo) (string, string) {
	for _, in := range ins {
		if has(xNames, in.Name) && in.DType == graph.Float32 {
			return in.Name, fmt.Sprintf("inferred from name %q", in.Name)
		}
	}
	// The float input of the highest rank is the data; a σ or t is [N] or [N,1].
	best, rank := "", -1
	for _, in := range ins {
		if in.DType == graph.Float32 && in.HasShape && len(in.Shape) > rank {
			best, rank = in.Name, len(in.Shape)
		}
	}
	if best != "" {
		return best, fmt.Sprintf("inferred: float32 input of highest rank (%d)", rank)
	}
	return ins[0].Name, "inferred: first input"
}

func inferCondition(rest []graph.ValueInfo, diffusion bool) (string, Condition, string) {
	if len(rest) == 0 {
		return "", CondNone, "inferred: the model has only a data input"
	}
	if diffusion {
		for _, in := range rest {
			if has(diffusionTimeNames, in.Name) {
				return in.Name, CondTime, fmt.Sprintf("inferred from name %q and the model's β schedule (%s): a diffusion time step", in.Name, MetaBetas)
			}
		}
		if len(rest) == 1 && (rest[0].DType == graph.Int64 || rest[0].DType == graph.Float32) {
			return rest[0].Name, CondTime, fmt.Sprintf("inferred: the one other input %q, with the model's β schedule (%s), is a diffusion time step", rest[0].Name, MetaBetas)
		}
	}
	for _, in := range rest {
		switch {
		case has(sigmaNames, in.Name) && in.DType == graph.Float32:
			return in.Name, CondSigma, fmt.Sprintf("inferred from name %q (float32)", in.Name)
		case has(labelNames, in.Name) && in.DType == graph.Int64:
			return in.Name, CondLabels, fmt.Sprintf("inferred from name %q (int64)", in.Name)
		case has(timeNames, in.Name):
			return in.Name, CondTime, fmt.Sprintf("inferred from name %q", in.Name)
		}
	}
	if len(rest) == 1 {
		in := rest[0]
		if in.DType == graph.Int64 {
			return in.Name, CondLabels, fmt.Sprintf("inferred: the one other input %q is int64", in.Name)
		}
		return in.Name, CondSigma, fmt.Sprintf("inferred: the one other input %q is float32", in.Name)
	}
	return "", "", fmt.Sprintf("could not tell which of %s is the noise condition", names(rest))
}

func inferKind(out, x graph.ValueInfo, cond Condition) (OutputKind, string) {
	n := strings.ToLower(out.Name)
	switch {
	case strings.Contains(n, "energy") || n == "e":
		return OutEnergy, fmt.Sprintf("inferred from name %q", out.Name)
	case strings.Contains(n, "eps") || strings.Contains(n, "noise"):
		return OutEps, fmt.Sprintf("inferred from name %q", out.Name)
	case strings.Contains(n, "score"):
		return OutScore, fmt.Sprintf("inferred from name %q", out.Name)
	}
	if out.HasShape && len(out.Shape) == 1 || (out.HasShape && len(out.Shape) == 2 && out.Shape[1].Known() && out.Shape[1].Value == 1 && x.HasShape && len(x.Shape) == 2 && !(x.Shape[1].Known() && x.Shape[1].Value == 1)) {
		return OutEnergy, "inferred: one scalar per sample"
	}
	if cond == CondTime {
		return OutEps, "inferred: a time-conditioned model's output shaped like the data predicts the noise ε"
	}
	return OutScore, "inferred: output shaped like the data"
}
