// Package density computes the log-density of a score model at given
// points through the probability-flow ODE (Song et al. 2021, "Score-based
// generative modeling through stochastic differential equations", App. D):
// for a VE model (σ- or label-conditioned, or an energy model),
//
//	dx/dσ = −σ·s(x, σ),   log p_σ₀(x₀) = log N(x(σ_max); 0, σ_max²I) − ∫ σ·div s dσ,
//
// and for a time-conditioned DDPM ε-model the VP ODE
// dx/dt = −½β(t)(x + s(x, t)) with prior N(0, I). The divergence comes from
// the graph autodiff — one vector–Jacobian product per basis vector (exact)
// or per Hutchinson probe — so it runs on every backend; the ODE is
// integrated by Dormand–Prince 5(4) with adaptive steps, or fixed steps.
//
//	e, err := density.New(backend, model, spec, runtime.Options{})
//	defer e.Close()
//	res, err := e.LogP(ctx, x, n, density.Options{})
//	fmt.Println(res.Mean, res.StdErr, res.BitsPerDim)
package density
