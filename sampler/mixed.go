package sampler

import (
	"errors"
	"fmt"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
)

// ErrMixedFixedBatch is returned by ScoreEach for a model exported with a
// fixed batch size: its rows are scored in groups of one noise level instead.
var ErrMixedFixedBatch = errors.New("sampler: a fixed-batch model scores one noise level per call")

// ScoreEach is Score with a noise level per sample: row i of x is scored at
// noise[i]. It lets a service merge chains at different σ levels or DDPM
// steps into one model call; on a batch-invariant backend (native) each
// row's score is bit-identical to what Score gives it alone.
func (m *ModelScorer) ScoreEach(dst, x []float32, noise []Noise) error {
	n := len(noise)
	if n == 0 || len(x)%n != 0 || len(dst) < len(x) {
		return fmt.Errorf("sampler: score of %d samples from %d values into %d", n, len(x), len(dst))
	}
	if m.spec.FixedBatch > 0 && m.spec.FixedBatch != n {
		return ErrMixedFixedBatch
	}
	d := len(x) / n
	if len(m.spec.DataShape) == 0 {
		m.xShape = append(m.xShape[:1], int64(d))
	} else if graph.NumElements(m.xShape[1:]) != int64(d) {
		return fmt.Errorf("sampler: samples of %d values do not fit the model's data shape %v", d, m.spec.DataShape)
	}
	m.xShape[0] = int64(n)
	m.x.Shape, m.x.F32 = m.xShape, x
	if err := m.setCondEach(noise); err != nil {
		return err
	}
	dst = dst[:len(x)]
	m.out.F32 = dst
	if err := m.sess.Run(m.ins, m.outs); err != nil {
		return fmt.Errorf("sampler: model: %w", err)
	}
	got := m.out.F32
	if len(got) != len(dst) {
		return fmt.Errorf("sampler: model output %q has %d values for %d samples of %d", m.spec.Output, len(got), n, d)
	}
	if &got[0] != &dst[0] {
		copy(dst, got)
	}
	if m.spec.Kind == importer.OutEps {
		for i, nz := range noise {
			c := -1 / nz.Sigma
			row := dst[i*d : (i+1)*d]
			for j := range row {
				row[j] *= c
			}
		}
	}
	return nil
}

// setCondEach fills the condition input row by row.
func (m *ModelScorer) setCondEach(noise []Noise) error {
	t := m.cond
	if t == nil {
		return nil
	}
	n := len(noise)
	t.Shape[0] = int64(n)
	switch m.spec.Condition {
	case importer.CondSigma:
		t.F32 = fill(t.F32, n, 0)
		for i, nz := range noise {
			t.F32[i] = nz.Sigma
		}
	case importer.CondLabels:
		t.I64 = fill(t.I64, n, 0)
		for i, nz := range noise {
			l, err := m.label(nz)
			if err != nil {
				return err
			}
			t.I64[i] = int64(l)
		}
	case importer.CondTime:
		if t.DType == graph.Int64 {
			t.I64 = fill(t.I64, n, 0)
		} else {
			t.F32 = fill(t.F32, n, 0)
		}
		for i, nz := range noise {
			if nz.Time < 0 {
				return errors.New("sampler: a time-conditioned model is sampled with ddpm, which gives it a time step")
			}
			if t.DType == graph.Int64 {
				t.I64[i] = int64(nz.Time)
			} else {
				t.F32[i] = float32(nz.Time)
			}
		}
	}
	return nil
}
