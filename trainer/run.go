package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// RunOptions say what Run does around the steps.
type RunOptions struct {
	// Checkpoint is where checkpoints go; "" writes none.
	Checkpoint string
	// CheckpointEvery writes a checkpoint every this many steps (and always
	// at the end and on interruption); 0: only then.
	CheckpointEvery int
	// Log receives one JSON object per line every LogEvery steps (default
	// 100) and at the end: see LogRecord.
	Log      io.Writer
	LogEvery int
	// Progress, when set, is called after every step.
	Progress func(s *StepStats)
}

// LogRecord is one line of the JSON-lines training log, averaged over the
// steps since the previous line.
type LogRecord struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`
	GradNorm float64 `json:"grad_norm"`
	LR       float64 `json:"lr"`
	// SigmaLoss is the mean per-sample loss at each σ level (Config.Sigmas
	// order; null for levels no sample was drawn at).
	SigmaLoss []*float64 `json:"sigma_loss"`
	// EnergyPos and EnergyNeg are CD's mean data and negative energies.
	EnergyPos *float64 `json:"energy_pos,omitempty"`
	EnergyNeg *float64 `json:"energy_neg,omitempty"`
	StepMS    float64  `json:"step_ms"`
	Elapsed   float64  `json:"elapsed_s"`
}

// ErrInterrupted is returned by Run when its context ends; the checkpoint
// (if any) holds the state after the last completed step.
var ErrInterrupted = errors.New("trainer: interrupted")

// Run takes steps until Config.Steps are done, or ctx ends. It writes
// checkpoints and the log as opts say. Interrupted, it saves a checkpoint
// and returns an error wrapping ErrInterrupted and ctx's error.
func (t *Trainer) Run(ctx context.Context, opts RunOptions) error {
	every := opts.LogEvery
	if every <= 0 {
		every = 100
	}
	start := time.Now()
	var (
		n                  int
		loss, norm, lr, ms float64
		epos, eneg         float64
		lsum               = make([]float64, len(t.cfg.Sigmas))
		lcnt               = make([]int, len(t.cfg.Sigmas))
	)
	flush := func() error {
		if opts.Log == nil || n == 0 {
			return nil
		}
		rec := LogRecord{Step: t.done, Loss: loss / float64(n), GradNorm: norm / float64(n), LR: lr,
			StepMS: ms / float64(n), Elapsed: time.Since(start).Seconds()}
		for i := range lsum {
			if lcnt[i] > 0 {
				v := lsum[i] / float64(lcnt[i])
				rec.SigmaLoss = append(rec.SigmaLoss, &v)
			} else {
				rec.SigmaLoss = append(rec.SigmaLoss, nil)
			}
		}
		if t.cd != nil {
			p, q := epos/float64(n), eneg/float64(n)
			rec.EnergyPos, rec.EnergyNeg = &p, &q
		}
		n, loss, norm, ms, epos, eneg = 0, 0, 0, 0, 0, 0
		clear(lsum)
		clear(lcnt)
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = opts.Log.Write(append(b, '\n'))
		return err
	}
	save := func() error {
		if opts.Checkpoint == "" {
			return nil
		}
		return t.SaveCheckpoint(opts.Checkpoint)
	}
	for t.done < t.cfg.Steps {
		if err := ctx.Err(); err != nil {
			ferr := flush()
			return errors.Join(fmt.Errorf("%w at step %d: %w", ErrInterrupted, t.done, err), save(), ferr)
		}
		t0 := time.Now()
		s, err := t.Step()
		if err != nil {
			return errors.Join(err, flush())
		}
		n++
		loss += s.Loss
		norm += s.GradNorm
		epos += s.EnergyPos
		eneg += s.EnergyNeg
		lr = s.LR
		ms += float64(time.Since(t0).Microseconds()) / 1000
		for i := range lsum {
			lsum[i] += s.LevelSum[i]
			lcnt[i] += s.LevelCount[i]
		}
		if opts.Progress != nil {
			opts.Progress(s)
		}
		if t.done%every == 0 || t.done == t.cfg.Steps {
			if err := flush(); err != nil {
				return fmt.Errorf("trainer: log: %w", err)
			}
		}
		if opts.CheckpointEvery > 0 && t.done%opts.CheckpointEvery == 0 && t.done < t.cfg.Steps {
			if err := save(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("trainer: log: %w", err)
	}
	return save()
}
