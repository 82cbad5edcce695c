// Package dataset holds toy distributions with exact log-densities and
// scores, used to test samplers and score-matching objectives against the
// truth, and loaders for data on disk.
//
// A Gaussian mixture (GMM) knows its score at every noise level in closed
// form: convolving a component N(μ, s²I) with N(0, σ²I) gives
// N(μ, (s²+σ²)I), so
//
//	g := dataset.Ring8()
//	x := g.Sample(nil, 1000, rand.New(rand.NewPCG(1, 2)))
//	s := g.Score(nil, x[:2], 0.1) // ∇x log (p * N(0, 0.1²I)) at the first sample
//
// The mixtures and toy distributions (Toy) compute in float64: they are
// references, not fast paths. The loaders (Load, LoadNpy, LoadCSV, LoadIDX,
// LoadPNGDir) read data sets into float32 tensors [N, …], and Scaling records
// how they were mapped to the range a model trains on.
package dataset
