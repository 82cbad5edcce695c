package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
)

func init() { commands = append(commands, newCompareCmd) }

type compareReport struct {
	A       sampleSet      `json:"a"`
	B       sampleSet      `json:"b"`
	Options compareOptions `json:"options"`
	Metrics []metricReport `json:"metrics"`
	// MedianDistance and Bandwidths are MMD²'s kernel, MMD2PerBandwidth
	// what each bandwidth alone gives.
	MedianDistance   float64   `json:"median_distance"`
	Bandwidths       []float64 `json:"bandwidths"`
	MMD2PerBandwidth []float64 `json:"mmd2_per_bandwidth"`
	// Classifier holds what --classifier measures; nil without it.
	Classifier *classifierMetrics `json:"classifier,omitempty"`
}

// classifierMetrics compare the sets through a classifier: the Fréchet
// distance of Gaussian fits of its features (FID's formula) and the
// histograms of its predictions.
type classifierMetrics struct {
	File       string    `json:"file"`
	Features   int       `json:"features"`
	FD         float64   `json:"fd"`
	Classes    []string  `json:"classes"`
	HistA      []float64 `json:"histogram_a"`
	HistB      []float64 `json:"histogram_b"`
	TVUniformA float64   `json:"tv_uniform_a"`
	TVUniformB float64   `json:"tv_uniform_b"`
	TVAB       float64   `json:"tv_ab"`
}

type sampleSet struct {
	File        string  `json:"file"`
	Samples     int     `json:"samples"`
	SampleShape []int64 `json:"sample_shape"`
	// Used is the number of samples the kernel metrics (MMD², energy
	// distance) used, after subsampling to --max-samples.
	Used int `json:"used"`
}

type compareOptions struct {
	Seed         uint64 `json:"seed"`
	MaxSamples   int    `json:"max_samples"`
	Permutations int    `json:"permutations"`
	Projections  int    `json:"projections"`
	Classifier   string `json:"classifier,omitempty"`
	Backend      string `json:"backend,omitempty"`
	Batch        int    `json:"batch,omitempty"`
}

type metricReport struct {
	Name   string   `json:"name"`
	Value  float64  `json:"value"`
	StdErr *float64 `json:"stderr,omitempty"`
	PValue *float64 `json:"p_value,omitempty"`
}

func newCompareCmd() *cobra.Command {
	var asJSON bool
	o := compareOptions{MaxSamples: eval.DefaultMaxSamples, Permutations: eval.DefaultPermutations, Projections: eval.DefaultProjections}
	c := &cobra.Command{
		Use:   "compare A B",
		Short: "Compare two sample sets: MMD², energy distance, sliced Wasserstein-1",
		Long: `compare measures how far apart two sets of samples are — say a model's samples
and held-out data. A and B are .npy or .csv files (or anything ebmrun reads as
data: IDX, a folder of PNG images) of shape [N, …], with the same shape per
sample; each sample is flattened to a vector.

  MMD²             unbiased, RBF kernels at ` + bandwidthList() + ` × the median pairwise
                   distance (averaged); permutation p-value
  energy distance  2E‖A−B‖ − E‖A−A'‖ − E‖B−B'‖, unbiased; permutation p-value
  sliced W1        mean Wasserstein-1 of the projections on --projections
                   random directions; stderr over directions

MMD² and energy distance use at most --max-samples points of each set (a
seeded random subset); a small p-value says the sets differ. One --seed fixes
every random choice.

With --classifier C (a model of kind classifier, such as
models/fashion_classifier/model.onnx) the images of both sets also go
through C, on --backend, and compare adds

  FD               Fréchet distance between Gaussian fits of C's features of
                   A and of B: ‖μA−μB‖² + Tr(ΣA + ΣB − 2(ΣA ΣB)^½), FID's
                   formula on a domain classifier (all samples, float64)
  class histograms the fraction of each set C assigns to each class, the TV
                   distance ½Σ|h−u| of each to uniform, and TV between A's
                   and B's

Sets of raw pixels (IDX, PNG) are scaled to [0, 1] for C first.

Unreadable or mismatched input gives one line on stderr and exit 1.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if o.Projections < 1 {
				return usagef("--projections is %d; want at least 1", o.Projections)
			}
			if o.Permutations < 0 || o.Permutations > eval.MaxPermutations {
				return usagef("--permutations is %d; want 0 (no test) to %d", o.Permutations, eval.MaxPermutations)
			}
			if o.MaxSamples < 2 {
				return usagef("--max-samples is %d; want at least 2", o.MaxSamples)
			}
			if o.Classifier != "" && o.Batch < 1 {
				return usagef("--batch is %d; want at least 1", o.Batch)
			}
			r, err := compare(args[0], args[1], o)
			if err != nil {
				return err
			}
			if o.Classifier != "" {
				if r.Classifier, err = compareClassified(c, args[0], args[1], o); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printCompare(c.OutOrStdout(), r)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.Flags().Uint64Var(&o.Seed, "seed", 0, "seed of the subsets, permutations and projections")
	c.Flags().IntVar(&o.Projections, "projections", o.Projections, "random directions of the sliced Wasserstein distance")
	c.Flags().IntVar(&o.Permutations, "permutations", o.Permutations, "label permutations of the MMD² and energy tests (0: no p-values)")
	c.Flags().StringVar(&o.Classifier, "classifier", "", "a classifier model: add the Fréchet distance of its features and its class histograms")
	c.Flags().StringVar(&o.Backend, "backend", "auto", "--classifier: backend running it: auto, native or ort")
	c.Flags().IntVar(&o.Batch, "batch", defaultClassifyBatch, "--classifier: images per classifier call")
	c.Flags().IntVar(&o.MaxSamples, "max-samples", o.MaxSamples, "samples of each set MMD² and energy distance use at most (memory: 8·(2·cap)² bytes)")
	return c
}

func bandwidthList() string {
	s := ""
	for i, f := range eval.BandwidthFactors {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(f)
	}
	return s
}

// loadSamples reads a data file as n flattened samples.
func loadSamples(path string) (*graph.Tensor, error) {
	t, err := dataset.Load(path)
	if err != nil {
		return nil, trimPrefix(err, "dataset: ")
	}
	return t, nil
}

func compare(pathA, pathB string, o compareOptions) (*compareReport, error) {
	a, err := loadSamples(pathA)
	if err != nil {
		return nil, err
	}
	b, err := loadSamples(pathB)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(a.Shape[1:], b.Shape[1:]) {
		return nil, fmt.Errorf("%s has samples of shape %v, %s of shape %v; both sets need one shape", pathA, a.Shape[1:], pathB, b.Shape[1:])
	}
	d := int(graph.NumElements(a.Shape[1:]))
	perms := o.Permutations
	if perms == 0 {
		perms = -1 // eval reads 0 as its default; here it means no test
	}
	er, err := eval.Compare(a.F32, b.F32, d, eval.Options{
		Seed: o.Seed, MaxSamples: o.MaxSamples, Permutations: perms, Projections: o.Projections,
	})
	if err != nil {
		return nil, trimPrefix(err, "eval: ")
	}
	return &compareReport{
		A:       sampleSet{File: pathA, Samples: er.NX, SampleShape: a.Shape[1:], Used: er.UsedX},
		B:       sampleSet{File: pathB, Samples: er.NY, SampleShape: b.Shape[1:], Used: er.UsedY},
		Options: o,
		Metrics: []metricReport{
			metric("mmd2", er.MMD2), metric("energy_distance", er.Energy), metric("sliced_w1", er.SW1),
		},
		MedianDistance: er.MedianDistance, Bandwidths: er.Bandwidths, MMD2PerBandwidth: er.MMD2PerBandwidth,
	}, nil
}

func metric(name string, e eval.Estimate) metricReport {
	m := metricReport{Name: name, Value: e.Value}
	if !math.IsNaN(e.StdErr) {
		m.StdErr = &e.StdErr
	}
	if !math.IsNaN(e.PValue) {
		m.PValue = &e.PValue
	}
	return m
}

var metricTitles = map[string]string{"mmd2": "MMD²", "energy_distance": "energy distance", "sliced_w1": "sliced W1"}

func printCompare(w io.Writer, r *compareReport) {
	for _, s := range []struct {
		label string
		set   sampleSet
	}{{"A", r.A}, {"B", r.B}} {
		fmt.Fprintf(w, "%s  %s: %d samples of shape %v", s.label, s.set.File, s.set.Samples, s.set.SampleShape)
		if s.set.Used < s.set.Samples {
			fmt.Fprintf(w, " (%d used for MMD² and energy distance)", s.set.Used)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\tstderr\tp-value")
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%.6g\t%s\t%s\n", metricTitles[m.Name], m.Value, optional(m.StdErr, "%.2g"), optional(m.PValue, "%.3g"))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nMMD² kernel: RBF bandwidths %s around the median distance %.4g; seed %d, %d permutations, %d projections\n",
		formatList(r.Bandwidths), r.MedianDistance, r.Options.Seed, r.Options.Permutations, r.Options.Projections)
	if cm := r.Classifier; cm != nil {
		fmt.Fprintf(w, "\nclassifier %s (%d features):\n", cm.File, cm.Features)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "FD\t%.6g\n", cm.FD)
		fmt.Fprintf(tw, "TV(A, uniform)\t%.4f\n", cm.TVUniformA)
		fmt.Fprintf(tw, "TV(B, uniform)\t%.4f\n", cm.TVUniformB)
		fmt.Fprintf(tw, "TV(A, B)\t%.4f\n", cm.TVAB)
		tw.Flush()
		printHistograms(w, cm.Classes, [][]float64{cm.HistA, cm.HistB}, []string{"A", "B"})
	}
}

func optional(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func formatList(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.3g", x)
	}
	return s
}

// compareClassified runs the classifier on both sets and compares its
// features (Fréchet distance) and predictions (class histograms).
func compareClassified(c *cobra.Command, pathA, pathB string, o compareOptions) (*classifierMetrics, error) {
	cm, err := openClassifier(c, o.Classifier, o.Backend)
	if err != nil {
		return nil, err
	}
	defer cm.Close()
	var res [2]*classified
	for i, p := range []string{pathA, pathB} {
		x, err := loadImages(p, "compare")
		if err != nil {
			return nil, err
		}
		if res[i], err = cm.run(x, o.Batch, c.ErrOrStderr(), p); err != nil {
			return nil, err
		}
	}
	fd, err := eval.FrechetDistance(res[0].Features, res[1].Features, res[0].F)
	if err != nil {
		return nil, fmt.Errorf("compare --classifier: %w", trimPrefix(err, "eval: "))
	}
	m := &classifierMetrics{File: o.Classifier, Features: res[0].F, FD: fd, Classes: cm.spec.Classes}
	if m.HistA, err = eval.ClassHistogram(res[0].Pred, res[0].K); err != nil {
		return nil, err
	}
	if m.HistB, err = eval.ClassHistogram(res[1].Pred, res[1].K); err != nil {
		return nil, err
	}
	m.TVUniformA, m.TVUniformB = eval.TVToUniform(m.HistA), eval.TVToUniform(m.HistB)
	if m.TVAB, err = eval.ClassTV(m.HistA, m.HistB); err != nil {
		return nil, err
	}
	return m, nil
}
