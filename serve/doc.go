// Package serve is ebmrun's sampling and scoring service: an HTTP/JSON API
// over a directory of models, each loaded and prepared once and shared by
// every request, with a dynamic batcher per model that merges the Langevin
// chains of concurrent requests into large model calls.
//
// Every request's chains run in a goroutine of their own through
// sampler.Run, exactly as `ebmrun sample` runs them, with one difference:
// their Scorer is a stream of the model's batcher, which gathers the score
// calls of all open requests — at whatever σ level or step each is — and
// scores them in one call (sampler.ModelScorer.ScoreEach, one noise level
// per row). Chains draw their noise from per-chain streams keyed by (seed,
// index), and the native backend's result for a row does not depend on the
// other rows of its batch, so on native a request's samples are
// bit-identical to `ebmrun sample` with the same seed and options whatever
// else shares its batches.
//
// The API (served at /openapi.json, which the tests check every answer
// against):
//
//	GET  /v1/models, /v1/models/{name}
//	POST /v1/models/{name}/sample   {"n", "seed", "sampler", "steps", "step_lr", "snr", "denoise", "sigmas", "init"}
//	POST /v1/models/{name}/score    {"x": [[…]], "sigma"}
//	POST /v1/models/{name}/eval     {"x": [[…]], "sigma", "objective", "projections", "seed"}
//	GET  /healthz, /readyz, /metrics
//
// Bad input is answered 4xx with {"error", "field"}; overload 429 (or 503
// while draining) with Retry-After.
package serve
