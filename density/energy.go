package density

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/graph/autodiff"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
)

// Energy evaluates an energy model's E(x) and ∇x E(x) at one condition (the
// smallest σ of a σ-conditioned model, or none), for its normalising
// constant Z = ∫ exp(−E) and log p = −E − log Z. The gradient comes from one
// vector–Jacobian product of the graph autodiff, so it runs on every
// backend. An Energy is used by one goroutine at a time.
type Energy struct {
	plan  runtime.Plan
	sess  runtime.Session
	spec  *importer.ModelSpec
	d     int
	sigma float64

	ins, outs []*graph.Tensor
	xi, ci    int // positions of x and the condition among the inputs (ci −1: none)
	cotI      int
	ei, gi    int // positions of the energy and the gradient among the outputs
	calls     int64
}

// NewEnergy prepares m (spec.Kind energy) on be. Points of any data shape
// (an image energy's [C, H, W] too) are d = Π shape values each.
// sigma is the condition of a σ-conditioned model; 0 means the smallest σ
// of its schedule. Label- and time-conditioned energies are refused.
func NewEnergy(be runtime.Backend, m *graph.Model, spec *importer.ModelSpec, sigma float64, ro runtime.Options) (*Energy, error) {
	if spec.Kind != importer.OutEnergy {
		return nil, fmt.Errorf("density: the model is a %s model, not an energy", spec.Kind)
	}
	if len(spec.DataShape) == 0 || graph.NumElements(spec.DataShape) < 1 {
		return nil, fmt.Errorf("density: the energy's data shape %v is unknown or empty", spec.DataShape)
	}
	switch spec.Condition {
	case importer.CondNone:
		sigma = 0
	case importer.CondSigma:
		if sigma == 0 {
			if len(spec.Sigmas) == 0 {
				return nil, errors.New("density: the energy is σ-conditioned and its metadata has no schedule; give σ")
			}
			sigma = slices.Min(spec.Sigmas)
		}
		if !(sigma > 0) || math.IsInf(sigma, 0) {
			return nil, fmt.Errorf("density: σ = %v must be positive", sigma)
		}
	default:
		return nil, fmt.Errorf("density: %s-conditioned energies are not supported", spec.Condition)
	}
	gm, res, err := autodiff.VJP(m, []string{spec.Output}, []string{spec.XInput}, autodiff.Options{})
	if err != nil {
		return nil, fmt.Errorf("density: ∇x E: %w", err)
	}
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
		return nil, fmt.Errorf("density: prepare the energy graph: %w", err)
	}
	e := &Energy{plan: plan, spec: spec, d: int(graph.NumElements(spec.DataShape)), sigma: sigma, ci: -1, cotI: -1, ei: -1, gi: -1}
	for i, in := range plan.Inputs() {
		switch in.Name {
		case spec.XInput:
			e.xi = i
		case spec.CondInput:
			e.ci = i
		case res.Cotangents[0]:
			e.cotI = i
		default:
			plan.Close()
			return nil, fmt.Errorf("density: the energy graph has an input %q this cannot feed", in.Name)
		}
		e.ins = append(e.ins, nil)
	}
	for i, o := range plan.Outputs() {
		switch o.Name {
		case spec.Output:
			e.ei = i
		case res.Grads[0]:
			e.gi = i
		}
		e.outs = append(e.outs, &graph.Tensor{})
	}
	if e.ei < 0 || e.gi < 0 || e.cotI < 0 || (spec.Condition == importer.CondSigma && e.ci < 0) {
		plan.Close()
		return nil, errors.New("density: the energy graph lacks the energy, its gradient or an input")
	}
	if e.sess, err = plan.NewSession(); err != nil {
		plan.Close()
		return nil, fmt.Errorf("density: %w", err)
	}
	return e, nil
}

// Close releases the session and the plan.
func (e *Energy) Close() error { return errors.Join(e.sess.Close(), e.plan.Close()) }

// Dim is the data dimension.
func (e *Energy) Dim() int { return e.d }

// Sigma is the condition the energy is evaluated at (0: unconditional).
func (e *Energy) Sigma() float64 { return e.sigma }

// Calls is the number of model rows evaluated so far.
func (e *Energy) Calls() int64 { return e.calls }

// Eval writes E(x) of n points (n·d values of x) into en and, when grad is
// not nil, ∇x E into grad (n·d values).
func (e *Energy) Eval(en []float64, grad []float64, x []float32, n int) error {
	e.ins[e.xi] = graph.NewFloat32(append([]int64{int64(n)}, e.spec.DataShape...), x[:n*e.d])
	if e.ci >= 0 {
		c := make([]float32, n)
		for i := range c {
			c[i] = float32(e.sigma)
		}
		shape := []int64{int64(n)}
		if e.spec.CondRank == 2 {
			shape = append(shape, 1)
		}
		e.ins[e.ci] = graph.NewFloat32(shape, c)
	}
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	e.ins[e.cotI] = graph.NewFloat32([]int64{int64(n)}, ones)
	if err := e.sess.Run(e.ins, e.outs); err != nil {
		return fmt.Errorf("density: energy: %w", err)
	}
	e.calls += int64(n)
	ev, gv := e.outs[e.ei].F32, e.outs[e.gi].F32
	if len(ev) != n || len(gv) != n*e.d {
		return fmt.Errorf("density: the energy gave %d values and %d gradient values for %d points", len(ev), len(gv), n)
	}
	for i := 0; i < n; i++ {
		en[i] = float64(ev[i])
	}
	if grad != nil {
		for i := range gv[:n*e.d] {
			grad[i] = float64(gv[i])
		}
	}
	return nil
}

// LogZ is an estimate of log Z = log ∫ exp(−E(x)) dx.
type LogZ struct {
	LogZ   float64 `json:"log_z"`
	StdErr float64 `json:"stderr"` // AIS: the delta-method standard error of log Ẑ; grid: 0
	Method string  `json:"method"` // "ais" or "grid"
	// AIS: chains, temperatures, the base's standard deviation, the mean
	// MALA acceptance and the effective sample size of the weights.
	Chains       int     `json:"chains,omitempty"`
	Temperatures int     `json:"temperatures,omitempty"`
	BaseStd      float64 `json:"base_std,omitempty"`
	Accept       float64 `json:"accept,omitempty"`
	ESS          float64 `json:"ess,omitempty"`
	// Grid: points per axis and the box.
	Points int       `json:"points,omitempty"`
	Lo     []float64 `json:"lo,omitempty"`
	Hi     []float64 `json:"hi,omitempty"`
	// EdgeMass is the grid's share of exp(−E) in the outermost cells: a
	// box too small shows here.
	EdgeMass float64 `json:"edge_mass,omitempty"`
}

// AISOptions are annealed importance sampling's settings; zero values mean
// the defaults.
type AISOptions struct {
	Chains       int     // default 1000
	Temperatures int     // intermediate distributions; default 1000
	BaseStd      float64 // std of the N(0, s²I) base; default a quarter of the data range's width, or 3
	Seed         uint64
}

// AIS estimates log Z by annealed importance sampling (Neal 2001) from the
// normalised base q₀ = N(0, s²I) to exp(−E) through
// π_β ∝ q₀^(1−β)·exp(−βE), β_k = (k/K)⁴, with one MALA step per
// temperature whose step size adapts to keep the acceptance near 0.6 (a
// common rule; the adaptation looks only at past acceptances of all
// chains). Each chain's log weight is Σ_k (β_k − β_{k−1})·(−E(x) − log q₀(x));
// log Ẑ is the log of the weights' mean and its standard error the delta
// method's, sd(w)/(mean(w)·√n).
func (e *Energy) AIS(ctx context.Context, o AISOptions) (*LogZ, error) {
	if o.Chains == 0 {
		o.Chains = 1000
	}
	if o.Temperatures == 0 {
		o.Temperatures = 1000
	}
	if o.BaseStd == 0 {
		o.BaseStd = 3
		if r := e.spec.DataRange; len(r) == 2 && r[1] > r[0] {
			o.BaseStd = (r[1] - r[0]) / 4
		}
	}
	if o.Chains < 2 || o.Temperatures < 1 || !(o.BaseStd > 0) || math.IsInf(o.BaseStd, 0) {
		return nil, fmt.Errorf("density: ais: %d chains (at least 2), %d temperatures and base std %v must be positive", o.Chains, o.Temperatures, o.BaseStd)
	}
	n, d, s2 := o.Chains, e.d, o.BaseStd*o.BaseStd
	// Eight vectors of n×d values (six float64, the model's float32 input
	// and the proposal gradients) and the model's output.
	if err := membudget.Check(fmt.Sprintf("density: ais: %d chains of %d values", n, d),
		membudget.Product(int64(n), int64(d), 8*8)); err != nil {
		return nil, fmt.Errorf("%w; fewer chains need less", err)
	}
	r := rand.New(rand.NewPCG(o.Seed, 0xa15))
	x := make([]float64, n*d)
	y := make([]float64, n*d)
	xf := make([]float32, n*d)
	ex, ey := make([]float64, n), make([]float64, n)
	gx, gy := make([]float64, n*d), make([]float64, n*d)
	w := make([]float64, n)
	for i := range x {
		x[i] = o.BaseStd * r.NormFloat64()
	}
	logq0Norm := -0.5 * float64(d) * math.Log(2*math.Pi*s2)
	sq := func(v []float64) float64 {
		var t float64
		for _, a := range v {
			t += a * a
		}
		return t
	}
	eval := func(en, g, v []float64) error {
		for i, a := range v {
			xf[i] = float32(a)
		}
		return e.Eval(en, g, xf, n)
	}
	if err := eval(ex, gx, x); err != nil {
		return nil, err
	}
	eps := 0.01 * s2
	var accSum float64
	prev := 0.0
	for k := 1; k <= o.Temperatures; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		beta := math.Pow(float64(k)/float64(o.Temperatures), 4)
		for i := 0; i < n; i++ {
			logq0 := -sq(x[i*d:(i+1)*d])/(2*s2) + logq0Norm
			w[i] += (beta - prev) * (-ex[i] - logq0)
		}
		prev = beta
		// MALA at π_β: ∇log π_β = −(1−β)x/s² − β∇E.
		grad := func(dst, v, g []float64) {
			for j := range dst {
				dst[j] = -(1-beta)*v[j]/s2 - beta*g[j]
			}
		}
		gpx := make([]float64, n*d)
		grad(gpx, x, gx)
		noise := math.Sqrt(2 * eps)
		for j := range y {
			y[j] = x[j] + eps*gpx[j] + noise*r.NormFloat64()
		}
		if err := eval(ey, gy, y); err != nil {
			return nil, err
		}
		gpy := make([]float64, n*d)
		grad(gpy, y, gy)
		acc := 0
		for i := 0; i < n; i++ {
			xs, ys := x[i*d:(i+1)*d], y[i*d:(i+1)*d]
			lpx := -(1-beta)*sq(xs)/(2*s2) - beta*ex[i]
			lpy := -(1-beta)*sq(ys)/(2*s2) - beta*ey[i]
			var fwd, bwd float64 // ‖y − x − εg(x)‖², ‖x − y − εg(y)‖²
			for j := 0; j < d; j++ {
				a := ys[j] - xs[j] - eps*gpx[i*d+j]
				b := xs[j] - ys[j] - eps*gpy[i*d+j]
				fwd += a * a
				bwd += b * b
			}
			logA := lpy - lpx - bwd/(4*eps) + fwd/(4*eps)
			if !math.IsNaN(logA) && math.Log(r.Float64()) < logA {
				copy(xs, ys)
				copy(gx[i*d:(i+1)*d], gy[i*d:(i+1)*d])
				ex[i] = ey[i]
				acc++
			}
		}
		rate := float64(acc) / float64(n)
		accSum += rate
		if rate > 0.65 {
			eps *= 1.1
		} else if rate < 0.55 {
			eps *= 0.9
		}
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("density: ais: chain %d's weight is %v (the energy is not finite where it went)", i, v)
		}
	}
	mx := slices.Max(w)
	var sum, sum2 float64
	for _, v := range w {
		u := math.Exp(v - mx)
		sum += u
		sum2 += u * u
	}
	mean := sum / float64(n)
	variance := sum2/float64(n) - mean*mean
	if variance < 0 {
		variance = 0
	}
	return &LogZ{
		LogZ: mx + math.Log(mean), StdErr: math.Sqrt(variance*float64(n)/float64(n-1)) / (mean * math.Sqrt(float64(n))),
		Method: "ais", Chains: n, Temperatures: o.Temperatures, BaseStd: o.BaseStd,
		Accept: accSum / float64(o.Temperatures), ESS: sum * sum / sum2,
	}, nil
}

// MaxGridDim is the largest dimension Grid integrates.
const MaxGridDim = 2

// Grid computes log Z by the midpoint rule on the box [lo, hi] with points
// cells per axis (d ≤ 2): log Z = log Σ exp(−E(cell centre)) + log(cell
// volume). For a smooth energy whose exp(−E) is negligible outside the box
// this converges fast; LogZ.EdgeMass says how much lies in the box's outer
// cells.
func (e *Energy) Grid(ctx context.Context, lo, hi []float64, points int) (*LogZ, error) {
	d := e.d
	if d > MaxGridDim {
		return nil, fmt.Errorf("density: grid: quadrature needs d ≤ %d, the model has d = %d (use ais)", MaxGridDim, d)
	}
	if len(lo) != d || len(hi) != d || points < 2 {
		return nil, fmt.Errorf("density: grid: want a box of %d dimensions and at least 2 points per axis", d)
	}
	h := make([]float64, d)
	logVol := 0.0
	for j := range h {
		if !(hi[j] > lo[j]) || math.IsInf(hi[j]-lo[j], 0) {
			return nil, fmt.Errorf("density: grid: the box [%v, %v] is empty", lo[j], hi[j])
		}
		h[j] = (hi[j] - lo[j]) / float64(points)
		logVol += math.Log(h[j])
	}
	cells := int64(1)
	for j := 0; j < d; j++ {
		cells = membudget.Product(cells, int64(points))
	}
	// Each cell keeps its −E (float64) and whether it is on the edge.
	if err := membudget.Elems(fmt.Sprintf("density: grid: %d points per axis in %d dimensions", points, d), cells, 9); err != nil {
		return nil, fmt.Errorf("%w; fewer grid points need less", err)
	}
	total := int(cells)
	const chunk = 4096
	xf := make([]float32, chunk*d)
	en := make([]float64, chunk)
	neg := make([]float64, 0, total)
	edge := make([]bool, 0, total)
	for start := 0; start < total; start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(chunk, total-start)
		for i := 0; i < m; i++ {
			idx := start + i
			onEdge := false
			for j := 0; j < d; j++ {
				c := idx % points
				idx /= points
				xf[i*d+j] = float32(lo[j] + (float64(c)+0.5)*h[j])
				onEdge = onEdge || c == 0 || c == points-1
			}
			edge = append(edge, onEdge)
		}
		if err := e.Eval(en, nil, xf, m); err != nil {
			return nil, err
		}
		for i := 0; i < m; i++ {
			neg = append(neg, -en[i])
		}
	}
	mx := math.Inf(-1)
	for _, v := range neg {
		if math.IsNaN(v) {
			return nil, errors.New("density: grid: the energy is NaN inside the box")
		}
		mx = max(mx, v)
	}
	if math.IsInf(mx, 0) {
		return nil, errors.New("density: grid: exp(−E) is not finite and positive anywhere in the box")
	}
	var sum, edgeSum float64
	for i, v := range neg {
		u := math.Exp(v - mx)
		sum += u
		if edge[i] {
			edgeSum += u
		}
	}
	return &LogZ{LogZ: mx + math.Log(sum) + logVol, Method: "grid", Points: points,
		Lo: slices.Clone(lo), Hi: slices.Clone(hi), EdgeMass: edgeSum / sum}, nil
}

// LogP writes log p(x) = −E(x) − logZ of n points into dst.
func (e *Energy) LogP(dst []float64, x []float32, n int, logZ float64) error {
	const chunk = 4096
	for start := 0; start < n; start += chunk {
		m := min(chunk, n-start)
		if err := e.Eval(dst[start:start+m], nil, x[start*e.d:(start+m)*e.d], m); err != nil {
			return err
		}
		for i := start; i < start+m; i++ {
			dst[i] = -dst[i] - logZ
		}
	}
	return nil
}
