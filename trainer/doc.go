// Package trainer trains noise-conditional score networks (NCSN) in Go and
// exports them to ONNX with ebmrun's metadata.
//
// An Arch (MLP for vectors, UNet for images) builds the network with
// graph.Builder as an inference graph: inputs x [N, …data] and σ [N],
// output score = net(x, log σ)/σ. The energy architectures (EnergyMLP for
// vectors, EnergyConv for images) build a scalar E(x, σ) instead, and their
// score graph is −∇x E written by the autodiff; they also train by LossCD. A loss (LossDSM, LossSSM, LossSSMVR,
// LossFDSSM; docs/design.md "Losses", weighted by λ(σ) = σ²) is written around
// that graph, and graph/autodiff differentiates it with respect to the
// parameters, which become inputs. The sliced losses differentiate twice:
// vᵀ∇x(vᵀs) is itself a gradient graph. The result — forward, loss and
// gradient in one graph of ordinary ONNX ops — is prepared once on a
// runtime backend (onnxruntime or the pure-Go one) and run every step; Adam,
// gradient clipping, warm-up and the weight average (EMA) are plain Go on
// float32 slices.
//
//	data, _ := trainer.NewToyData("swissroll")
//	be, _ := runtime.Get("auto")
//	tr, _ := trainer.New(trainer.Config{Steps: 3000, Batch: 512}, data, be)
//	defer tr.Close()
//	err := tr.Run(ctx, trainer.RunOptions{Checkpoint: "run.ckpt", CheckpointEvery: 1000, Log: logFile})
//	err = tr.Export("model.onnx", nil)
//
// Every random draw comes from explicit streams: the initial weights from
// (Config.Seed, −1), step k's batch, σ levels, noise and projections from
// (Config.Seed, k). A checkpoint therefore holds only the weights, Adam's
// moments and the averages, and a run resumed from one (LoadCheckpoint)
// reproduces the uninterrupted run bit for bit on the same backend.
//
// Export writes the inference graph with the averaged weights and the
// ebmrun.* metadata (kind, condition, σ schedule, data shape and range,
// sampler defaults, provenance), so `ebmrun sample` needs no flags.
package trainer
