//go:build cgo

package ort

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

func init() {
	runtime.Register(&Backend{name: "ort"})
	runtime.Register(&Backend{name: "ort-cuda", cuda: true})
}

// Backend runs models on onnxruntime: on the CPU ("ort") or on a CUDA GPU
// ("ort-cuda").
type Backend struct {
	name string
	cuda bool
}

var _ runtime.Backend = (*Backend)(nil)

// Name is "ort" or "ort-cuda".
func (b *Backend) Name() string { return b.name }

// Available loads the library (see SetLibPath for where it looks) and, for
// ort-cuda, checks that a session can be made on GPU 0.
func (b *Backend) Available() error {
	if _, err := load(""); err != nil {
		return err
	}
	if b.cuda {
		return cudaProbe()
	}
	return nil
}

// Prepare encodes the model to ONNX and makes an onnxruntime session from it.
func (b *Backend) Prepare(m *graph.Model, opts runtime.Options) (runtime.Plan, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("ort: nil model")
	}
	data, err := importer.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("ort: encoding the model for onnxruntime: %w", err)
	}
	return b.prepare(data, m.Graph.RuntimeInputs(), m.Graph.Outputs, opts)
}

// PrepareONNX makes a plan from ONNX bytes as they are, without the importer's
// round trip; the plan's inputs and outputs are those onnxruntime reports
// (symbolic dimensions show as unknown). Comparing it with Prepare on the
// imported model checks that the round trip changes nothing.
func (b *Backend) PrepareONNX(data []byte, opts runtime.Options) (runtime.Plan, error) {
	if _, err := load(opts.LibPath); err != nil {
		return nil, err
	}
	ins, outs, err := ortgo.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	return b.prepare(data, valueInfos(ins), valueInfos(outs), opts)
}

func valueInfos(infos []ortgo.InputOutputInfo) []graph.ValueInfo {
	out := make([]graph.ValueInfo, len(infos))
	for i, in := range infos {
		shape := make(graph.Shape, len(in.Dimensions))
		for j, d := range in.Dimensions {
			shape[j] = graph.Dim{Value: d}
			if d < 0 {
				shape[j] = graph.Unknown
			}
		}
		out[i] = graph.ValueInfo{Name: in.Name, DType: graph.DType(in.DataType), Shape: shape, HasShape: true}
	}
	return out
}

func (b *Backend) prepare(data []byte, inputs, outputs []graph.ValueInfo, opts runtime.Options) (runtime.Plan, error) {
	if _, err := load(opts.LibPath); err != nil {
		return nil, err
	}
	if err := checkValues(inputs, outputs, !b.cuda); err != nil {
		return nil, err
	}
	so, err := b.sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	inNames, outNames := names(inputs), names(outputs)
	sess, err := ortgo.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("ort: creating the onnxruntime session: %s", strings.TrimPrefix(err.Error(), "Error creating C session: "))
	}
	return &plan{sess: sess, inputs: inputs, outputs: outputs, bind: !b.cuda}, nil
}

// checkValues refuses, all at once, inputs and outputs whose element type is
// not one ebmrun computes with; a session could not hand them over. A model
// without inputs runs only through an IoBinding (onnxruntime_go's Run indexes
// the first input), which needs every output's shape fixed in advance.
func checkValues(inputs, outputs []graph.ValueInfo, binding bool) error {
	var bad []string
	for _, v := range inputs {
		if !v.DType.Computable() {
			bad = append(bad, fmt.Sprintf("input %q is %s", v.Name, v.DType))
		}
	}
	for _, v := range outputs {
		if !v.DType.Computable() {
			bad = append(bad, fmt.Sprintf("output %q is %s", v.Name, v.DType))
		}
	}
	if len(inputs) == 0 && !(binding && allFixed(outputs)) {
		bad = append(bad, "the model has no runtime inputs and not every output has a fixed shape")
	}
	if len(outputs) == 0 {
		bad = append(bad, "the model has no outputs")
	}
	if bad != nil {
		return fmt.Errorf("ort: %w: %s (sessions take float32, int64 and bool tensors)", ErrUnsupported, strings.Join(bad, "; "))
	}
	return nil
}

func allFixed(vs []graph.ValueInfo) bool {
	for _, v := range vs {
		if !v.HasShape || !fixed(v.Shape) {
			return false
		}
	}
	return true
}

// ErrUnsupported is wrapped by Prepare's error for models whose inputs or
// outputs a session cannot exchange.
var ErrUnsupported = errors.New("unsupported model interface")

func names(vs []graph.ValueInfo) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

func (b *Backend) sessionOptions(opts runtime.Options) (*ortgo.SessionOptions, error) {
	if err := runtime.CheckThreads(opts.Threads); err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("ort: setting %d threads: %w", threads, err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("ort: setting inter-op threads: %w", err)
	}
	if b.cuda {
		if err := appendCUDA(so, opts.Device); err != nil {
			so.Destroy()
			return nil, err
		}
	}
	return so, nil
}

// appendCUDA adds the CUDA execution provider on the given GPU.
func appendCUDA(so *ortgo.SessionOptions, device int) error {
	co, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(err)
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": fmt.Sprint(device)}); err != nil {
		return cudaError(err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return cudaError(err)
	}
	return nil
}

func cudaError(err error) error { return &CUDAError{Detail: err.Error()} }

var cudaOnce struct {
	sync.Once
	err error
}

// cudaProbe makes a session for a one-node model on GPU 0, once per process:
// appending the provider succeeds on machines whose library has the CUDA
// provider but no GPU, and only creating a session finds out.
func cudaProbe() error {
	cudaOnce.Do(func() {
		b := &Backend{name: "ort-cuda", cuda: true}
		p, err := b.prepareProbe()
		if err != nil {
			if !errors.Is(err, runtime.ErrUnavailable) {
				err = cudaError(err)
			}
			cudaOnce.err = err
			return
		}
		p.Close()
	})
	return cudaOnce.err
}

func (b *Backend) prepareProbe() (runtime.Plan, error) {
	x := graph.ValueInfo{Name: "x", DType: graph.Float32, Shape: graph.Fixed(1), HasShape: true}
	y := x
	y.Name = "y"
	m := &graph.Model{
		IRVersion: 8,
		Opsets:    []graph.OpsetImport{{Domain: "", Version: 13}},
		Graph: &graph.Graph{
			Name:    "ort_cuda_probe",
			Inputs:  []graph.ValueInfo{x},
			Outputs: []graph.ValueInfo{y},
			Nodes:   []*graph.Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		},
	}
	return b.Prepare(m, runtime.Options{Threads: 1})
}
