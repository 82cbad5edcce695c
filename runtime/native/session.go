package native

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
)

// session holds one goroutine's memory for running a plan.
type session struct {
	p      *plan
	pool   *pool
	own    []graph.Tensor    // session-owned value tensors, by slot
	vals   []*graph.Tensor   // the tensor each slot reads from this run
	bufs   []buffer          // shared memory, see plan.assignBuffers
	args   [][]*graph.Tensor // per step: inputs then outputs
	states []any
	params []paramBinding // symbolic dimension sizes seen this run
	x      exec
	held   int64 // bytes of bufs, counted against the memory budget
	closed bool
}

type paramBinding struct {
	name string
	size int64
	from string
}

var _ runtime.Session = (*session)(nil)

// NewSession makes a session with its own buffers and worker goroutines.
func (p *plan) NewSession() (runtime.Session, error) {
	s := &session{
		p:      p,
		own:    make([]graph.Tensor, p.nslots),
		vals:   make([]*graph.Tensor, p.nslots),
		bufs:   make([]buffer, p.nbufs),
		args:   make([][]*graph.Tensor, len(p.steps)),
		states: make([]any, len(p.steps)),
		params: make([]paramBinding, 0, 8),
	}
	for i := range s.vals {
		if t, ok := p.consts[i]; ok {
			s.vals[i] = t
		} else {
			s.vals[i] = &s.own[i]
		}
	}
	for i, st := range p.steps {
		s.args[i] = make([]*graph.Tensor, len(st.in)+len(st.out))
		if k, ok := st.k.(stateful); ok {
			s.states[i] = k.newState()
		}
	}
	s.pool = newPool(p.threads)
	if s.pool != nil {
		goruntime.AddCleanup(s, func(pl *pool) { pl.close() }, s.pool)
	}
	return s, nil
}

// Close stops the session's workers.
func (s *session) Close() error {
	s.closed = true
	s.pool.close()
	return nil
}

// Run implements runtime.Session.
func (s *session) Run(inputs, outputs []*graph.Tensor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("native: internal error: %v", r)
		}
	}()
	if s.closed {
		return errors.New("native: run on a closed session")
	}
	p := s.p
	if err := s.checkInputs(inputs); err != nil {
		return err
	}
	if len(outputs) != len(p.outputs) {
		return fmt.Errorf("native: got %d output tensors, the model has %d outputs", len(outputs), len(p.outputs))
	}
	for k, o := range outputs {
		if o == nil {
			return fmt.Errorf("native: output %q: tensor is nil", p.outputs[k].Name)
		}
		for _, in := range inputs {
			if in == o {
				return fmt.Errorf("native: output %q: tensor is also an input", p.outputs[k].Name)
			}
		}
		for _, o2 := range outputs[:k] {
			if o2 == o {
				return fmt.Errorf("native: output %q: tensor passed twice", p.outputs[k].Name)
			}
		}
	}
	for k, slot := range p.inSlots {
		s.vals[slot] = inputs[k]
	}
	for k, slot := range p.outSlots {
		if p.outBound[k] {
			s.vals[slot] = outputs[k]
		}
	}
	x := &s.x
	x.pool = s.pool
	var deadline time.Time
	limit := time.Duration(callTimeout.Load())
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for i := range p.steps {
		st := &p.steps[i]
		if limit > 0 && time.Now().After(deadline) {
			return fmt.Errorf("%w (%v), stopped before node %s", ErrTimeout, limit, st.node.Label())
		}
		args := s.args[i]
		for j, slot := range st.in {
			args[j] = nil
			if slot >= 0 {
				args[j] = s.vals[slot]
			}
		}
		outs := args[len(st.in):]
		for j, slot := range st.out {
			outs[j] = nil
			if slot >= 0 {
				outs[j] = s.vals[slot]
			}
		}
		ins := args[:len(st.in)]
		if err := st.k.infer(ins, outs); err != nil {
			return stepError(st, err)
		}
		for j, o := range outs {
			if o == nil {
				continue
			}
			n, err := graph.CheckedNumElements(o.Shape)
			if err != nil || n > maxElements {
				return stepError(st, fmt.Errorf("output shape %v is too large", o.Shape))
			}
			if b := p.bufOf[st.out[j]]; b >= 0 {
				if grow := s.bufs[b].growth(o.DType, int(n)); grow > 0 {
					if err := membudget.Check(fmt.Sprintf("the activations of a run (%s output %v)", o.DType, o.Shape), s.held+grow); err != nil {
						return stepError(st, err)
					}
					s.held += grow
				}
				s.bufs[b].attach(o, int(n))
			} else {
				attachOwn(o, int(n))
			}
		}
		x.state = s.states[i]
		if err := st.k.run(x, ins, outs); err != nil {
			return stepError(st, err)
		}
	}
	for k, slot := range p.outSlots {
		if !p.outBound[k] {
			copyTensor(outputs[k], s.vals[slot])
		}
	}
	return nil
}

func stepError(st *step, err error) error {
	return fmt.Errorf("native: %w", &graph.NodeError{Node: st.node.Label(), Op: st.node.OpType, Err: err})
}

// checkInputs compares the inputs with the declared ones: count, dtype, rank,
// fixed dimensions, and symbolic dimensions that must agree across inputs.
func (s *session) checkInputs(inputs []*graph.Tensor) error {
	p := s.p
	if len(inputs) != len(p.inputs) {
		return fmt.Errorf("native: got %d input tensors, the model has %d inputs (%s)", len(inputs), len(p.inputs), inputNames(p.inputs))
	}
	s.params = s.params[:0]
	for k, t := range inputs {
		vi := &p.inputs[k]
		if t == nil {
			return fmt.Errorf("native: input %q: tensor is nil", vi.Name)
		}
		if !t.DType.Computable() {
			return fmt.Errorf("native: input %q: element type %s is not supported", vi.Name, t.DType)
		}
		if vi.DType != graph.Undefined && t.DType != vi.DType {
			return fmt.Errorf("native: input %q: expected %s, got %s", vi.Name, vi.DType, t.DType)
		}
		if len(t.Shape) > maxRank {
			return fmt.Errorf("native: input %q: rank %d exceeds the supported %d", vi.Name, len(t.Shape), maxRank)
		}
		n, err := graph.CheckedNumElements(t.Shape)
		if err != nil {
			return fmt.Errorf("native: input %q: %w", vi.Name, err)
		}
		if got := t.DataLen(); got != n {
			return fmt.Errorf("native: input %q: shape %v needs %d elements, data has %d", vi.Name, t.Shape, n, got)
		}
		if !vi.HasShape {
			continue
		}
		if len(t.Shape) != len(vi.Shape) {
			return fmt.Errorf("native: input %q: expected shape %s, got %v (rank %d, not %d)", vi.Name, vi.Shape, t.Shape, len(t.Shape), len(vi.Shape))
		}
		for i, d := range vi.Shape {
			got := t.Shape[i]
			switch {
			case d.Param != "":
				if err := s.bindParam(d.Param, got, vi); err != nil {
					return err
				}
			case d.Known() && d.Value != got:
				return fmt.Errorf("native: input %q: expected shape %s, got %v (dimension %d is %d, not %d)", vi.Name, vi.Shape, t.Shape, i, got, d.Value)
			}
		}
	}
	return nil
}

func (s *session) bindParam(name string, size int64, vi *graph.ValueInfo) error {
	for _, b := range s.params {
		if b.name == name {
			if b.size != size {
				return fmt.Errorf("native: input %q: dimension %q is %d, but input %q has it %d", vi.Name, name, size, b.from, b.size)
			}
			return nil
		}
	}
	s.params = append(s.params, paramBinding{name, size, vi.Name})
	return nil
}

func inputNames(vs []graph.ValueInfo) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += v.Name
	}
	return s
}
