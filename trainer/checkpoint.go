package trainer

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/tensorio"
)

// checkpointFormat is the version of the checkpoint layout.
const checkpointFormat = 1

// checkpoint is everything a step depends on besides the seed and its
// index: the weights, Adam's moments and the averages. The random state
// needs no saving because step k draws from the stream (seed, k).
type checkpoint struct {
	Format      int
	Fingerprint string
	Done        int
	Names       []string
	Params      [][]float32
	M, V        [][]float32
	EMA         [][]float32
	// Settings are the fingerprint by name; Flags what the caller asked to
	// keep with the checkpoint (the command line that made it). Both are
	// absent from checkpoints of older builds.
	Settings []Setting
	Flags    map[string]string
	// CDBuffer is contrastive divergence's replay buffer (nil when the run
	// has none or has not filled it yet): the negatives depend on it.
	CDBuffer []float32
}

// ErrCheckpointMismatch is wrapped when a checkpoint was written by a run
// with other settings than the trainer resuming it.
var ErrCheckpointMismatch = errors.New("checkpoint was written with other settings")

// SaveCheckpoint writes the training state to path atomically (a reader
// sees the old file or the new one, never a torn one).
func (t *Trainer) SaveCheckpoint(path string) error {
	c := checkpoint{
		Format:      checkpointFormat,
		Fingerprint: t.cfg.fingerprint(t.data),
		Done:        t.done,
		Names:       t.net.Params,
		Params:      t.params,
		M:           t.opt.m,
		V:           t.opt.v,
		EMA:         t.ema,
		Settings:    t.cfg.settings(t.data),
		Flags:       t.ckptFlags,
	}
	if t.cd != nil && t.cd.filled {
		c.CDBuffer = t.cd.buffer
	}
	err := tensorio.WriteAtomic(path, func(w io.Writer) error { return gob.NewEncoder(w).Encode(&c) })
	if err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	return nil
}

// SetCheckpointFlags stores flags (a command line's settings, by flag
// name) in every checkpoint this trainer writes; ReadCheckpointFlags reads
// them back, so a resumed run can take its settings from the checkpoint.
func (t *Trainer) SetCheckpointFlags(flags map[string]string) { t.ckptFlags = flags }

// ReadCheckpointFlags returns the flags stored with SetCheckpointFlags; nil
// for a checkpoint written without them.
func ReadCheckpointFlags(path string) (map[string]string, error) {
	c, err := readCheckpoint(path)
	if err != nil {
		return nil, err
	}
	return c.Flags, nil
}

// readCheckpoint decodes a checkpoint file: a regular file only, within the
// memory budget (gob sizes what it decodes by the stream, and the stream is
// the file).
func readCheckpoint(path string) (*checkpoint, error) {
	f, st, err := safefile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	defer f.Close()
	if err := membudget.Check("checkpoint "+path, st.Size()); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	// gob makes a nil map with room for as many entries as the stream
	// claims, before reading one: a few bytes could ask for gigabytes. Into
	// a map that exists it only adds the entries it reads, so start with one.
	c := checkpoint{Flags: map[string]string{}}
	if err := gob.NewDecoder(io.LimitReader(f, st.Size())).Decode(&c); err != nil {
		return nil, fmt.Errorf("trainer: checkpoint %s: %w", path, err)
	}
	if len(c.Flags) == 0 {
		c.Flags = nil // as written: a checkpoint without flags reads back without them
	}
	return &c, nil
}

// diffSettings lists the settings whose values differ, "name saved → now";
// "" when the saved ones are unknown.
func diffSettings(saved, now []Setting) string {
	if len(saved) == 0 {
		return ""
	}
	old := map[string]string{}
	for _, s := range saved {
		old[s.Name] = s.Value
	}
	var out []string
	for _, s := range now {
		if v, ok := old[s.Name]; !ok || v != s.Value {
			out = append(out, fmt.Sprintf("%s %s in the checkpoint, %s now", s.Name, v, s.Value))
		}
	}
	return strings.Join(out, "; ")
}

// LoadCheckpoint restores the state saved by SaveCheckpoint. The trainer
// must have been made with the same settings (Steps and Threads may
// differ); training then continues exactly as the saved run would have.
func (t *Trainer) LoadCheckpoint(path string) error {
	c, err := readCheckpoint(path)
	if err != nil {
		return err
	}
	if err := c.validate(len(t.params)); err != nil {
		return fmt.Errorf("trainer: checkpoint %s: %w", path, err)
	}
	if c.Format != checkpointFormat {
		return fmt.Errorf("trainer: checkpoint %s has format %d, this build reads %d", path, c.Format, checkpointFormat)
	}
	if want := t.cfg.fingerprint(t.data); c.Fingerprint != want {
		if diff := diffSettings(c.Settings, t.cfg.settings(t.data)); diff != "" {
			return fmt.Errorf("trainer: %s: %w: %s", path, ErrCheckpointMismatch, diff)
		}
		return fmt.Errorf("trainer: %s: %w:\n  saved: %s\n  now:   %s", path, ErrCheckpointMismatch, c.Fingerprint, want)
	}
	if len(c.Params) != len(t.params) || len(c.M) != len(t.params) || len(c.V) != len(t.params) || len(c.EMA) != len(t.params) {
		return fmt.Errorf("trainer: checkpoint %s holds %d parameters, the network has %d", path, len(c.Params), len(t.params))
	}
	for i := range t.params {
		n := len(t.params[i])
		if c.Names[i] != t.net.Params[i] || len(c.Params[i]) != n || len(c.M[i]) != n || len(c.V[i]) != n || len(c.EMA[i]) != n {
			return fmt.Errorf("trainer: checkpoint %s: parameter %d (%s) does not match the network's %s of %d values", path, i, c.Names[i], t.net.Params[i], n)
		}
	}
	// Copy into the existing slices: the step's input tensors share them.
	for i := range t.params {
		copy(t.params[i], c.Params[i])
		copy(t.opt.m[i], c.M[i])
		copy(t.opt.v[i], c.V[i])
		copy(t.ema[i], c.EMA[i])
	}
	if t.cd != nil && len(t.cd.buffer) > 0 && c.Done > 0 {
		if len(c.CDBuffer) != len(t.cd.buffer) {
			return fmt.Errorf("trainer: checkpoint %s holds a replay buffer of %d values, the run needs %d", path, len(c.CDBuffer), len(t.cd.buffer))
		}
		copy(t.cd.buffer, c.CDBuffer)
		t.cd.filled = true
	}
	t.done = c.Done
	return nil
}

// ErrBadCheckpoint is wrapped when a checkpoint's content is inconsistent
// or holds values no training run can produce (crafted or corrupt).
var ErrBadCheckpoint = errors.New("invalid checkpoint")

// validate checks a decoded checkpoint as untrusted input: one name and
// four arrays per parameter, a step count that is not negative, finite
// values and second moments that are not negative.
func (c *checkpoint) validate(params int) error {
	if c.Done < 0 {
		return fmt.Errorf("%w: step %d is negative", ErrBadCheckpoint, c.Done)
	}
	for what, n := range map[string]int{"names": len(c.Names), "weights": len(c.Params), "first moments": len(c.M), "second moments": len(c.V), "averages": len(c.EMA)} {
		if n != params {
			return fmt.Errorf("%w: %d %s for a network of %d parameters", ErrBadCheckpoint, n, what, params)
		}
	}
	for _, part := range []struct {
		what   string
		vs     [][]float32
		nonNeg bool
	}{{"weights", c.Params, false}, {"first moments", c.M, false}, {"second moments", c.V, true}, {"averages", c.EMA, false}} {
		for i, v := range part.vs {
			if j := firstNonFinite(v, part.nonNeg); j >= 0 {
				return fmt.Errorf("%w: %s of parameter %d (%s) hold %v at %d", ErrBadCheckpoint, part.what, i, c.Names[i], v[j], j)
			}
		}
	}
	return nil
}

// firstNonFinite is the index of the first NaN or ±Inf in v (or negative
// value when nonNeg), -1 when there is none.
func firstNonFinite(v []float32, nonNeg bool) int {
	for j, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) || (nonNeg && f < 0) {
			return j
		}
	}
	return -1
}
