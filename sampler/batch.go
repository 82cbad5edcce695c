package sampler

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Batch is a block of chains advanced together: N chains of Dim values in X,
// the first of which is chain Start of the whole run. Each chain draws its
// noise from a stream of its own, so a chain's path does not depend on which
// batch it shares.
//
// A Sampler's Sample calls Begin once, then for each step Score, Normal,
// updates X, and calls Done; Run makes and fills the batches.
type Batch struct {
	X     []float32
	N     int
	Dim   int
	Start int

	ctx   context.Context
	pcg   []rand.PCG
	rng   []*rand.Rand
	score []float32 // the last score, N×Dim
	z     []float32 // the last noise draw, N×Dim
	tmp   []float32 // a second state (PC's x_mean), N×Dim
	norms []float64 // per-chain scratch

	sampler string
	levels  int
	steps   int
	step    int // steps taken in this batch, over all levels
	hook    func(b *Batch, level, step int, sigma float64)
	box     *Box
	escape  *Escape // the first step a state left box, in this batch
}

// newBatch makes a batch with room for n chains of dim values.
func newBatch(n, dim int) *Batch {
	b := &Batch{Dim: dim, ctx: context.Background()}
	b.grow(n)
	return b
}

func (b *Batch) grow(n int) {
	if len(b.rng) >= n {
		return
	}
	b.pcg = make([]rand.PCG, n)
	b.rng = make([]*rand.Rand, n)
	for i := range b.rng {
		b.rng[i] = rand.New(&b.pcg[i])
	}
	b.score = make([]float32, n*b.Dim)
	b.z = make([]float32, n*b.Dim)
	b.tmp = make([]float32, n*b.Dim)
	b.norms = make([]float64, n)
}

// reset points the batch at chains start … start+n−1 of the run seeded with
// seed, whose states x holds (n×Dim values).
func (b *Batch) reset(x []float32, start, n int, seed uint64) {
	b.grow(n)
	b.X, b.N, b.Start, b.step = x[:n*b.Dim], n, start, 0
	for i := 0; i < n; i++ {
		s1, s2 := streamSeed(seed, start+i)
		b.pcg[i].Seed(s1, s2)
	}
}

// Stream is the random source of chain index of a run with the given seed —
// the same one the chain draws its initial state and noise from.
func Stream(seed uint64, index int) *rand.Rand {
	return rand.New(rand.NewPCG(streamSeed(seed, index)))
}

// streamSeed derives a PCG state from (seed, index) through SplitMix64's
// finaliser, so neighbouring indices get unrelated streams.
func streamSeed(seed uint64, index int) (uint64, uint64) {
	a := mix64(seed ^ 0x6a09e667f3bcc909)
	return mix64(a ^ mix64(uint64(index))), mix64(a + uint64(index)*0x9e3779b97f4a7c15)
}

func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Rand is chain i's random source.
func (b *Batch) Rand(i int) *rand.Rand { return b.rng[i] }

// Normal draws fresh N(0, I) noise for every chain, each from its own
// stream, into a buffer the batch owns (valid until the next call).
func (b *Batch) Normal() []float32 {
	z := b.z[:b.N*b.Dim]
	for i := 0; i < b.N; i++ {
		r := b.rng[i]
		row := z[i*b.Dim : (i+1)*b.Dim]
		for j := range row {
			row[j] = float32(r.NormFloat64())
		}
	}
	return z
}

// Score evaluates the score of the current states at level (0-based) and
// step of the sampler, into a buffer the batch owns, and returns a
// *DivergenceError if some of it is not finite.
func (b *Batch) Score(s Scorer, level, step int, nz Noise) ([]float32, error) {
	out := b.score[:b.N*b.Dim]
	if err := s.Score(out, b.X, b.N, nz); err != nil {
		return nil, fmt.Errorf("sampler: %s at %s: %w", b.sampler, where(level, b.levels, step, b.steps, float64(nz.Sigma), nz.Time), err)
	}
	if bad := b.countNonFinite(out); bad > 0 {
		return nil, b.diverged(level, step, nz, bad, true)
	}
	return out, nil
}

func (b *Batch) diverged(level, step int, nz Noise, bad int, inScore bool) error {
	return &DivergenceError{Sampler: b.sampler, Level: level + 1, Levels: b.levels, Step: step + 1, Steps: b.steps,
		Sigma: float64(nz.Sigma), Time: nz.Time, Diverged: bad, Of: b.N, First: b.Start, InScore: inScore}
}

// Done ends a step: it checks the states are finite (else a
// *DivergenceError), reports the step to the run (progress, trace) and
// returns the run's context error once it is cancelled.
func (b *Batch) Done(level, step int, nz Noise) error {
	if bad := b.countNonFinite(b.X); bad > 0 {
		return b.diverged(level, step, nz, bad, false)
	}
	if b.box != nil && b.escape == nil && countOutside(b.X, b.Dim, b.box.at(float64(nz.Sigma))) > 0 {
		b.escape = &Escape{Level: level + 1, Levels: b.levels, Step: step + 1, Steps: b.steps, Sigma: float64(nz.Sigma), Time: nz.Time}
	}
	b.step++
	if b.hook != nil {
		b.hook(b, level, step, float64(nz.Sigma))
	}
	return b.ctx.Err()
}

// countNonFinite counts the chains with a NaN or ±Inf among their values.
func (b *Batch) countNonFinite(v []float32) int {
	bad := 0
	for i := 0; i < b.N; i++ {
		for _, x := range v[i*b.Dim : (i+1)*b.Dim] {
			if x != x || x > math.MaxFloat32 || x < -math.MaxFloat32 {
				bad++
				break
			}
		}
	}
	return bad
}

// DivergenceError reports chains whose states or scores stopped being
// finite numbers.
type DivergenceError struct {
	Sampler       string
	Level, Levels int // 1-based σ level (DDPM: the time step counted from the start)
	Step, Steps   int // 1-based step within the level
	Sigma         float64
	Time          int  // DDPM time step, −1 otherwise
	Diverged, Of  int  // chains with non-finite values, of the chains in the batch
	First         int  // index of the batch's first chain
	InScore       bool // the score was non-finite (else the updated state)
}

func (e *DivergenceError) Error() string {
	what := "the state"
	if e.InScore {
		what = "the score"
	}
	return fmt.Sprintf("sampler: %s diverged at %s: %d of %d samples (from index %d) have NaN or Inf in %s",
		e.Sampler, where(e.Level-1, e.Levels, e.Step-1, e.Steps, e.Sigma, e.Time), e.Diverged, e.Of, e.First, what)
}

// where names a step for messages, counting from 1.
func where(level, levels, step, steps int, sigma float64, t int) string {
	if t >= 0 {
		return fmt.Sprintf("time step t=%d (step %d of %d, √(1−ᾱ_t)=%.4g)", t, level+1, levels, sigma)
	}
	return fmt.Sprintf("σ level %d of %d (σ=%.4g), step %d of %d", level+1, levels, sigma, step+1, steps)
}

// axpy is y += a·x in float32, the shape of every Langevin update.
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}
