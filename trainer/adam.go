package trainer

import "math"

// adam is Adam (Kingma & Ba 2015) on float32 parameter slices, written as
// PyTorch's torch.optim.Adam computes it, with decoupled weight decay
// (AdamW, Loshchilov & Hutter 2019) when decay > 0:
//
//	m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//	p ← p − lr·wd·p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)
type adam struct {
	beta1, beta2, eps, decay float64
	m, v                     [][]float32
}

func newAdam(params [][]float32, beta1, beta2, eps, decay float64) *adam {
	a := &adam{beta1: beta1, beta2: beta2, eps: eps, decay: decay}
	for _, p := range params {
		a.m = append(a.m, make([]float32, len(p)))
		a.v = append(a.v, make([]float32, len(p)))
	}
	return a
}

// update applies step t (from 1) with learning rate lr to params, with each
// gradient scaled by gscale first (gradient clipping).
func (a *adam) update(params, grads [][]float32, t int, lr, gscale float64) {
	b1, b2 := float32(a.beta1), float32(a.beta2)
	c1, c2 := 1-b1, 1-b2
	step := float32(lr / (1 - math.Pow(a.beta1, float64(t))))
	bc2 := float32(math.Sqrt(1 - math.Pow(a.beta2, float64(t))))
	eps := float32(a.eps)
	wd := float32(1 - lr*a.decay)
	gs := float32(gscale)
	for i, p := range params {
		g, m, v := grads[i], a.m[i], a.v[i]
		g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
		for j := range p {
			gj := g[j] * gs
			m[j] = b1*m[j] + c1*gj
			v[j] = b2*v[j] + c2*gj*gj
			if a.decay != 0 {
				p[j] *= wd
			}
			p[j] -= step * m[j] / (float32(math.Sqrt(float64(v[j])))/bc2 + eps)
		}
	}
}

// globalNorm is ‖(g₁, g₂, …)‖₂ over every gradient, summed in float64.
func globalNorm(grads [][]float32) float64 {
	var s float64
	for _, g := range grads {
		for _, v := range g {
			s += float64(v) * float64(v)
		}
	}
	return math.Sqrt(s)
}

// emaUpdate moves the averages towards the parameters:
// e ← d·e + (1−d)·p.
func emaUpdate(ema, params [][]float32, decay float64) {
	d := float32(decay)
	c := 1 - d
	for i, p := range params {
		e := ema[i][:len(p)]
		for j := range p {
			e[j] = d*e[j] + c*p[j]
		}
	}
}

// emaDecay is the decay used at step t (from 1): the configured one, but
// no more than (1+t)/(10+t), so early averages do not hold on to the
// random initial weights (the schedule of TensorFlow's
// ExponentialMovingAverage with num_updates).
func emaDecay(decay float64, t int) float64 {
	return min(decay, (1+float64(t))/(10+float64(t)))
}
