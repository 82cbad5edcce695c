package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/trainer"
)

// fashionClasses are Fashion-MNIST's class names in label order.
var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// labelsPathFor is the IDX labels file beside an IDX images file:
// …-images-idx3-ubyte[.gz] → …-labels-idx1-ubyte[.gz]; "" when the name
// does not follow that pattern.
func labelsPathFor(images string) string {
	dir, base := filepath.Split(images)
	if !strings.Contains(base, "images-idx3-ubyte") {
		return ""
	}
	return dir + strings.Replace(base, "images-idx3-ubyte", "labels-idx1-ubyte", 1)
}

// loadLabelled reads images (scaled as `ebmrun data` and train scale them)
// and their labels: from labels when given, else from the IDX labels file
// beside the images. Class names come from classes (comma-separated),
// else Fashion-MNIST's for a fashion-mnist file, else the label numbers.
func loadLabelled(images, labels, classes, cmd string) (*trainer.ClassifierData, error) {
	if labels == "" {
		if labels = labelsPathFor(images); labels == "" {
			return nil, usagef("%s: no --labels given and %s is not named …-images-idx3-ubyte[.gz], so its labels file cannot be found", cmd, images)
		}
		if _, err := os.Stat(labels); err != nil {
			return nil, fmt.Errorf("%s: the labels of %s: %w (pass --labels)", cmd, images, err)
		}
	}
	t, err := dataset.Load(images)
	if err != nil {
		return nil, trimPrefix(err, "dataset: ")
	}
	if len(t.Shape) != 4 {
		return nil, fmt.Errorf("%s: %s holds samples of shape %v; a classifier takes images [C, H, W]", cmd, images, t.Shape[1:])
	}
	rng, err := scaleData(t, images, "auto", cmd)
	if err != nil {
		return nil, err
	}
	lt, err := dataset.Load(labels)
	if err != nil {
		return nil, trimPrefix(err, "dataset: ")
	}
	if lt.Shape[0] != t.Shape[0] || graph.NumElements(lt.Shape) != lt.Shape[0] {
		return nil, fmt.Errorf("%s: %s has %d images but %s has labels of shape %v; want one label per image", cmd, images, t.Shape[0], labels, lt.Shape)
	}
	d := &trainer.ClassifierData{Name: filepath.Base(images), X: t.F32, Shape: t.Shape[1:], DataRange: rng}
	d.Labels = make([]int, len(lt.F32))
	k := 0
	for i, v := range lt.F32 {
		if v < 0 || v != float32(math.Trunc(float64(v))) || v > 1e6 {
			return nil, fmt.Errorf("%s: %s: label %d is %v; want integers 0 … K−1", cmd, labels, i, v)
		}
		d.Labels[i] = int(v)
		k = max(k, int(v)+1)
	}
	switch {
	case classes != "":
		d.Classes = strings.Split(classes, ",")
		if len(d.Classes) < k {
			return nil, usagef("%s: --classes names %d classes but %s has labels up to %d", cmd, len(d.Classes), labels, k-1)
		}
	case k <= len(fashionClasses) && strings.Contains(strings.ToLower(images), "fashion"):
		d.Classes = fashionClasses
	default:
		for i := 0; i < max(k, 2); i++ {
			d.Classes = append(d.Classes, strconv.Itoa(i))
		}
	}
	return d, nil
}

// classifierSummary is what train --arch classifier --json prints.
type classifierSummary struct {
	Model      string  `json:"model"`
	Log        string  `json:"log,omitempty"`
	Backend    string  `json:"backend"`
	Data       string  `json:"data"`
	Arch       string  `json:"arch"`
	Steps      int     `json:"steps"`
	Seconds    float64 `json:"seconds"`
	StepMS     float64 `json:"step_ms"`
	FinalLoss  float64 `json:"final_loss"` // mean of the last 100 steps
	Parameters int     `json:"parameters"`
}

// runTrainClassifier is `train --arch classifier`: softmax cross-entropy
// on labelled images, exported with the classifier metadata.
func runTrainClassifier(c *cobra.Command, f *trainFlags) error {
	for _, name := range []string{"resume", "checkpoint", "checkpoint-every", "loss", "sigmas", "projection", "width", "depth", "act", "scale", "clip", "weight-decay", "warmup", "step-lr", "steps-per-level", "confine", "fd-eps", "cd-steps", "cd-step-size", "cd-noise", "buffer", "reinit", "energy-reg"} {
		if c.Flags().Changed(name) {
			return usagef("train: --arch classifier does not take --%s", name)
		}
	}
	if f.data == "" || f.out == "" {
		return usagef("train: --data and --out are required")
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return fmt.Errorf("train: %s exists; pass --force to overwrite it", f.out)
	}
	data, err := loadLabelled(f.data, f.labels, f.classes, "train")
	if err != nil {
		return err
	}
	arch := trainer.Classifier{C1: f.channels, C2: 2 * f.channels, Features: f.features}
	cfg := trainer.ClassifierConfig{Arch: arch, Steps: f.steps, Batch: f.batch, LR: f.lr, EMA: f.ema, Seed: f.seed, Threads: f.threads}
	if f.ema == 0 {
		cfg.EMA = -1
	}
	if err := arch.Validate(); err != nil {
		return usageError{err}
	}
	be, err := getBackend(c, f.backend)
	if err != nil {
		return err
	}
	tr, err := trainer.NewClassifierTrainer(cfg, data, be)
	if err != nil {
		return err
	}
	defer tr.Close()
	logW, logName, closeLog, err := openTrainLog(f.logPath, strings.TrimSuffix(f.out, ".onnx"), false, c.OutOrStdout())
	if err != nil {
		return err
	}
	defer closeLog()

	ctx, received, release := onStepSignals(c.Context(), c.ErrOrStderr(), "stopping after the step in progress",
		"stopped without finishing the step in progress; nothing was written")
	defer release()
	bar := trainProgress(c.ErrOrStderr(), cfg.Steps, 0)
	start := time.Now()
	var recent [100]float64
	enc := json.NewEncoder(logW)
	var logSum float64
	var logN int
	for tr.Done() < cfg.Steps {
		if ctx.Err() != nil {
			bar(nil)
			return exitError{signalStatus(received()), fmt.Errorf("train: interrupted at step %d of %d; the classifier has no checkpoints, nothing was written", tr.Done(), cfg.Steps)}
		}
		loss, err := tr.Step()
		if err != nil {
			bar(nil)
			return err
		}
		recent[tr.Done()%len(recent)] = loss
		logSum += loss
		logN++
		bar(&trainer.StepStats{Step: tr.Done(), Loss: loss})
		if f.logEvery > 0 && (tr.Done()%f.logEvery == 0 || tr.Done() == cfg.Steps) {
			line := map[string]any{"step": tr.Done(), "loss": logSum / float64(logN), "seconds": math.Round(time.Since(start).Seconds()*10) / 10}
			if err := enc.Encode(line); err != nil {
				bar(nil)
				return fmt.Errorf("train: log: %w", err)
			}
			logSum, logN = 0, 0
		}
	}
	bar(nil)
	secs := time.Since(start).Seconds()
	extra := map[string]any{"command": commandLine(c), "train_seconds": math.Round(secs*10) / 10}
	if err := tr.Export(f.out, extra); err != nil {
		return err
	}
	var last float64
	k := min(tr.Done(), len(recent))
	for i := 0; i < k; i++ {
		last += recent[(tr.Done()-i)%len(recent)] / float64(k)
	}
	n := 0
	for _, in := range tr.Net().Model.Graph.Initializers {
		n += int(in.Tensor.Len())
	}
	sum := classifierSummary{Model: f.out, Log: logName, Backend: be.Name(), Data: data.Name, Arch: arch.String(),
		Steps: tr.Done(), Seconds: secs, StepMS: secs * 1000 / float64(tr.Done()), FinalLoss: last, Parameters: n}
	if f.asJSON {
		e := json.NewEncoder(c.OutOrStdout())
		e.SetIndent("", "  ")
		return e.Encode(sum)
	}
	if logName != "-" {
		fmt.Fprintf(c.OutOrStdout(), "trained %d steps (%s, %s on %s) in %.1f s (%.2f ms/step), cross-entropy %.4f (mean of the last 100 steps); wrote %s\n",
			tr.Done(), data.Name, arch, be.Name(), secs, sum.StepMS, last, f.out)
	}
	return nil
}
