package sampler

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// Noise is the noise level a score is asked at.
type Noise struct {
	// Sigma is the noise standard deviation: σ_i of a VE schedule, or
	// √(1−ᾱ_t) at a DDPM step, which is what an ε-prediction is divided by
	// to give the score.
	Sigma float32
	// Level is the index of Sigma in the sampler's schedule, or −1. A
	// label-conditioned model checks it against its own schedule.
	Level int
	// Time is the DDPM step t, or −1 outside DDPM; time-conditioned models
	// take it as their input.
	Time int
	// Between says Sigma may lie between the levels of a label-conditioned
	// model's schedule (continuous-σ samplers: ode, em): the model then
	// interpolates σ·s linearly in log σ between its two neighbouring
	// levels, at the cost of two evaluations. Other samplers leave it false
	// and an off-schedule σ is an error.
	Between bool
}

// VENoise is the noise of level i (0-based) of a VE schedule.
func VENoise(level int, sigma float64) Noise {
	return Noise{Sigma: float32(sigma), Level: level, Time: -1}
}

// Scorer computes the score ∇x log p_σ(x) of a batch. x holds n samples of
// len(x)/n values each; Score writes as many into dst. A Scorer is used by one
// goroutine at a time.
type Scorer interface {
	Score(dst, x []float32, n int, noise Noise) error
}

// Source makes one Scorer per worker goroutine. A Scorer that is an
// io.Closer is closed when its worker is done.
type Source func() (Scorer, error)

// ErrEnergyModel is returned when ModelScorer is given a plan of an energy
// model itself: its score is −∇x E, a graph of its own — prepare the model
// EnergyScoreModel returns instead (as ebmrun sample and eval do).
var ErrEnergyModel = errors.New("sampler: the model outputs an energy; prepare its score graph −∇x E from EnergyScoreModel and sample that")

// ModelScorer adapts a runtime session to a Scorer following the model's
// contract (importer.ModelSpec): it feeds x and the noise condition (σ as [N]
// or [N,1], the int64 label index into the model's σ schedule, or the time
// step) and turns ε-predictions into scores, s = −ε/σ (σ = √(1−ᾱ_t) for
// DDPM steps). It reuses its tensors, so steady-state calls allocate nothing
// beyond what the session does.
type ModelScorer struct {
	sess   runtime.Session
	spec   *importer.ModelSpec
	ins    []*graph.Tensor
	outs   []*graph.Tensor
	x      *graph.Tensor
	cond   *graph.Tensor
	out    *graph.Tensor
	xShape []int64
	tmp    []float32 // the second level's output when interpolating
	// padX and padOut hold the last, padded slice of a batch for a model
	// with a fixed batch size.
	padX, padOut []float32
}

var _ Scorer = (*ModelScorer)(nil)

// NewModelScorer wraps a session of plan. The scorer owns the session and
// closes it in Close.
func NewModelScorer(plan runtime.Plan, sess runtime.Session, spec *importer.ModelSpec) (*ModelScorer, error) {
	if spec.Kind == importer.OutEnergy {
		return nil, ErrEnergyModel
	}
	if spec.Kind != importer.OutScore && spec.Kind != importer.OutEps {
		return nil, fmt.Errorf("sampler: unknown model output kind %q", spec.Kind)
	}
	if spec.Condition == importer.CondLabels && len(spec.Sigmas) == 0 {
		return nil, errors.New("sampler: a label-conditioned model needs its σ schedule (metadata ebmrun.sigmas or --sigmas)")
	}
	m := &ModelScorer{sess: sess, spec: spec}
	for _, in := range plan.Inputs() {
		t := &graph.Tensor{DType: in.DType}
		switch in.Name {
		case spec.XInput:
			if in.DType != graph.Float32 {
				return nil, fmt.Errorf("sampler: data input %q is %s, want float32", in.Name, in.DType)
			}
			m.x = t
		case spec.CondInput:
			m.cond = t
			switch {
			case spec.Condition == importer.CondLabels && in.DType != graph.Int64:
				return nil, fmt.Errorf("sampler: label input %q is %s, want int64", in.Name, in.DType)
			case in.DType != graph.Int64 && in.DType != graph.Float32:
				return nil, fmt.Errorf("sampler: condition input %q is %s, want float32 or int64", in.Name, in.DType)
			}
			t.Shape = make([]int64, max(1, spec.CondRank))
			for i := range t.Shape {
				t.Shape[i] = 1
			}
		default:
			return nil, fmt.Errorf("sampler: model input %q has no role (data %q, condition %q)", in.Name, spec.XInput, spec.CondInput)
		}
		m.ins = append(m.ins, t)
	}
	if m.x == nil {
		return nil, fmt.Errorf("sampler: the model has no data input %q", spec.XInput)
	}
	if spec.Condition != importer.CondNone && m.cond == nil {
		return nil, fmt.Errorf("sampler: the model has no condition input %q", spec.CondInput)
	}
	for _, o := range plan.Outputs() {
		t := &graph.Tensor{DType: graph.Float32}
		if o.Name == spec.Output {
			m.out = t
		}
		m.outs = append(m.outs, t)
	}
	if m.out == nil {
		return nil, fmt.Errorf("sampler: the model has no output %q", spec.Output)
	}
	m.xShape = append([]int64{0}, spec.DataShape...)
	return m, nil
}

// ModelSource makes a Source that opens one session of plan per worker.
func ModelSource(plan runtime.Plan, spec *importer.ModelSpec) Source {
	return func() (Scorer, error) {
		sess, err := plan.NewSession()
		if err != nil {
			return nil, fmt.Errorf("sampler: new session: %w", err)
		}
		s, err := NewModelScorer(plan, sess, spec)
		if err != nil {
			sess.Close()
			return nil, err
		}
		return s, nil
	}
}

// ComputeTime is the backend's own compute time over this scorer's calls,
// when its session reports it (runtime.ComputeTimer).
func (m *ModelScorer) ComputeTime() (time.Duration, bool) {
	if ct, ok := m.sess.(runtime.ComputeTimer); ok {
		return ct.ComputeTime(), true
	}
	return 0, false
}

// Close closes the session.
func (m *ModelScorer) Close() error { return m.sess.Close() }

// Score runs the model on x at the given noise. A model exported with a
// fixed batch size (spec.FixedBatch) is run on slices of that many samples,
// the last one padded with zeros, so any n works.
func (m *ModelScorer) Score(dst, x []float32, n int, nz Noise) error {
	if n <= 0 || len(x)%n != 0 || len(dst) < len(x) {
		return fmt.Errorf("sampler: score of %d samples from %d values into %d", n, len(x), len(dst))
	}
	d := len(x) / n
	fb := m.spec.FixedBatch
	if fb <= 0 || n == fb {
		return m.score(dst, x, n, d, nz)
	}
	for i := 0; i < n; i += fb {
		k := min(fb, n-i)
		if k == fb {
			if err := m.score(dst[i*d:(i+k)*d], x[i*d:(i+k)*d], k, d, nz); err != nil {
				return err
			}
			continue
		}
		if len(m.padX) < fb*d {
			m.padX, m.padOut = make([]float32, fb*d), make([]float32, fb*d)
		}
		copy(m.padX, x[i*d:(i+k)*d])
		clear(m.padX[k*d:])
		if err := m.score(m.padOut[:fb*d], m.padX[:fb*d], fb, d, nz); err != nil {
			return err
		}
		copy(dst[i*d:(i+k)*d], m.padOut)
	}
	return nil
}

// score runs the model once on n samples of d values.
func (m *ModelScorer) score(dst, x []float32, n, d int, nz Noise) error {
	if len(m.spec.DataShape) == 0 {
		m.xShape = append(m.xShape[:1], int64(d))
	} else if graph.NumElements(m.xShape[1:]) != int64(d) {
		return fmt.Errorf("sampler: samples of %d values do not fit the model's data shape %v", d, m.spec.DataShape)
	}
	m.xShape[0] = int64(n)
	m.x.Shape, m.x.F32 = m.xShape, x
	dst = dst[:len(x)]
	if i, w, ok := m.between(nz); ok {
		return m.interpolate(dst, n, nz, i, w)
	}
	if err := m.setCond(n, nz); err != nil {
		return err
	}
	if err := m.run(dst, n); err != nil {
		return err
	}
	if m.spec.Kind == importer.OutEps {
		c := -1 / nz.Sigma
		for i := range dst {
			dst[i] *= c
		}
	}
	return nil
}

// run feeds the prepared inputs and copies the output into dst.
func (m *ModelScorer) run(dst []float32, n int) error {
	m.out.F32 = dst
	if err := m.sess.Run(m.ins, m.outs); err != nil {
		return fmt.Errorf("sampler: model: %w", err)
	}
	got := m.out.F32
	if len(got) != len(dst) {
		return fmt.Errorf("sampler: model output %q has %d values for %d samples of %d", m.spec.Output, len(got), n, len(dst)/n)
	}
	if &got[0] != &dst[0] {
		copy(dst, got)
	}
	return nil
}

// between finds, for a label-conditioned model asked between its levels
// (Noise.Between), the level i with σ_i > σ > σ_{i+1} and the weight w of
// level i+1 in log σ.
func (m *ModelScorer) between(nz Noise) (int, float64, bool) {
	sig := m.spec.Sigmas
	if !nz.Between || m.spec.Condition != importer.CondLabels {
		return 0, 0, false
	}
	s := float64(nz.Sigma)
	for i := 0; i+1 < len(sig); i++ {
		if sig[i]*(1-labelTol) > s && s > sig[i+1]*(1+labelTol) {
			return i, math.Log(sig[i]/s) / math.Log(sig[i]/sig[i+1]), true
		}
	}
	return 0, 0, false
}

// interpolate is s(x, σ) = ((1−w)·σ_i·s_i(x) + w·σ_{i+1}·s_{i+1}(x))/σ: the
// noise prediction σ·s varies slowly in σ where the score scales like 1/σ.
func (m *ModelScorer) interpolate(dst []float32, n int, nz Noise, i int, w float64) error {
	sig := m.spec.Sigmas
	if cap(m.tmp) < len(dst) {
		m.tmp = make([]float32, len(dst))
	}
	tmp := m.tmp[:len(dst)]
	m.cond.Shape[0] = int64(n)
	m.cond.I64 = fill(m.cond.I64, n, int64(i))
	if err := m.run(dst, n); err != nil {
		return err
	}
	m.cond.I64 = fill(m.cond.I64, n, int64(i+1))
	if err := m.run(tmp, n); err != nil {
		return err
	}
	a, b := (1-w)*sig[i], w*sig[i+1]
	if m.spec.Kind == importer.OutEps { // σ·s = −ε at every level
		a, b = -(1 - w), -w
	}
	inv := 1 / float64(nz.Sigma)
	for j := range dst {
		dst[j] = float32((a*float64(dst[j]) + b*float64(tmp[j])) * inv)
	}
	return nil
}

func (m *ModelScorer) setCond(n int, nz Noise) error {
	t := m.cond
	if t == nil {
		return nil
	}
	t.Shape[0] = int64(n)
	switch m.spec.Condition {
	case importer.CondSigma:
		t.F32 = fill(t.F32, n, nz.Sigma)
	case importer.CondLabels:
		l, err := m.label(nz)
		if err != nil {
			return err
		}
		t.I64 = fill(t.I64, n, int64(l))
	case importer.CondTime:
		if nz.Time < 0 {
			return errors.New("sampler: a time-conditioned model is sampled with ddpm, which gives it a time step")
		}
		if t.DType == graph.Int64 {
			t.I64 = fill(t.I64, n, int64(nz.Time))
		} else {
			t.F32 = fill(t.F32, n, float32(nz.Time))
		}
	}
	return nil
}

// labelTol is how close σ must be to an entry of the model's schedule to
// be given its label (float32 σ against a float64 schedule).
const labelTol = 1e-5

// label is the index of nz.Sigma in the model's own schedule: the sampler's
// level when both schedules agree there, else the matching entry.
func (m *ModelScorer) label(nz Noise) (int, error) {
	sig := m.spec.Sigmas
	near := func(i int) bool { return math.Abs(sig[i]-float64(nz.Sigma)) <= labelTol*sig[i] }
	if nz.Level >= 0 && nz.Level < len(sig) && near(nz.Level) {
		return nz.Level, nil
	}
	for i := range sig {
		if near(i) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("sampler: σ=%g is not in the σ schedule of this label-conditioned model (%d levels, %g … %g); sample with the model's own schedule", nz.Sigma, len(sig), sig[0], sig[len(sig)-1])
}

func fill[T any](buf []T, n int, v T) []T {
	if cap(buf) < n {
		buf = make([]T, n)
	}
	buf = buf[:n]
	for i := range buf {
		buf[i] = v
	}
	return buf
}

// GMMScorer is the exact score of a Gaussian mixture convolved with
// N(0, σ²I) at σ = Noise.Sigma — the reference the samplers are tested
// against. It computes in float64 with the per-σ constants cached (checked
// against dataset.GMM.Score, the plain reference) and keeps scratch space, so
// use one per goroutine.
type GMMScorer struct {
	G *dataset.GMM

	sigma   float32   // σ the constants below are for; −1 before the first call
	invVar  []float64 // 1/(s_k² + σ²)
	logNorm []float64 // log w_k − d/2·log(s_k² + σ²)
	logr    []float64
	acc     []float64
}

var _ Scorer = (*GMMScorer)(nil)

// NewGMMScorer is the exact scorer of g.
func NewGMMScorer(g *dataset.GMM) *GMMScorer {
	k := g.Len()
	return &GMMScorer{G: g, sigma: -1, invVar: make([]float64, k), logNorm: make([]float64, k),
		logr: make([]float64, k), acc: make([]float64, g.Dim())}
}

// Score computes the mixture's score in float64 and rounds it to float32.
func (s *GMMScorer) Score(dst, x []float32, n int, nz Noise) error {
	g := s.G
	d := g.Dim()
	if len(x) != n*d || len(dst) < n*d {
		return fmt.Errorf("sampler: %d samples of a %d-D mixture need %d values, have %d (dst %d)", n, d, n*d, len(x), len(dst))
	}
	if nz.Sigma != s.sigma {
		s.sigma = nz.Sigma
		sig2 := float64(nz.Sigma) * float64(nz.Sigma)
		for k := range s.invVar {
			v := g.Stds[k]*g.Stds[k] + sig2
			s.invVar[k] = 1 / v
			s.logNorm[k] = math.Log(g.Weights[k]) - float64(d)/2*math.Log(v)
		}
	}
	for i := 0; i < n; i++ {
		xi := x[i*d : (i+1)*d]
		m := math.Inf(-1)
		for k, mu := range g.Means {
			var q float64
			for j, v := range xi {
				t := float64(v) - mu[j]
				q += t * t
			}
			l := s.logNorm[k] - 0.5*s.invVar[k]*q
			s.logr[k] = l
			m = max(m, l)
		}
		var z float64
		for j := range s.acc {
			s.acc[j] = 0
		}
		for k, mu := range g.Means {
			e := math.Exp(s.logr[k] - m)
			z += e
			r := e * s.invVar[k]
			for j, v := range xi {
				s.acc[j] += r * (mu[j] - float64(v))
			}
		}
		for j := range s.acc {
			dst[i*d+j] = float32(s.acc[j] / z)
		}
	}
	return nil
}
