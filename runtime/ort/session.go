//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// plan holds one onnxruntime session. onnxruntime's Run is safe to call from
// several goroutines at once, so every Session of a plan shares it and owns
// only its input and output tensors.
type plan struct {
	sess            *ortgo.DynamicAdvancedSession
	inputs, outputs []graph.ValueInfo
	// bind: sessions run through an IoBinding when every output tensor is
	// pre-made. Only on the CPU: onnxruntime copies a bound input to the
	// GPU when it is bound, not when the session runs.
	bind bool
}

var _ runtime.Plan = (*plan)(nil)

func (p *plan) Inputs() []graph.ValueInfo  { return p.inputs }
func (p *plan) Outputs() []graph.ValueInfo { return p.outputs }

func (p *plan) NewSession() (runtime.Session, error) {
	if p.sess == nil {
		return nil, errors.New("ort: plan is closed")
	}
	s := &session{
		p:       p,
		in:      make([]slot, len(p.inputs)),
		out:     make([]slot, len(p.outputs)),
		inVals:  make([]ortgo.Value, len(p.inputs)),
		outVals: make([]ortgo.Value, len(p.outputs)),
	}
	if p.bind {
		b, err := p.sess.CreateIoBinding()
		if err != nil {
			return nil, fmt.Errorf("ort: %w", err)
		}
		s.binding = b
		s.boundIn = make([]ortgo.Value, len(p.inputs))
		s.boundOut = make([]ortgo.Value, len(p.outputs))
	}
	return s, nil
}

func (p *plan) Close() error {
	if p.sess == nil {
		return nil
	}
	err := p.sess.Destroy()
	p.sess = nil
	return err
}

// slot is an onnxruntime tensor a session owns, with the Go memory behind it.
// It is kept while dtype and shape stay the same, so a run with the same batch
// size as the last makes no new tensors.
type slot struct {
	val   ortgo.Value // nil when empty
	dtype graph.DType
	shape []int64
	f32   []float32
	i64   []int64
	b     []bool
}

func (sl *slot) release() {
	if sl.val != nil {
		sl.val.Destroy()
		sl.val = nil
	}
}

func (sl *slot) matches(dt graph.DType, shape []int64) bool {
	return sl.val != nil && sl.dtype == dt && slices.Equal(sl.shape, shape)
}

// ensure makes sl hold a tensor of dtype dt and the given shape, keeping the
// current one when it already does. Rank-0 tensors are onnxruntime_go
// Scalars, whose value is fixed when made; ensure remakes them when the value
// in the slot's buffer changes (see setScalar).
func (sl *slot) ensure(dt graph.DType, shape []int64) error {
	if sl.matches(dt, shape) {
		return nil
	}
	sl.release()
	n := int(graph.NumElements(shape))
	var err error
	switch dt {
	case graph.Float32:
		sl.val, err = newValue(shape, grow(&sl.f32, n))
	case graph.Int64:
		sl.val, err = newValue(shape, grow(&sl.i64, n))
	case graph.Bool:
		sl.val, err = newValue(shape, grow(&sl.b, n))
	default:
		err = fmt.Errorf("element type %s is not supported (float32, int64, bool)", dt)
	}
	if err != nil {
		sl.val = nil
		return err
	}
	sl.dtype = dt
	sl.shape = append(sl.shape[:0], shape...)
	return nil
}

func newValue[T ortgo.TensorData](shape []int64, data []T) (ortgo.Value, error) {
	if len(shape) == 0 {
		return ortgo.NewScalar(data[0])
	}
	return ortgo.NewTensor(ortgo.Shape(shape), data)
}

// grow sets *buf to length n, reallocating only when its capacity is short.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	*buf = (*buf)[:n]
	return *buf
}

// session runs its plan's onnxruntime session with tensors it owns: inputs are
// copied in, outputs copied out to the caller's tensors. Output tensors from
// one run are handed to the next as pre-made outputs while the input shapes
// stay the same, so onnxruntime writes into them and a steady-state Run makes
// no tensors. With every output pre-made, the run goes through an IoBinding
// whose tensors are rebound only when they change, and allocates nothing;
// otherwise through onnxruntime_go's Run, which allocates a few small slices.
type session struct {
	p        *plan
	in, out  []slot
	inVals   []ortgo.Value
	outVals  []ortgo.Value
	outReady bool // out holds the output shapes of the current input shapes

	binding           *ortgo.IoBinding // nil: always use Run
	boundIn, boundOut []ortgo.Value    // what binding holds now

	compute time.Duration // inside onnxruntime, summed over runs

	runOpts *ortgo.RunOptions // made on the first run under a deadline
}

var (
	_ runtime.Session      = (*session)(nil)
	_ runtime.ComputeTimer = (*session)(nil)
)

// ComputeTime is the time spent inside onnxruntime's Run over all of the
// session's runs; the rest of Run's time is checking and copying tensors.
func (s *session) ComputeTime() time.Duration { return s.compute }

func (s *session) Close() error {
	if s.binding != nil {
		s.binding.Destroy()
		s.binding = nil
	}
	if s.runOpts != nil {
		s.runOpts.Destroy()
		s.runOpts = nil
	}
	for i := range s.in {
		s.in[i].release()
	}
	for i := range s.out {
		s.out[i].release()
	}
	s.p = nil
	return nil
}

func (s *session) Run(inputs, outputs []*graph.Tensor) error {
	if s.p == nil || s.p.sess == nil {
		return errors.New("ort: session or plan is closed")
	}
	if len(inputs) != len(s.in) || len(outputs) != len(s.out) {
		return fmt.Errorf("ort: Run got %d inputs and %d outputs, the model has %d and %d",
			len(inputs), len(outputs), len(s.in), len(s.out))
	}
	for i, t := range inputs {
		if err := s.setInput(i, t); err != nil {
			return fmt.Errorf("ort: input %q: %w", s.p.inputs[i].Name, err)
		}
	}
	for i, t := range outputs {
		if t == nil {
			return fmt.Errorf("ort: output %q: nil tensor (the caller owns output tensors)", s.p.outputs[i].Name)
		}
	}
	preset := s.presetOutputs()
	err := s.run()
	if err != nil && preset && outputShapeMismatch(err) {
		// An output's shape depends on input values, not only input shapes;
		// let onnxruntime allocate the outputs this time.
		s.dropOutputs(true)
		err = s.run()
	}
	if errors.Is(err, ErrTimeout) {
		s.dropOutputs(false)
		return err
	}
	if err != nil {
		s.dropOutputs(false)
		return fmt.Errorf("ort: %s", strings.TrimPrefix(err.Error(), "Error running network: "))
	}
	s.outReady = true
	for i, t := range outputs {
		if err := s.takeOutput(i, t); err != nil {
			s.outReady = false
			return fmt.Errorf("ort: output %q: %w", s.p.outputs[i].Name, err)
		}
	}
	return nil
}

// run runs through the IoBinding when every output is pre-made, and through
// onnxruntime_go's Run, which can allocate outputs, otherwise.
func (s *session) run() error {
	start := time.Now()
	defer func() { s.compute += time.Since(start) }()
	if d := time.Duration(callTimeout.Load()); d > 0 {
		if len(s.inVals) == 0 {
			return errors.New("a model without inputs needs every output's shape fixed in advance")
		}
		return s.runWithDeadline(d)
	}
	if s.binding == nil || slices.Contains(s.outVals, nil) {
		if len(s.inVals) == 0 {
			return errors.New("a model without inputs needs every output's shape fixed in advance")
		}
		return s.p.sess.Run(s.inVals, s.outVals)
	}
	for i, v := range s.inVals {
		if s.boundIn[i] != v {
			if err := s.binding.BindInput(s.p.inputs[i].Name, v); err != nil {
				s.boundIn[i] = nil
				return err
			}
			s.boundIn[i] = v
		}
	}
	for i, v := range s.outVals {
		if s.boundOut[i] != v {
			if err := s.binding.BindOutput(s.p.outputs[i].Name, v); err != nil {
				s.boundOut[i] = nil
				return err
			}
			s.boundOut[i] = v
		}
	}
	return s.p.sess.RunWithBinding(s.binding)
}

// outputShapeMismatch recognises onnxruntime's complaint about a pre-made
// output of the wrong shape (worded differently across releases).
func outputShapeMismatch(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "pre-allocated output") || strings.Contains(msg, "Shape mismatch")
}

// setInput copies t into the i-th input slot.
func (s *session) setInput(i int, t *graph.Tensor) error {
	if t == nil {
		return errors.New("nil tensor")
	}
	if want := s.p.inputs[i].DType; t.DType != want {
		return fmt.Errorf("got %s, the model takes %s", t.DType, want)
	}
	if err := t.Check(); err != nil {
		return err
	}
	sl := &s.in[i]
	remake := !sl.matches(t.DType, t.Shape)
	if remake {
		s.outReady = false
	} else if len(t.Shape) == 0 && !sameScalar(sl, t) {
		remake = true // a Scalar's value is fixed when it is made
	}
	if remake {
		sl.release()
	}
	// Fill the buffer before making a tensor over it: a Scalar copies its
	// value when made, and ensure reuses the buffer grow returns here.
	n := int(t.Len())
	switch t.DType {
	case graph.Float32:
		copy(grow(&sl.f32, n), t.F32)
	case graph.Int64:
		copy(grow(&sl.i64, n), t.I64)
	case graph.Bool:
		copy(grow(&sl.b, n), t.B)
	}
	if err := sl.ensure(t.DType, t.Shape); err != nil {
		return err
	}
	s.inVals[i] = sl.val
	return nil
}

func sameScalar(sl *slot, t *graph.Tensor) bool {
	switch t.DType {
	case graph.Float32:
		return math.Float32bits(sl.f32[0]) == math.Float32bits(t.F32[0])
	case graph.Int64:
		return sl.i64[0] == t.I64[0]
	case graph.Bool:
		return sl.b[0] == t.B[0]
	}
	return false
}

// presetOutputs fills outVals with the session's own output tensors where
// their shapes are known — from the last run with these input shapes, or
// declared fixed in the model — and nil elsewhere, for onnxruntime to
// allocate. It reports whether any was preset.
func (s *session) presetOutputs() bool {
	preset := false
	for i := range s.out {
		sl := &s.out[i]
		decl := s.p.outputs[i]
		switch {
		case s.outReady && sl.val != nil:
		case decl.HasShape && fixed(decl.Shape):
			if err := sl.ensure(decl.DType, decl.Shape.Ints()); err != nil {
				sl.release()
			}
		default:
			sl.release()
		}
		s.outVals[i] = sl.val
		preset = preset || sl.val != nil
	}
	return preset
}

func fixed(shape graph.Shape) bool {
	for _, d := range shape {
		if !d.Known() {
			return false
		}
	}
	return true
}

// dropOutputs forgets the preset output tensors after a failed run. Rank-0
// outputs stay preset when keepScalars is set, since onnxruntime_go cannot
// wrap a rank-0 tensor that onnxruntime allocated.
func (s *session) dropOutputs(keepScalars bool) {
	s.outReady = false
	for i := range s.out {
		sl := &s.out[i]
		if v := s.outVals[i]; !isNil(v) && v != sl.val {
			v.Destroy() // allocated by onnxruntime before the run failed
		}
		if !(keepScalars && sl.val != nil && len(sl.shape) == 0) {
			sl.release()
		}
		s.outVals[i] = sl.val
	}
}

// takeOutput adopts an output onnxruntime allocated as the slot's tensor for
// the next run and copies the i-th output into dst.
func (s *session) takeOutput(i int, dst *graph.Tensor) error {
	sl := &s.out[i]
	if v := s.outVals[i]; v != sl.val {
		sl.release()
		if err := sl.adopt(v); err != nil {
			v.Destroy()
			s.outVals[i] = nil
			return err
		}
	}
	switch v := sl.val.(type) {
	case *ortgo.Scalar[float32]:
		sl.f32 = append(sl.f32[:0], v.GetData())
	case *ortgo.Scalar[int64]:
		sl.i64 = append(sl.i64[:0], v.GetData())
	case *ortgo.Scalar[bool]:
		sl.b = append(sl.b[:0], v.GetData())
	}
	setShape(dst, sl.dtype, sl.shape)
	n := int(graph.NumElements(sl.shape))
	switch sl.dtype {
	case graph.Float32:
		fill(&dst.F32, sl.f32[:n])
	case graph.Int64:
		fill(&dst.I64, sl.i64[:n])
	case graph.Bool:
		fill(&dst.B, sl.b[:n])
	}
	return nil
}

// adopt takes a tensor onnxruntime_go made (it copies onnxruntime's output
// into Go memory) as the slot's own.
func (sl *slot) adopt(v ortgo.Value) error {
	switch t := v.(type) {
	case *ortgo.Tensor[float32]:
		sl.dtype, sl.f32 = graph.Float32, t.GetData()
	case *ortgo.Tensor[int64]:
		sl.dtype, sl.i64 = graph.Int64, t.GetData()
	case *ortgo.Tensor[bool]:
		sl.dtype, sl.b = graph.Bool, t.GetData()
	default:
		return fmt.Errorf("onnxruntime returned a %T; sessions return float32, int64 and bool tensors", v)
	}
	sl.val = v
	sl.shape = append(sl.shape[:0], v.GetShape()...)
	return nil
}

// setShape gives dst the dtype and shape, reusing its shape slice, and drops
// data slices of another dtype.
func setShape(dst *graph.Tensor, dt graph.DType, shape []int64) {
	if dst.DType != dt {
		dst.F32, dst.I64, dst.B, dst.Str, dst.Raw = nil, nil, nil, nil, nil
		dst.DType = dt
	}
	dst.Shape = append(dst.Shape[:0], shape...)
	if dst.Shape == nil {
		dst.Shape = []int64{}
	}
}

// fill copies src into *dst, reusing *dst when it is large enough.
func fill[T any](dst *[]T, src []T) {
	if cap(*dst) < len(src) {
		*dst = make([]T, len(src))
	}
	*dst = (*dst)[:len(src)]
	copy(*dst, src)
}

// isNil reports whether v holds no tensor: a nil interface, or one holding a
// nil pointer, which onnxruntime_go leaves behind when it fails to wrap an
// output (a rank-0 output it allocated, say).
func isNil(v ortgo.Value) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
