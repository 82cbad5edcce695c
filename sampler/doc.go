// Package sampler draws samples from score-based models: unadjusted
// Langevin (ULA), annealed Langevin dynamics (ALD, NCSN, with NCSNv2's final
// denoising), consistent annealed sampling (CAS), the predictor–corrector
// sampler of the VE SDE (PC) and DDPM ancestral sampling, exactly as
// docs/design.md's "Samplers" section writes them.
//
// A sampler needs only a Scorer: something that fills dst with the score
// s(x, σ) of a batch. ModelSource adapts a prepared runtime.Plan and its
// importer.ModelSpec (converting ε-predictions to scores); GMMScorer gives the
// exact score of a dataset.GMM, which is how the samplers are tested.
//
// Run splits N samples into chunks of Config.Batch chains advanced together by
// Config.Workers goroutines, each with a scorer (session) of its own, and
// hands the chunks to a sink in index order, so memory stays bounded by
// batch × workers whatever N is. Every chain draws its randomness from a
// stream of its own, seeded from (Config.Seed, chain index), and batches are
// cut from one fixed grid: the same seed and batch size give bit-identical
// samples for any worker count or sharding, and for any batch size too when
// the scorer treats each chain on its own (see Config.Batch).
//
//	ald := &sampler.ALD{Sigmas: sampler.Geometric(1, 0.01, 10)}
//	src := func() (sampler.Scorer, error) { return sampler.NewGMMScorer(dataset.Ring8()), nil }
//	cfg := sampler.Config{N: 10000, Dim: 2, Seed: 1, Init: sampler.Uniform{Lo: -4, Hi: 4}}
//	x, _, err := sampler.Collect(ctx, ald, src, cfg)
//
// Samplers are plain structs: zero fields take the documented defaults
// (NCSN's: σ 1 → 0.01 over L = 10 levels, T = 100 steps per level,
// ε = 2e-5), and Validate says what is wrong with a setting before a run.
//
// FromSpec makes the sampler for a model as `ebmrun sample` does: by name
// (Names lists them), with the caller's Overrides, then the model's
// recommended settings — only those made for that sampler — then the
// sampler's own defaults; it refuses a σ- or label-conditioned model whose σ
// schedule is unknown (ErrNoSchedule). Describe lists the settings a sampler
// runs with.
//
// Config.Stop ends a run at the next batch boundary with the samples
// finished (ErrStopped); Config.Box reports chains that leave a plausible
// range (Stats.Escape), where a step size is too large.
package sampler
