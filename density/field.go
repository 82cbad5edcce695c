package density

import (
	"errors"
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

// divGraph is the model extended by the graph autodiff with one
// vector–Jacobian product: for a cotangent input v shaped like x, it outputs
// the model's own output o(x) and ∇x Σ vᵀo(x). With v a basis vector e_j the
// product's j-th entry is ∂o_j/∂x_j (exact divergence, one row per j); with
// a random v, vᵀ∇x(vᵀo) is Hutchinson's estimate — the same term eval's
// sliced score matching uses. It is prepared once and shared by workers.
type divGraph struct {
	plan      runtime.Plan
	spec      *importer.ModelSpec
	cot, grad string
}

func newDivGraph(be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, ro runtime.Options) (*divGraph, error) {
	gm, res, err := autodiff.VJP(m, []string{spec.Output}, []string{spec.XInput}, autodiff.Options{})
	if err != nil {
		return nil, fmt.Errorf("density: divergence graph: %w", err)
	}
	// Only the output and the gradient are needed.
	var outs []graph.ValueInfo
	for _, o := range gm.Graph.Outputs {
		if o.Name == spec.Output || o.Name == res.Grads[0] {
			outs = append(outs, o)
		}
	}
	g := *gm.Graph
	g.Outputs = outs
	gm.Graph = &g
	plan, err := be.Prepare(gm, ro)
	if err != nil {
		return nil, fmt.Errorf("density: prepare the divergence graph: %w", err)
	}
	return &divGraph{plan: plan, spec: spec, cot: res.Cotangents[0], grad: res.Grads[0]}, nil
}

func (g *divGraph) close() error { return g.plan.Close() }

// field evaluates, for one batch, the score and the divergence of the score
// at a noise level, through one session of the divergence graph.
type field struct {
	g    *divGraph
	sess runtime.Session
	d    int
	cond condFunc

	ins, outs        []*graph.Tensor
	x, c, v, o, grad *graph.Tensor
	xShape, cShape   []int64
	rows             int64 // model rows run
	// The probes: Hutchinson's K×b×d (fixed along a trajectory), or nil for
	// the exact divergence.
	probes []float32
	k      int
	calls  int64
}

// condFunc says how to ask the model for the score at noise level u (σ, or
// VP time t): one or two model conditions and the weights that mix their
// outputs into the score, s = Σ w_i·out_i. The slice it returns is reused
// by its next call, so each field (each worker) has its own condFunc.
type condFunc func(u float64) []part

// part is one model condition and its weight in the score.
type part struct {
	sigma float32 // σ input, or the time input's value
	label int64   // label or integer time input
	w     float64
}

func (g *divGraph) newField(d int, cond condFunc) (*field, error) {
	sess, err := g.plan.NewSession()
	if err != nil {
		return nil, fmt.Errorf("density: new session: %w", err)
	}
	f := &field{g: g, sess: sess, d: d, cond: cond}
	for _, in := range g.plan.Inputs() {
		t := &graph.Tensor{DType: in.DType}
		switch in.Name {
		case g.spec.XInput:
			f.x = t
		case g.cot:
			f.v = t
		case g.spec.CondInput:
			f.c = t
			f.cShape = make([]int64, max(1, g.spec.CondRank))
			for i := range f.cShape {
				f.cShape[i] = 1
			}
		default:
			sess.Close()
			return nil, fmt.Errorf("density: model input %q has no role", in.Name)
		}
		f.ins = append(f.ins, t)
	}
	for _, o := range g.plan.Outputs() {
		t := &graph.Tensor{DType: graph.Float32}
		switch o.Name {
		case g.spec.Output:
			f.o = t
		case g.grad:
			f.grad = t
		}
		f.outs = append(f.outs, t)
	}
	if f.x == nil || f.v == nil || f.o == nil || f.grad == nil || (g.spec.Condition != importer.CondNone && f.c == nil) {
		sess.Close()
		return nil, errors.New("density: the divergence graph lacks an input or output")
	}
	return f, nil
}

func (f *field) close() error { return f.sess.Close() }

// eval writes the score at (x, u) into s (b×d) and its divergence into div
// (b). x and s are float64 (the ODE state); the model runs in float32.
func (f *field) eval(s, div, x []float64, b int, u float64) error {
	d := f.d
	p := d // rows per point: one basis vector each
	if f.probes != nil {
		p = f.k
	}
	parts := f.cond(u)
	rows := len(parts) * p * b
	f.xShape = append(append(f.xShape[:0], int64(rows)), f.g.spec.DataShape...)
	if len(f.g.spec.DataShape) == 0 {
		f.xShape = append(f.xShape[:1], int64(d))
	}
	f.x.Shape, f.v.Shape = f.xShape, f.xShape
	f.x.F32 = grow(f.x.F32, rows*d)
	f.v.F32 = grow(f.v.F32, rows*d)
	// Rows are [part][probe][point].
	for q := 0; q < len(parts)*p; q++ {
		xr := f.x.F32[q*b*d : (q+1)*b*d]
		for j, v := range x[:b*d] {
			xr[j] = float32(v)
		}
		vr := f.v.F32[q*b*d : (q+1)*b*d]
		k := q % p
		if f.probes != nil {
			copy(vr, f.probes[k*b*d:(k+1)*b*d])
		} else {
			clear(vr)
			for i := 0; i < b; i++ {
				vr[i*d+k] = 1
			}
		}
	}
	if c := f.c; c != nil {
		f.cShape[0] = int64(rows)
		c.Shape = f.cShape
		if c.DType == graph.Int64 {
			c.I64 = grow(c.I64, rows)
		} else {
			c.F32 = grow(c.F32, rows)
		}
		for pi, pt := range parts {
			lo, hi := pi*p*b, (pi+1)*p*b
			for r := lo; r < hi; r++ {
				if c.DType == graph.Int64 {
					c.I64[r] = pt.label
				} else {
					c.F32[r] = pt.sigma
				}
			}
		}
	}
	f.calls++
	f.rows += int64(rows)
	if err := f.sess.Run(f.ins, f.outs); err != nil {
		return fmt.Errorf("density: model: %w", err)
	}
	if len(f.o.F32) != rows*d || len(f.grad.F32) != rows*d {
		return fmt.Errorf("density: the divergence graph gave %d and %d values for %d rows of %d", len(f.o.F32), len(f.grad.F32), rows, d)
	}
	clear(s[:b*d])
	clear(div[:b])
	for pi, pt := range parts {
		out := f.o.F32[pi*p*b*d:]
		for j := range s[:b*d] {
			s[j] += pt.w * float64(out[j])
		}
		w := pt.w
		if f.probes != nil {
			w /= float64(f.k)
		}
		for q := 0; q < p; q++ {
			base := (pi*p + q) * b * d
			g, v := f.grad.F32[base:base+b*d], f.v.F32[base:base+b*d]
			for i := 0; i < b; i++ {
				var acc float64
				if f.probes == nil {
					acc = float64(g[i*d+q])
				} else {
					for j := i * d; j < (i+1)*d; j++ {
						acc += float64(v[j]) * float64(g[j])
					}
				}
				div[i] += w * acc
			}
		}
	}
	for _, v := range s[:b*d] {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("density: the score is not finite at %s", f.where(u))
		}
	}
	return nil
}

func (f *field) where(u float64) string {
	if f.g.spec.Condition == importer.CondTime {
		return fmt.Sprintf("t=%.4g", u)
	}
	return fmt.Sprintf("σ=%.4g", u)
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// veCond is the condition of a VE model at σ: its σ input, or — for a
// label-conditioned model — the two neighbouring levels σ_i ≥ σ ≥ σ_{i+1}
// with σ·s interpolated linearly in log σ (σ·s, the noise prediction, varies
// slowly where s itself scales like 1/σ); beyond the schedule's ends, the
// end level's σ_i·s_i/σ. ε-models' outputs are turned into scores (−ε/σ).
func veCond(spec *importer.ModelSpec) condFunc {
	eps := spec.Kind == importer.OutEps
	switch spec.Condition {
	case importer.CondLabels:
		sig := spec.Sigmas
		one := make([]part, 1)
		two := make([]part, 2)
		return func(u float64) []part {
			scale := func(i int) float64 {
				if eps {
					return -1 / u
				}
				return sig[i] / u
			}
			L := len(sig)
			switch {
			case u >= sig[0]*(1-labelTol):
				one[0] = part{label: 0, w: scale(0)}
				return one
			case u <= sig[L-1]*(1+labelTol):
				one[0] = part{label: int64(L - 1), w: scale(L - 1)}
				return one
			}
			i := 0
			for i+1 < L && sig[i+1] > u {
				i++
			}
			// sig[i] > u ≥ sig[i+1]
			if math.Abs(u-sig[i+1]) <= labelTol*sig[i+1] {
				one[0] = part{label: int64(i + 1), w: scale(i + 1)}
				return one
			}
			w := math.Log(sig[i]/u) / math.Log(sig[i]/sig[i+1])
			two[0] = part{label: int64(i), w: (1 - w) * scale(i)}
			two[1] = part{label: int64(i + 1), w: w * scale(i+1)}
			return two
		}
	default:
		one := make([]part, 1)
		return func(u float64) []part {
			w := 1.0
			if eps {
				w = -1 / u
			}
			one[0] = part{sigma: float32(u), w: w}
			return one
		}
	}
}

// labelTol is how close σ must be to a schedule entry to count as it.
const labelTol = 1e-6
