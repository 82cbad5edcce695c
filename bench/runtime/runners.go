package main

import (
	"errors"
	"fmt"
	"slices"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native" // registers "native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"    // registers "ort"
)

// A runner computes the score of one fixed batch, one full evaluation per
// call, on one backend and one model variant. Score returns the last result,
// [N,2] row-major; it is valid until the next Eval.
type runner interface {
	Eval() error
	Score() []float32
	Close() error
}

// batchData is the input every runner of one batch size sees.
type batchData struct {
	n        int
	x, sigma []float32 // [N,2], [N]
}

// ebmrunFixture runs the fixture itself: inputs x and σ, output score.
type ebmrunFixture struct {
	plan runtime.Plan
	sess runtime.Session
	ins  []*graph.Tensor
	outs []*graph.Tensor
}

var _ runner = (*ebmrunFixture)(nil)

func newEbmrunFixture(backend string, m *graph.Model, d *batchData, threads int) (*ebmrunFixture, error) {
	plan, sess, err := prepare(backend, m, threads)
	if err != nil {
		return nil, err
	}
	n := int64(d.n)
	return &ebmrunFixture{
		plan: plan, sess: sess,
		ins:  []*graph.Tensor{graph.NewFloat32([]int64{n, 2}, d.x), graph.NewFloat32([]int64{n}, d.sigma)},
		outs: []*graph.Tensor{new(graph.Tensor)},
	}, nil
}

func (r *ebmrunFixture) Eval() error      { return r.sess.Run(r.ins, r.outs) }
func (r *ebmrunFixture) Score() []float32 { return r.outs[0].F32 }
func (r *ebmrunFixture) Close() error     { return closeBoth(r.sess, r.plan) }

// ebmrunH runs the h variant: h = x‖log σ in Go, the MLP on the backend,
// score = out/σ in Go.
type ebmrunH struct {
	plan  runtime.Plan
	sess  runtime.Session
	d     *batchData
	ins   []*graph.Tensor
	outs  []*graph.Tensor
	score []float32
}

var _ runner = (*ebmrunH)(nil)

func newEbmrunH(backend string, m *graph.Model, d *batchData, threads int) (*ebmrunH, error) {
	plan, sess, err := prepare(backend, m, threads)
	if err != nil {
		return nil, err
	}
	return &ebmrunH{
		plan: plan, sess: sess, d: d,
		ins:   []*graph.Tensor{graph.NewFloat32([]int64{int64(d.n), 3}, nil)},
		outs:  []*graph.Tensor{new(graph.Tensor)},
		score: make([]float32, 2*d.n),
	}, nil
}

func (r *ebmrunH) Eval() error {
	prepareH(r.ins[0].F32, r.d.x, r.d.sigma)
	if err := r.sess.Run(r.ins, r.outs); err != nil {
		return err
	}
	finishH(r.score, r.outs[0].F32, r.d.sigma)
	return nil
}
func (r *ebmrunH) Score() []float32 { return r.score }
func (r *ebmrunH) Close() error     { return closeBoth(r.sess, r.plan) }

func prepare(backend string, m *graph.Model, threads int) (runtime.Plan, runtime.Session, error) {
	b, err := runtime.Get(backend)
	if err != nil {
		return nil, nil, err
	}
	plan, err := b.Prepare(m, runtime.Options{Threads: threads})
	if err != nil {
		return nil, nil, err
	}
	sess, err := plan.NewSession()
	if err != nil {
		plan.Close()
		return nil, nil, err
	}
	return plan, sess, nil
}

func closeBoth(s runtime.Session, p runtime.Plan) error {
	return errors.Join(s.Close(), p.Close())
}

// onnxGo runs a model on onnx-go's gorgonnx backend. gorgonnx builds its
// gorgonia graph on the first Run with the shapes of the inputs set then, so
// there is one onnxGo per batch size. The input nodes keep the tensors set
// before that first Run; later evaluations write into their backing slices.
type onnxGo struct {
	backend *gorgonnx.Graph
	model   *onnxgo.Model
	d       *batchData
	h       []float32 // h variant: backing of input 0
	score   []float32
	variant string

	// At batch 1 gorgonnx's Gemm adds its product into the bias initializer
	// in place (README.md, "onnx-go drifts at batch 1"). With restore set,
	// Eval copies the biases back from saved before every run: the
	// workaround that makes onnx-go's batch-1 results right, its cost billed
	// to onnx-go.
	biases, saved [][]float32
	restore       bool
}

var _ runner = (*onnxGo)(nil)

// newOnnxGo loads onnx (the fixture when variant is "fixture", else the h
// variant) and sets its inputs. gorgonnx builds its graph, and so meets any op
// it cannot run, on the first Eval.
// gemmBiases names the Gemm biases, for the batch-1 workaround.
func newOnnxGo(onnx []byte, variant string, d *batchData, gemmBiases []string) (r *onnxGo, err error) {
	defer func() {
		// gorgonia panics on some shape errors instead of returning them.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	be := gorgonnx.NewGraph()
	m := onnxgo.NewModel(be)
	if err := m.UnmarshalBinary(onnx); err != nil {
		return nil, err
	}
	r = &onnxGo{backend: be, model: m, d: d, variant: variant, score: make([]float32, 2*d.n)}
	if variant == "fixture" {
		x := append([]float32(nil), d.x...)
		sigma := append([]float32(nil), d.sigma...)
		if err := m.SetInput(0, tensor.New(tensor.WithShape(d.n, 2), tensor.WithBacking(x))); err != nil {
			return nil, err
		}
		if err := m.SetInput(1, tensor.New(tensor.WithShape(d.n), tensor.WithBacking(sigma))); err != nil {
			return nil, err
		}
	} else {
		r.h = make([]float32, 3*d.n)
		if err := m.SetInput(0, tensor.New(tensor.WithShape(d.n, 3), tensor.WithBacking(r.h))); err != nil {
			return nil, err
		}
	}
	for _, name := range gemmBiases {
		n, ok := m.GetNodeByName(name)
		if !ok {
			return nil, fmt.Errorf("no Gemm bias %q in onnx-go's graph", name)
		}
		dc, ok := n.(onnxgo.DataCarrier)
		if !ok {
			return nil, fmt.Errorf("Gemm bias %q carries no tensor", name)
		}
		b, ok := dc.GetTensor().Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("Gemm bias %q is not float32", name)
		}
		r.biases = append(r.biases, b)
		r.saved = append(r.saved, slices.Clone(b))
	}
	// No evaluation here: at batch 1 every evaluation changes the next one
	// (see README.md), and the caller's first evaluation must be the first.
	return r, nil
}

func (r *onnxGo) Eval() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	if r.restore {
		for i, b := range r.biases {
			copy(b, r.saved[i])
		}
	}
	if r.h != nil {
		prepareH(r.h, r.d.x, r.d.sigma)
	}
	if err := r.backend.Run(); err != nil {
		return err
	}
	outs, err := r.model.GetOutputTensors()
	if err != nil {
		return err
	}
	out, ok := outs[0].Data().([]float32)
	if !ok || len(out) != 2*r.d.n {
		return fmt.Errorf("output is %v %v, want float32 [%d 2]", outs[0].Dtype(), outs[0].Shape(), r.d.n)
	}
	if r.h != nil {
		finishH(r.score, out, r.d.sigma)
	} else {
		copy(r.score, out)
	}
	return nil
}

func (r *onnxGo) Score() []float32 { return r.score }
func (r *onnxGo) Close() error     { return nil }
