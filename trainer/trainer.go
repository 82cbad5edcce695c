package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

// initStream is the index of the random stream the initial weights come
// from; steps use streams 0, 1, 2, ….
const initStream = -1

// Trainer trains a score network. The loss and its parameter gradient are
// one graph, prepared once on a backend; each Step feeds it a batch and the
// current weights, then updates the weights with Adam in Go. A Trainer is
// used by one goroutine at a time.
type Trainer struct {
	cfg     Config
	data    Data
	backend runtime.Backend
	net     *Net
	loss    *lossGraph
	plan    runtime.Plan
	sess    runtime.Session

	params, ema [][]float32
	shapes      [][]int64
	opt         *adam
	done        int // steps taken

	ins, outs   []*graph.Tensor
	feed        map[string]*graph.Tensor
	lossOut     *graph.Tensor
	perOut      *graph.Tensor
	gradOuts    []*graph.Tensor
	grads       [][]float32
	clean, zbuf []float32
	levels      []int
	stats       StepStats

	fwd *forward
	cd  *cdState // contrastive divergence's chains (Loss LossCD)

	ckptFlags map[string]string
}

// StepStats describe one step. The slices are reused by the next Step.
type StepStats struct {
	Step     int     // steps taken, this one included
	Loss     float64 // batch mean
	GradNorm float64 // global L2 norm before clipping
	LR       float64 // learning rate used
	// LevelSum and LevelCount are the sum of the per-sample losses and the
	// number of samples at each σ level (Config.Sigmas order).
	LevelSum   []float64
	LevelCount []int
	// EnergyPos and EnergyNeg are CD's batch mean energies of the data and
	// of the negatives (zero for the other losses): a gap EnergyNeg −
	// EnergyPos that grows without bound is a diverging run.
	EnergyPos, EnergyNeg float64
}

// New builds the network (initial weights from cfg.Seed), writes the loss
// around it, differentiates it and prepares the step graph on backend.
func New(cfg Config, data Data, backend runtime.Backend) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	shape := data.Shape()
	if err := checkBatchBudget(cfg, shape); err != nil {
		return nil, err
	}
	net, err := cfg.Arch.Build(shape, sampler.Stream(cfg.Seed, initStream))
	if err != nil {
		return nil, err
	}
	lg, err := buildLoss(net, cfg.Loss, shape)
	if err != nil {
		return nil, err
	}
	t := &Trainer{cfg: cfg, data: data, backend: backend, net: net, loss: lg}
	inits := net.Model.Graph.InitializerMap()
	for _, p := range net.Params {
		w := inits[p]
		t.params = append(t.params, append([]float32(nil), w.F32...))
		t.ema = append(t.ema, append([]float32(nil), w.F32...))
		t.shapes = append(t.shapes, w.Shape)
	}
	t.opt = newAdam(t.params, cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.WeightDecay)
	if t.plan, err = backend.Prepare(lg.step, runtime.Options{Threads: cfg.Threads}); err != nil {
		return nil, fmt.Errorf("trainer: preparing the %s step on %s: %w", cfg.Loss, backend.Name(), err)
	}
	if t.sess, err = t.plan.NewSession(); err != nil {
		t.plan.Close()
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if err := t.bind(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// checkBatchBudget refuses, before anything is allocated, a batch whose
// feeds alone do not fit the memory budget: FD-SSM, the largest, feeds
// eight batches of samples (x and three perturbed copies, the probes and
// their three copies); CD three, and its replay buffer. A batch of 10¹²
// asked for 8 TB at once.
func checkBatchBudget(cfg Config, shape []int64) error {
	per := graph.NumElements(shape)
	elems := membudget.Product(int64(cfg.Batch), 8, per)
	if cfg.Loss == LossCD {
		buf := membudget.Product(int64(cfg.CD.withDefaults().Buffer), per)
		if elems < 0 || buf < 0 || elems > 1<<62-buf {
			elems = -1
		} else {
			elems += buf
		}
	}
	what := fmt.Sprintf("trainer: batches of %d samples of %d values", cfg.Batch, per)
	if cfg.Loss == LossCD {
		what += fmt.Sprintf(" and a replay buffer of %d", cfg.CD.withDefaults().Buffer)
	}
	return membudget.Elems(what, elems, 4)
}

// bind makes the step's input and output tensors, in the plan's order; the
// parameter inputs share t.params, so Adam's updates are what the next
// step reads.
func (t *Trainer) bind() error {
	b, n := t.cfg.Batch, t.cfg.Batch
	per := int(graph.NumElements(t.data.Shape()))
	rows := func(k int) []int64 { return append([]int64{int64(k)}, t.data.Shape()...) }
	t.feed = map[string]*graph.Tensor{
		feedX:      graph.NewFloat32(rows(n), nil),
		feedSigma:  graph.NewFloat32([]int64{int64(n)}, nil),
		t.loss.cot: graph.ScalarFloat32(1),
	}
	switch t.cfg.Loss {
	case LossDSM:
		t.feed[feedZ] = graph.NewFloat32(rows(n), nil)
	case LossSSM, LossSSMVR:
		t.feed[feedV] = graph.NewFloat32(rows(n), nil)
	case LossFDSSM:
		t.feed[feedV3] = graph.NewFloat32(rows(3*n), nil)
		t.feed[feedX3] = graph.NewFloat32(rows(3*n), nil)
		for _, f := range []string{feedSigma3, feedCoefA, feedCoefC} {
			t.feed[f] = graph.NewFloat32([]int64{int64(3 * n)}, nil)
		}
	case LossCD:
		t.cdBind(n, per)
	}
	for i, p := range t.loss.params {
		t.feed[p] = graph.NewFloat32(t.shapes[i], t.params[i])
	}
	for _, in := range t.plan.Inputs() {
		v, ok := t.feed[in.Name]
		if !ok {
			return fmt.Errorf("trainer: the step graph has an input %q the trainer does not feed", in.Name)
		}
		t.ins = append(t.ins, v)
	}
	byName := map[string]*graph.Tensor{}
	for _, o := range t.plan.Outputs() {
		v := &graph.Tensor{}
		t.outs = append(t.outs, v)
		byName[o.Name] = v
	}
	t.lossOut, t.perOut = byName[outLoss], byName[outLossPer]
	if t.cd != nil {
		if t.cd.energy = byName[outEnergy]; t.cd.energy == nil {
			return errors.New("trainer: the cd step graph lacks the energies")
		}
	}
	for _, g := range t.loss.grads {
		t.gradOuts = append(t.gradOuts, byName[g])
	}
	if t.lossOut == nil || t.perOut == nil || len(t.gradOuts) != len(t.params) {
		return errors.New("trainer: the step graph lacks the loss or gradient outputs")
	}
	t.grads = make([][]float32, len(t.params))
	t.clean = make([]float32, b*per)
	t.zbuf = make([]float32, b*per)
	t.levels = make([]int, b)
	t.stats.LevelSum = make([]float64, len(t.cfg.Sigmas))
	t.stats.LevelCount = make([]int, len(t.cfg.Sigmas))
	return nil
}

// Config returns the settings with defaults filled in.
func (t *Trainer) Config() Config { return t.cfg }

// Done is the number of steps taken.
func (t *Trainer) Done() int { return t.done }

// Net is the network being trained (its graph holds the initial weights).
func (t *Trainer) Net() *Net { return t.net }

// Params are the current weights, one slice per Net.Params entry.
func (t *Trainer) Params() [][]float32 { return t.params }

// EMAParams are the averaged weights (the weights themselves when
// Config.EMA is negative).
func (t *Trainer) EMAParams() [][]float32 {
	if t.cfg.EMA < 0 {
		return t.params
	}
	return t.ema
}

// Backend is the backend the step runs on.
func (t *Trainer) Backend() runtime.Backend { return t.backend }

// Step takes one Adam step on the batch of step Done() and returns its
// statistics. Every random draw of the step comes from the stream
// (Config.Seed, Done()), so a step depends only on the seed, its index and
// the state before it.
func (t *Trainer) Step() (*StepStats, error) {
	k := t.done
	r := sampler.Stream(t.cfg.Seed, k)
	t.fill(k, r)
	if t.cd != nil {
		if err := t.cdFill(r); err != nil {
			return nil, fmt.Errorf("trainer: step %d: %w", k+1, err)
		}
	}
	if err := t.sess.Run(t.ins, t.outs); err != nil {
		return nil, fmt.Errorf("trainer: step %d: %w", k+1, err)
	}
	loss := float64(t.lossOut.F32[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("trainer: step %d: the loss is %v; lower the learning rate (--lr) or clip the gradient (--clip)", k+1, loss)
	}
	for i, g := range t.gradOuts {
		t.grads[i] = g.F32
	}
	norm := globalNorm(t.grads)
	scale := 1.0
	if t.cfg.ClipNorm > 0 && norm > t.cfg.ClipNorm {
		scale = t.cfg.ClipNorm / norm
	}
	lr := t.cfg.LR
	if t.cfg.Warmup > 0 && k < t.cfg.Warmup {
		lr *= float64(k+1) / float64(t.cfg.Warmup)
	}
	t.opt.update(t.params, t.grads, k+1, lr, scale)
	if t.cfg.EMA >= 0 {
		emaUpdate(t.ema, t.params, emaDecay(t.cfg.EMA, k+1))
	}
	t.done++

	s := &t.stats
	s.Step, s.Loss, s.GradNorm, s.LR = t.done, loss, norm, lr
	if t.cd != nil {
		t.cdStats(s)
	}
	clear(s.LevelSum)
	clear(s.LevelCount)
	// FD-SSM's per-row losses: a sample's is the sum of its three rows.
	per := t.perOut.F32
	for i, l := range t.levels {
		for j := i; j < len(per); j += len(t.levels) {
			s.LevelSum[l] += float64(per[j])
		}
		s.LevelCount[l]++
	}
	return s, nil
}

// fill draws step k's batch, σ levels, noise and projections, in that
// order, into the feeds.
func (t *Trainer) fill(k int, r *rand.Rand) {
	n := t.cfg.Batch
	per := len(t.clean) / n
	t.data.Batch(t.clean, n, k, t.cfg.Seed, r)
	sig := t.feed[feedSigma].F32
	for i := range t.levels {
		if t.cd != nil { // one level: the σ the energy is trained at
			t.levels[i] = len(t.cfg.Sigmas) - 1
			sig[i] = float32(t.cfg.Sigmas[t.levels[i]])
			continue
		}
		t.levels[i] = r.IntN(len(t.cfg.Sigmas))
		sig[i] = float32(t.cfg.Sigmas[t.levels[i]])
	}
	z := t.zbuf
	for i := range z {
		z[i] = float32(r.NormFloat64())
	}
	xt := t.feed[feedX].F32
	for i := range xt {
		xt[i] = t.clean[i] + sig[i/per]*z[i]
	}
	switch t.cfg.Loss {
	case LossDSM:
		copy(t.feed[feedZ].F32, z)
	case LossSSM, LossSSMVR:
		project(t.feed[feedV].F32, per, t.cfg.Projection, r)
	case LossFDSSM:
		project(t.feed[feedV3].F32[:len(xt)], per, t.cfg.Projection, r)
		t.stackFD()
	}
}

// stackFD writes FD-SSM's stacked feeds from x̃ (feedX), σ (feedSigma) and
// v (the first third of feedV3): the rows x̃+εv, x̃−εv, x̃ with ε = FDEps·σ,
// v three times, σ three times, and the coefficients a = σ²/(2ε)·(1, −1, 0)
// and c = σ²/2·(0, 0, 1) per row.
func (t *Trainer) stackFD() {
	n := t.cfg.Batch
	xt, sig := t.feed[feedX].F32, t.feed[feedSigma].F32
	per := len(xt) / n
	v3 := t.feed[feedV3].F32
	m := len(xt)
	v := v3[:m]
	copy(v3[m:], v)
	copy(v3[2*m:], v)
	x3 := t.feed[feedX3].F32
	eps := t.cfg.FDEps
	for i := range xt {
		e := float32(eps) * sig[i/per] * v[i]
		x3[i], x3[m+i], x3[2*m+i] = xt[i]+e, xt[i]-e, xt[i]
	}
	s3, ca, cc := t.feed[feedSigma3].F32, t.feed[feedCoefA].F32, t.feed[feedCoefC].F32
	for i, s := range sig {
		a := float32(float64(s) / (2 * eps)) // σ²/(2εσ)
		for j := 0; j < 3; j++ {
			s3[j*n+i] = s
		}
		ca[i], ca[n+i], ca[2*n+i] = a, -a, 0
		cc[i], cc[n+i], cc[2*n+i] = 0, 0, s*s/2
	}
}

// Close releases the sessions and plans.
func (t *Trainer) Close() error {
	var errs []error
	if t.fwd != nil {
		errs = append(errs, t.fwd.close())
		t.fwd = nil
	}
	if t.sess != nil {
		errs = append(errs, t.sess.Close())
		t.sess = nil
	}
	if t.plan != nil {
		errs = append(errs, t.plan.Close())
		t.plan = nil
	}
	return errors.Join(errs...)
}

// forward runs the network with weights fed as inputs.
type forward struct {
	plan runtime.Plan
	sess runtime.Session
	ins  []*graph.Tensor // x, σ, then the parameters
	out  *graph.Tensor
}

func (f *forward) close() error {
	return errors.Join(f.sess.Close(), f.plan.Close())
}

// Score evaluates the network at n samples x (n·d values) and per-sample
// σ into dst (allocated when nil or short), with the averaged weights when
// ema is set and the current ones otherwise, on the trainer's backend.
func (t *Trainer) Score(dst, x, sigma []float32, n int, ema bool) ([]float32, error) {
	if t.fwd == nil {
		m := paramsToInputs(t.net.Model, t.net.Params)
		plan, err := t.backend.Prepare(m, runtime.Options{Threads: t.cfg.Threads})
		if err != nil {
			return nil, fmt.Errorf("trainer: preparing the forward pass: %w", err)
		}
		sess, err := plan.NewSession()
		if err != nil {
			plan.Close()
			return nil, fmt.Errorf("trainer: %w", err)
		}
		t.fwd = &forward{plan: plan, sess: sess, out: &graph.Tensor{}}
		for _, in := range plan.Inputs() {
			switch in.Name {
			case InputX, InputSigma:
				t.fwd.ins = append(t.fwd.ins, nil)
			default:
				t.fwd.ins = append(t.fwd.ins, &graph.Tensor{DType: graph.Float32})
			}
		}
	}
	w := t.params
	if ema {
		w = t.EMAParams()
	}
	idx := map[string]int{}
	for i, p := range t.net.Params {
		idx[p] = i
	}
	shape := append([]int64{int64(n)}, t.data.Shape()...)
	for i, in := range t.fwd.plan.Inputs() {
		switch in.Name {
		case InputX:
			t.fwd.ins[i] = graph.NewFloat32(shape, x[:graph.NumElements(shape)])
		case InputSigma:
			t.fwd.ins[i] = graph.NewFloat32([]int64{int64(n)}, sigma[:n])
		default:
			j := idx[in.Name]
			t.fwd.ins[i] = graph.NewFloat32(t.shapes[j], w[j])
		}
	}
	if err := t.fwd.sess.Run(t.fwd.ins, []*graph.Tensor{t.fwd.out}); err != nil {
		return nil, fmt.Errorf("trainer: forward: %w", err)
	}
	if len(dst) < len(t.fwd.out.F32) {
		dst = make([]float32, len(t.fwd.out.F32))
	}
	dst = dst[:len(t.fwd.out.F32)]
	copy(dst, t.fwd.out.F32)
	return dst, nil
}
