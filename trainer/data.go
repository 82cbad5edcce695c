package trainer

import (
	"fmt"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/sampler"
)

// Data is what a trainer learns from: a stream of batches, each fixed by
// (seed, step), so a resumed run sees exactly the batches an uninterrupted
// one would.
type Data interface {
	// Name identifies the data in provenance and checkpoints.
	Name() string
	// Shape is one sample's shape.
	Shape() []int64
	// Range is [lo, hi], the box the data lives in (a model's
	// ebmrun.data_range, where samplers start from).
	Range() []float64
	// Batch writes the n samples of step's batch into dst. r is the step's
	// own random source; seed is the run's, for data shuffled by epoch.
	Batch(dst []float32, n, step int, seed uint64, r *rand.Rand)
}

// ToyData draws fresh points of a 2-D toy distribution every step.
type ToyData struct {
	Dist *dataset.ToyDist
	buf  []float64
}

// NewToyData looks up a toy distribution by name (see dataset.ToyNames).
func NewToyData(name string) (*ToyData, error) {
	d, err := dataset.Toy(name)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	return &ToyData{Dist: d}, nil
}

func (t *ToyData) Name() string     { return t.Dist.Name }
func (t *ToyData) Shape() []int64   { return []int64{dataset.ToyDim} }
func (t *ToyData) Range() []float64 { return []float64{-t.Dist.Box, t.Dist.Box} }
func (t *ToyData) Batch(dst []float32, n, _ int, _ uint64, r *rand.Rand) {
	t.buf = t.Dist.Sample(t.buf, n, r)
	for i := range n * dataset.ToyDim {
		dst[i] = float32(t.buf[i])
	}
}

// TensorData is a fixed data set, [N, …], visited in epochs: epoch e is a
// permutation drawn from (seed, e), and step s takes positions s·B … s·B+B−1
// of the concatenated epochs.
type TensorData struct {
	name     string
	t        *graph.Tensor
	lo, hi   float64
	perm     []int
	permFrom int // the epoch perm holds; −1: none yet
	permSeed uint64
}

// NewTensorData wraps a data tensor (as dataset.Load returns it). dataRange
// is [lo, hi]; nil takes the observed minimum and maximum.
func NewTensorData(name string, t *graph.Tensor, dataRange []float64) (*TensorData, error) {
	if t.DType != graph.Float32 || len(t.Shape) < 2 || t.Shape[0] < 1 {
		return nil, fmt.Errorf("trainer: data %s: want float32 [N, …] with N ≥ 1, got %s %v", name, t.DType, t.Shape)
	}
	d := &TensorData{name: name, t: t, permFrom: -1}
	if len(dataRange) == 2 {
		d.lo, d.hi = dataRange[0], dataRange[1]
	} else {
		d.lo, d.hi = float64(t.F32[0]), float64(t.F32[0])
		for _, v := range t.F32 {
			d.lo, d.hi = min(d.lo, float64(v)), max(d.hi, float64(v))
		}
	}
	return d, nil
}

func (d *TensorData) Name() string     { return d.name }
func (d *TensorData) Shape() []int64   { return append([]int64(nil), d.t.Shape[1:]...) }
func (d *TensorData) Range() []float64 { return []float64{d.lo, d.hi} }

// Len is the number of samples.
func (d *TensorData) Len() int { return int(d.t.Shape[0]) }

func (d *TensorData) Batch(dst []float32, n, step int, seed uint64, _ *rand.Rand) {
	size := d.Len()
	per := len(d.t.F32) / size
	pos := step * n
	for i := 0; i < n; i++ {
		epoch, at := (pos+i)/size, (pos+i)%size
		if epoch != d.permFrom || seed != d.permSeed {
			d.shuffle(epoch, seed)
		}
		j := d.perm[at]
		copy(dst[i*per:(i+1)*per], d.t.F32[j*per:(j+1)*per])
	}
}

func (d *TensorData) shuffle(epoch int, seed uint64) {
	if d.perm == nil {
		d.perm = make([]int, d.Len())
	}
	for i := range d.perm {
		d.perm[i] = i
	}
	// Epoch streams sit far from the step streams of the same seed.
	r := sampler.Stream(seed^0x5bd1e9955bd1e995, epoch)
	r.Shuffle(len(d.perm), func(i, j int) { d.perm[i], d.perm[j] = d.perm[j], d.perm[i] })
	d.permFrom, d.permSeed = epoch, seed
}
