package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
)

func init() { commands = append(commands, newClassifyCmd) }

// classifierModel is a classifier (importer.ClassifierSpec) prepared on a
// backend.
type classifierModel struct {
	path             string
	spec             *importer.ClassifierSpec
	plan             runtime.Plan
	sess             runtime.Session
	logitsAt, featAt int // output positions in the plan
}

// openClassifier loads a classifier and prepares it on the named backend.
func openClassifier(c *cobra.Command, path, backend string) (*classifierModel, error) {
	m, err := importer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	spec, err := importer.Classifier(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
	}
	be, err := getBackend(c, backend)
	if err != nil {
		return nil, err
	}
	plan, err := be.Prepare(m, runtime.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", path, be.Name(), trimPrefix(err, "runtime: "))
	}
	sess, err := plan.NewSession()
	if err != nil {
		plan.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cm := &classifierModel{path: path, spec: spec, plan: plan, sess: sess, logitsAt: -1, featAt: -1}
	for i, o := range plan.Outputs() {
		switch o.Name {
		case spec.Logits:
			cm.logitsAt = i
		case spec.Features:
			cm.featAt = i
		}
	}
	if cm.logitsAt < 0 || cm.featAt < 0 {
		cm.Close()
		return nil, fmt.Errorf("%s: the prepared model lacks the outputs %q and %q", path, spec.Logits, spec.Features)
	}
	return cm, nil
}

func (m *classifierModel) Close() error {
	return errors.Join(m.sess.Close(), m.plan.Close())
}

// classified is what a classifier says about n images.
type classified struct {
	N, K, F  int
	Features []float32 // n·F
	Pred     []int     // argmax of the logits
}

// defaultClassifyBatch is the images per classifier call.
const defaultClassifyBatch = 500

// run classifies the images x [N, …], batch at a time, drawing a progress
// bar on progress when it is a terminal.
func (m *classifierModel) run(x *graph.Tensor, batch int, progress io.Writer, what string) (*classified, error) {
	if len(x.Shape) < 2 || x.Shape[0] < 1 {
		return nil, fmt.Errorf("classifier %s: want images [N, …], got shape %v", m.path, x.Shape)
	}
	if m.spec.DataShape != nil && !slices.Equal(x.Shape[1:], m.spec.DataShape) {
		return nil, fmt.Errorf("%s holds samples of shape %v; the classifier %s takes %v", what, x.Shape[1:], m.path, m.spec.DataShape)
	}
	if r := m.spec.DataRange; len(r) == 2 {
		lo, hi := minMaxF32(x.F32)
		if span := r[1] - r[0]; lo < r[0]-span || hi > r[1]+span {
			return nil, fmt.Errorf("%s has values in [%g, %g]; the classifier %s takes images in [%g, %g] (pixels 0–255 need scaling: write the set with `ebmrun data`)", what, lo, hi, m.path, r[0], r[1])
		}
	}
	n := int(x.Shape[0])
	per := int(graph.NumElements(x.Shape[1:]))
	out := &classified{N: n, K: len(m.spec.Classes), Pred: make([]int, n)}
	outs := make([]*graph.Tensor, len(m.plan.Outputs()))
	for i := range outs {
		outs[i] = &graph.Tensor{}
	}
	var done atomic.Int64
	stop := showProgress(progress, &done, int64(n), "classifying "+what, "images")
	defer stop()
	for s := 0; s < n; s += batch {
		e := min(s+batch, n)
		in := graph.NewFloat32(append([]int64{int64(e - s)}, x.Shape[1:]...), x.F32[s*per:e*per])
		if err := m.sess.Run([]*graph.Tensor{in}, outs); err != nil {
			return nil, fmt.Errorf("classifier %s: %w", m.path, err)
		}
		lg, ft := outs[m.logitsAt], outs[m.featAt]
		if len(lg.Shape) != 2 || lg.Shape[0] != int64(e-s) || lg.Shape[1] != int64(out.K) || len(ft.Shape) != 2 || ft.Shape[0] != int64(e-s) {
			return nil, fmt.Errorf("classifier %s: outputs of shapes %v and %v for %d images of %d classes", m.path, lg.Shape, ft.Shape, e-s, out.K)
		}
		if out.Features == nil {
			out.F = int(ft.Shape[1])
			out.Features = make([]float32, 0, n*out.F)
		}
		out.Features = append(out.Features, ft.F32...)
		for i := 0; i < e-s; i++ {
			row := lg.F32[i*out.K : (i+1)*out.K]
			best := 0
			for k, v := range row {
				if v > row[best] {
					best = k
				}
			}
			out.Pred[s+i] = best
		}
		done.Store(int64(e))
	}
	return out, nil
}

func minMaxF32(x []float32) (float64, float64) {
	lo, hi := float64(x[0]), float64(x[0])
	for _, v := range x {
		lo, hi = min(lo, float64(v)), max(hi, float64(v))
	}
	return lo, hi
}

// loadImages reads a set of images for a classifier: .npy and .csv as
// stored (what `ebmrun data` and `ebmrun sample` write), raw pixel files
// (IDX, PNG folders) scaled from [0, 255] to [0, 1] as `ebmrun data` does.
func loadImages(path, cmd string) (*graph.Tensor, error) {
	t, err := loadSamples(path)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(strings.ToLower(path), ".gz")
	if !strings.HasSuffix(name, ".npy") && !strings.HasSuffix(name, ".csv") {
		if _, err := scaleData(t, path, "auto", cmd); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// classifyReport is what `ebmrun classify` prints.
type classifyReport struct {
	Classifier string    `json:"classifier"`
	Data       string    `json:"data"`
	Images     int       `json:"images"`
	Classes    []string  `json:"classes"`
	Histogram  []float64 `json:"histogram"`
	TVUniform  float64   `json:"tv_uniform"`
	Labels     string    `json:"labels,omitempty"`
	Accuracy   *float64  `json:"accuracy,omitempty"`
	Correct    int       `json:"correct,omitempty"`
	// ClassAccuracy is the accuracy on the images of each true class (NaN
	// for a class without images is left out as null).
	ClassAccuracy []*float64 `json:"class_accuracy,omitempty"`
}

func newClassifyCmd() *cobra.Command {
	var labels, backend string
	var batch int
	var asJSON, noLabels bool
	c := &cobra.Command{
		Use:   "classify CLASSIFIER IMAGES",
		Short: "Classify images with a classifier: class histogram, and accuracy against labels",
		Long: `classify runs a classifier (a model with ebmrun.kind = classifier, such as
models/fashion_classifier, made by ` + "`ebmrun train --arch classifier`" + `) on IMAGES
and prints the histogram of its predictions with its total-variation
distance to uniform and, when labels are known, the accuracy.

IMAGES is a .npy or .csv file as ` + "`ebmrun data`" + ` and ` + "`ebmrun sample`" + ` write them
(already in [0, 1]), or IDX or a folder of PNG images (scaled from [0, 255]).
The labels are --labels FILE, or for …-images-idx3-ubyte[.gz] the
…-labels-idx1-ubyte[.gz] file beside it when there is one.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if batch < 1 {
				return usagef("classify: --batch %d: want at least 1", batch)
			}
			if noLabels && labels != "" {
				return usagef("classify: --labels and --no-labels contradict each other")
			}
			x, err := loadImages(args[1], "classify")
			if err != nil {
				return err
			}
			var truth []int
			lpath := labels
			if lpath == "" && !noLabels {
				if p := labelsPathFor(args[1]); p != "" {
					if _, err := os.Stat(p); err == nil {
						lpath = p
					}
				}
			}
			if lpath != "" {
				if truth, err = loadLabels(lpath, int(x.Shape[0])); err != nil {
					return err
				}
			}
			cm, err := openClassifier(c, args[0], backend)
			if err != nil {
				return err
			}
			defer cm.Close()
			res, err := cm.run(x, batch, c.ErrOrStderr(), args[1])
			if err != nil {
				return err
			}
			hist, err := eval.ClassHistogram(res.Pred, res.K)
			if err != nil {
				return err
			}
			r := classifyReport{Classifier: args[0], Data: args[1], Images: res.N, Classes: cm.spec.Classes, Histogram: hist, TVUniform: eval.TVToUniform(hist)}
			if truth != nil {
				r.Labels = lpath
				right, total := make([]int, res.K), make([]int, res.K)
				for i, p := range res.Pred {
					if truth[i] < res.K {
						total[truth[i]]++
					}
					if p == truth[i] {
						r.Correct++
						right[p]++
					}
				}
				r.ClassAccuracy = make([]*float64, res.K)
				for k := range total {
					if total[k] > 0 {
						a := float64(right[k]) / float64(total[k])
						r.ClassAccuracy[k] = &a
					}
				}
				acc := float64(r.Correct) / float64(res.N)
				r.Accuracy = &acc
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "%s: %d images classified by %s\n", r.Data, r.Images, r.Classifier)
			if r.Accuracy != nil {
				fmt.Fprintf(w, "accuracy %.4f (%d of %d, labels %s)\n", *r.Accuracy, r.Correct, r.Images, r.Labels)
			}
			hists, titles := [][]float64{r.Histogram}, []string{"predicted"}
			if r.ClassAccuracy != nil {
				acc := make([]float64, len(r.ClassAccuracy))
				for k, a := range r.ClassAccuracy {
					acc[k] = math.NaN()
					if a != nil {
						acc[k] = *a
					}
				}
				hists, titles = append(hists, acc), append(titles, "accuracy")
			}
			printHistograms(w, r.Classes, hists, titles)
			fmt.Fprintf(w, "TV to uniform %.4f\n", r.TVUniform)
			return nil
		},
	}
	c.Flags().StringVar(&labels, "labels", "", "labels of IMAGES (IDX, .npy or .csv, 0 … K−1; default: the IDX labels file beside IMAGES)")
	c.Flags().BoolVar(&noLabels, "no-labels", false, "do not look for a labels file beside IMAGES")
	c.Flags().StringVar(&backend, "backend", "auto", "backend: auto, native or ort")
	c.Flags().IntVar(&batch, "batch", defaultClassifyBatch, "images per classifier call")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

// loadLabels reads n integer labels.
func loadLabels(path string, n int) ([]int, error) {
	t, err := dataset.Load(path)
	if err != nil {
		return nil, trimPrefix(err, "dataset: ")
	}
	if t.Shape[0] != int64(n) || graph.NumElements(t.Shape) != t.Shape[0] {
		return nil, fmt.Errorf("labels %s have shape %v; want one label for each of %d images", path, t.Shape, n)
	}
	out := make([]int, n)
	for i, v := range t.F32 {
		if v < 0 || v > 1e6 || v != float32(int(v)) {
			return nil, fmt.Errorf("labels %s: label %d is %v; want integers 0 … K−1", path, i, v)
		}
		out[i] = int(v)
	}
	return out, nil
}

// printHistograms prints one column per histogram, one row per class.
func printHistograms(w io.Writer, classes []string, hists [][]float64, titles []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "class\t")
	for _, t := range titles {
		fmt.Fprintf(tw, "%s\t", t)
	}
	fmt.Fprintln(tw)
	for k, name := range classes {
		fmt.Fprintf(tw, "%s\t", name)
		for _, h := range hists {
			fmt.Fprintf(tw, "%.4f\t", h[k])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
