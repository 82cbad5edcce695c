// Package eval measures score models and their samples.
//
// Score-matching objectives of a model on data: an Evaluator prepares the
// model (and, for the sliced objectives, its sliced-score-matching graph
// built by graph/autodiff) once on a backend, and Evaluate returns one
// Result per σ — value, standard error over samples, n — for ssm, ssm-vr,
// exact (d vector–Jacobian products; d ≤ 64), fd-ssm (forward passes
// only), dsm (with the NCSN σ²-weighted total over levels) and fisher
// (against an exact reference score, such as a Gaussian mixture's). At
// σ > 0 every objective is computed on data perturbed as x + σz with the
// model conditioned on σ; Draws returns exactly the perturbed points and
// projections Evaluate used, so another framework can be given the same;
// the other way round, ObjectiveOptions.Noise and Vectors give Evaluate
// noise and projections made elsewhere (testdata/objectives holds PyTorch's
// values on such inputs).
//
// Sample metrics compare two sets of points x and y (n×d values, row-major,
// float32 or float64; everything accumulates in float64):
//
//   - MMD2: the unbiased squared maximum mean discrepancy with a mixture of
//     RBF kernels whose bandwidths are multiples (BandwidthFactors) of the
//     median pairwise distance, with a permutation p-value;
//   - EnergyDistance: 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ (unbiased), also with a
//     permutation p-value;
//   - SlicedWasserstein1: the mean over random directions of the 1-D
//     Wasserstein-1 distance of the projections;
//   - Compare: all three at once, sharing the pairwise distances.
//
// Each comes with a standard error where it has one. The kernel metrics
// work on at most Options.MaxSamples points of each set (a seeded random
// subset, DefaultMaxSamples unless set), so two sets of 10 000 points
// compare in well under a second; the sliced Wasserstein distance uses
// every point. One Options.Seed fixes every random choice.
//
//	x := toy.Sample(nil, 5000, rand.New(rand.NewPCG(1, 1)))
//	y := toy.Sample(nil, 5000, rand.New(rand.NewPCG(2, 2)))
//	r, err := eval.Compare(x, y, 2, eval.Options{Seed: 1})
//	// r.MMD2.Value ≈ 0, r.MMD2.PValue large: one distribution
package eval
