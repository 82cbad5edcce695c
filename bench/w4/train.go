package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/trainer"
)

// onnxArch is an architecture that is an existing model: its float
// initializers are the parameters. Models with inputs x and σ and output
// score (ebmrun's and the NCSN families') train this way.
type onnxArch struct{ m *graph.Model }

func (onnxArch) Name() string    { return "onnx" }
func (onnxArch) Validate() error { return nil }

func (a onnxArch) Build(dataShape []int64, _ *rand.Rand) (*trainer.Net, error) {
	var params []string
	for _, in := range a.m.Graph.Initializers {
		if in.Tensor.DType == graph.Float32 && len(in.Tensor.Shape) >= 1 && in.Tensor.Len() > 1 {
			params = append(params, in.Name)
		}
	}
	return &trainer.Net{Model: a.m, Params: params}, nil
}

// imageData is random images of the model's input shape: the step's cost
// does not depend on what the pixels are.
type imageData struct{ shape []int64 }

func (d imageData) Name() string     { return "random" }
func (d imageData) Shape() []int64   { return d.shape }
func (d imageData) Range() []float64 { return []float64{0, 1} }
func (d imageData) Batch(dst []float32, n, step int, seed uint64, r *rand.Rand) {
	for i := range dst {
		dst[i] = r.Float32()
	}
}

// newTrainStep prepares ebmrun's DSM training step of m on backend.
func newTrainStep(backend string, m *graph.Model, batch, threads int) (*timed, error) {
	be, err := runtime.Get(backend)
	if err != nil {
		return nil, err
	}
	if err := be.Available(); err != nil {
		return nil, err
	}
	var x, sigma, score bool
	var shape []int64
	for _, v := range m.Graph.Inputs {
		switch v.Name {
		case trainer.InputX:
			x = true
			for _, d := range v.Shape[1:] {
				shape = append(shape, d.Value)
			}
		case trainer.InputSigma:
			sigma = true
		}
	}
	for _, o := range m.Graph.Outputs {
		score = score || o.Name == trainer.OutScore
	}
	if !x || !sigma || !score {
		return nil, fmt.Errorf("not a score network s(x, sigma) → score; the trainer's DSM loss does not apply")
	}
	tr, err := trainer.New(trainer.Config{Arch: onnxArch{m}, Loss: "dsm", Batch: batch, Threads: threads, Seed: 1},
		imageData{shape}, be)
	if err != nil {
		return nil, err
	}
	return &timed{run: func() error { _, err := tr.Step(); return err }, close: func() { tr.Close() }}, nil
}
