package importer

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Bounds on what a model's metadata may ask for. They are far above any
// real model's needs and far below what would exhaust memory or run for
// days: metadata is read from files and is not trusted.
const (
	MaxLevels         = 100_000    // σ levels
	MaxDiffusionSteps = 1_000_000  // DDPM steps in ebmrun.betas
	MaxSamplerSteps   = 10_000_000 // ebmrun.sampler steps
	MaxSampleRank     = 8          // dimensions of one sample
	MaxSampleElements = 1 << 28    // values of one sample (1 GiB of float32)
	MaxFixedBatch     = 1 << 20    // a data input's fixed first dimension
	maxShownValue     = 80         // characters of a bad value quoted in an error
)

// ErrMetadata is wrapped by every MetadataError.
var ErrMetadata = errors.New("invalid ebmrun metadata")

// MetadataError is a value of a model's ebmrun.* metadata (or of the flag
// that replaced it) that cannot be used.
type MetadataError struct {
	Key    string // "ebmrun.betas", or the flag, "--sigmas"
	Value  string // the offending value, shortened
	Reason string
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("importer: %s %s: %s", e.Key, e.Value, e.Reason)
}

func (e *MetadataError) Unwrap() error { return ErrMetadata }

func metaErr(key string, value any, format string, args ...any) *MetadataError {
	v := fmt.Sprint(value)
	if len(v) > maxShownValue {
		v = v[:maxShownValue] + "…"
	}
	return &MetadataError{Key: key, Value: v, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks what a spec would write as metadata, as validate checks
// what was read: for a spec changed after Spec made it (ebmrun meta).
func (s *ModelSpec) Validate() error { return s.validate() }

// validate checks the spec's schedules and data facts as untrusted input,
// before any of them sizes an allocation or a loop.
func (s *ModelSpec) validate() error {
	sigKey := MetaSigmas
	if s.Reasons["sigmas"] == "flag" {
		sigKey = "--sigmas"
	}
	if s.Sigmas != nil {
		switch {
		case len(s.Sigmas) == 0:
			return metaErr(sigKey, "[]", "the σ schedule is empty; want at least one level")
		case len(s.Sigmas) > MaxLevels:
			return metaErr(sigKey, fmt.Sprintf("[%d levels]", len(s.Sigmas)), "more than %d levels", MaxLevels)
		}
		for i, v := range s.Sigmas {
			if !(v > 0) || math.IsInf(v, 0) {
				return metaErr(sigKey, s.Sigmas, "level %d is %v; every σ must be positive and finite", i+1, v)
			}
		}
	}
	if s.FixedBatch > MaxFixedBatch {
		return metaErr("data input "+s.XInput, s.FixedBatch, "a fixed batch of more than %d", MaxFixedBatch)
	}
	if s.DataShape != nil {
		if err := checkDataShape(s.DataShape, s.Reasons["data_shape"]); err != nil {
			return err
		}
	}
	if r := s.DataRange; r != nil {
		if len(r) != 2 || math.IsInf(r[0], 0) || math.IsInf(r[1], 0) || !(r[0] < r[1]) {
			return metaErr(MetaDataRange, r, "want [lo, hi] with finite lo < hi")
		}
	}
	sd := s.Sampler
	switch {
	case sd.Sampler != "" && !strings.Contains(" ald ula cas pc ddpm ", " "+sd.Sampler+" "):
		return metaErr(MetaSampler, sd.Sampler, "unknown sampler; want ald, ula, cas, pc or ddpm")
	case sd.Steps < 0 || sd.Steps > MaxSamplerSteps:
		return metaErr(MetaSampler, sd.Steps, "steps must be between 0 and %d", MaxSamplerSteps)
	case !finiteNonNeg(sd.StepLR):
		return metaErr(MetaSampler, sd.StepLR, "step_lr must be a finite number ≥ 0")
	case !finiteNonNeg(sd.SNR):
		return metaErr(MetaSampler, sd.SNR, "snr must be a finite number ≥ 0")
	}
	return checkBetas(s.Betas)
}

// checkBetas checks a linear β schedule (nil: none): its steps size the
// sampler's tables and loop.
func checkBetas(b *Betas) error {
	if b == nil {
		return nil
	}
	v := fmt.Sprintf(`{"start": %v, "end": %v, "steps": %d}`, b.Start, b.End, b.Steps)
	switch {
	case b.Steps < 1 || b.Steps > MaxDiffusionSteps:
		return metaErr(MetaBetas, v, "steps must be between 1 and %d", MaxDiffusionSteps)
	case !(b.Start > 0 && b.Start < 1) || !(b.End > 0 && b.End < 1):
		return metaErr(MetaBetas, v, "want 0 < start, end < 1")
	case b.Start > b.End:
		return metaErr(MetaBetas, v, "start must not exceed end")
	}
	return nil
}

// checkDataShape bounds one sample's shape, from metadata or the data
// input's declared shape, before a sampler sizes its buffers by it.
func checkDataShape(shape []int64, reason string) error {
	key := MetaDataShape
	if reason != "metadata" {
		key = "data shape (" + reason + ")"
	}
	if len(shape) == 0 || len(shape) > MaxSampleRank {
		return metaErr(key, shape, "want 1 to %d dimensions", MaxSampleRank)
	}
	n := int64(1)
	for _, d := range shape {
		if d < 1 {
			return metaErr(key, shape, "every dimension must be at least 1")
		}
		if d > MaxSampleElements || n > MaxSampleElements/d {
			return metaErr(key, shape, "one sample of more than %d values", MaxSampleElements)
		}
		n *= d
	}
	return nil
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
