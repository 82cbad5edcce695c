package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/plot"
)

// fieldFlags are the settings of `ebmrun plot field`.
type fieldFlags struct {
	spec          specFlags
	pic           picture
	sigma         float64
	exact, data   string
	box           string
	arrows, cells int
	backend       string
	seed          uint64
}

func newFieldCmd() *cobra.Command {
	var f fieldFlags
	c := &cobra.Command{
		Use:   "field MODEL --sigma S -o OUT",
		Short: "The learned score field of a 2-D model beside the exact one, and their difference",
		Long: `field draws the score s_θ(x, σ) of a 2-D model at the noise level σ as arrows on
a grid, over the density p_σ when it is known. When the data's score is known
in closed form — the Gaussian-mixture toys 8gaussians, 25gaussians and ring8,
chosen with --exact toy:NAME — the exact score ∇log p_σ is drawn beside it
with the same arrow scale, and a heat map shows ‖s_θ − ∇log p_σ‖. Otherwise
the heat map is ‖s_θ‖ weighted by p_σ (where the model is asked to be right),
with p_σ from a sample of the data (--exact toy:NAME for any toy, or
--data FILE), or ‖s_θ‖ alone when nothing is known of the data.

Without --exact or --data, the toy the model's provenance names is used.
Arrows longer than the 95th percentile of the exact (else learned)
magnitudes are drawn at full length: the heat map carries the magnitude.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runField(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.Float64Var(&f.sigma, "sigma", 0, "noise level σ (required)")
	fl.StringVar(&f.exact, "exact", "", "toy:NAME, the data's distribution (default: the model's provenance)")
	fl.StringVar(&f.data, "data", "", "a .npy/.csv file of 2-D data points, for p_σ when no toy is given")
	fl.StringVar(&f.box, "box", "", "lo,hi: draw over [lo,hi]² (default: the toy's scale, else the model's data range)")
	fl.IntVar(&f.arrows, "arrows", 21, "arrows per side")
	fl.IntVar(&f.cells, "cells", 120, "heat-map cells per side")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the data drawn for p_σ")
	f.pic.register(c)
	f.spec.register(c)
	return c
}

func runField(c *cobra.Command, path string, f *fieldFlags) error {
	format, err := f.pic.check(plot.PNG, plot.SVG)
	if err != nil {
		return err
	}
	switch {
	case !c.Flags().Changed("sigma"):
		return usageError{errNoSigma}
	case !(f.sigma > 0) || f.sigma > 1e6:
		return usagef("--sigma is %v; want a positive noise level", f.sigma)
	case f.arrows < 2 || f.arrows > 200 || f.cells < 2 || f.cells > 1000:
		return usagef("--arrows wants 2 … 200 and --cells 2 … 1000")
	case f.exact != "" && f.data != "":
		return usagef("--exact and --data exclude each other")
	}
	if err := checkBox(f.box); err != nil { // before the model's notes
		return err
	}
	lm, err := loadModel(path, f.spec.overrides(), f.backend, 0)
	if err != nil {
		return err
	}
	defer lm.Close()
	fig, err := fieldFigure(c.ErrOrStderr(), lm, f.sigma, f.exact, f.data, f.box, f.arrows, f.cells, f.seed)
	if err != nil {
		return err
	}
	if err := writeFigure(f.pic.out, format, fig); err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s\n", f.pic.out)
	return nil
}

// fieldFigure evaluates a 2-D model's score and the reference on the grids
// and lays out the picture.
func fieldFigure(stderr io.Writer, lm *loadedModel, sigma float64, exact, data, boxFlag string, arrows, cells int, seed uint64) (*plot.Figure, error) {
	if !plot.Is2D(lm.spec.DataShape) {
		return nil, errNot2D("field", lm.path, lm.spec.DataShape)
	}
	if lm.spec.Condition == importer.CondTime {
		return nil, fmt.Errorf("%s: field draws the score at a noise level σ; this model is conditioned on a DDPM time step", lm.path)
	}
	ref, err := resolveData(exact, data, lm.m, seed, stderr)
	if err != nil {
		return nil, err
	}
	box, err := defaultBox(boxFlag, ref, lm.spec)
	if err != nil {
		return nil, err
	}
	sf := &plot.ScoreField{
		Title:  fmt.Sprintf("%s — score at σ = %.3g (%s backend)", modelName(lm.path), sigma, lm.backend),
		Sigma:  sigma,
		Arrows: plot.Grid{Box: box, Cols: arrows, Rows: arrows},
		Fine:   plot.Grid{Box: box, Cols: cells, Rows: cells},
	}
	ap, fp := sf.Arrows.Points(), sf.Fine.Points()
	if sf.Learned, err = lm.scoresAt(ap, sigma); err != nil {
		return nil, err
	}
	if sf.LearnedFine, err = lm.scoresAt(fp, sigma); err != nil {
		return nil, err
	}
	if ref != nil {
		sf.LogDensity = ref.logDensity(fp, sigma)
		sf.DensityNote = ref.note
		if g := ref.toy; g != nil && g.GMM != nil {
			sf.Exact = g.GMM.Score(nil, float64s(ap), sigma)
			sf.ExactFine = g.GMM.Score(nil, float64s(fp), sigma)
			sf.Title += ", exact: " + ref.note
		}
	}
	return sf.Figure()
}
