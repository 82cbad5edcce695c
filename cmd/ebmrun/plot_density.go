package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/plot"
	"github.com/ebmrun/ebmrun/runtime"
)

// densityFlags are the settings of `ebmrun plot density`.
type densityFlags struct {
	spec    specFlags
	pic     picture
	sigma   float64
	data    string
	box     string
	cells   int
	steps   int
	backend string
	seed    uint64
}

func newDensityCmd() *cobra.Command {
	var f densityFlags
	c := &cobra.Command{
		Use:   "density MODEL -o OUT",
		Short: "The log-density of a 2-D model on a grid, by the probability-flow ODE, beside the data",
		Long: `density computes log p_σ₀ of a 2-D model at every point of a grid, as
` + "`ebmrun logp`" + ` does (the probability-flow ODE from σ₀ to the largest σ, the
divergence exact), and draws it as a heat map beside a histogram of the data:
--data FILE or toy:NAME:N, else 2 000 points of the toy the model's
provenance names. Values more than 12 nats below the peak share the darkest
colour.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runDensityPlot(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.Float64Var(&f.sigma, "sigma", 0, "σ₀, the noise level of the density (default: the model's smallest)")
	fl.StringVar(&f.data, "data", "", "data drawn beside: a .npy/.csv file or toy:NAME:N (default: the model's toy)")
	fl.StringVar(&f.box, "box", "", "lo,hi: draw over [lo,hi]² (default: the toy's scale, else the model's data range)")
	fl.IntVar(&f.cells, "cells", 60, "grid cells per side (each an ODE solve)")
	fl.IntVar(&f.steps, "steps", 0, "fixed ODE steps (default: adaptive Dormand–Prince)")
	fl.StringVar(&f.backend, "backend", "auto", "auto, native, ort or ort-cuda")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the toy points drawn beside")
	f.pic.register(c)
	f.spec.register(c)
	return c
}

func runDensityPlot(c *cobra.Command, path string, f *densityFlags) error {
	format, err := f.pic.check(plot.PNG, plot.SVG)
	if err != nil {
		return err
	}
	if f.cells < 2 || f.cells > 400 || f.steps < 0 || f.sigma < 0 {
		return usagef("--cells wants 2 … 400; --steps and --sigma must not be negative")
	}
	if err := checkBox(f.box); err != nil { // before the model's notes
		return err
	}
	lm, err := loadModel(path, f.spec.overrides(), f.backend, 0)
	if err != nil {
		return err
	}
	defer lm.Close()
	if !plot.Is2D(lm.spec.DataShape) {
		return errNot2D("density", path, lm.spec.DataShape)
	}
	var data []float32
	var ref *refData
	if f.data != "" {
		x, _, err := evalData(f.data, f.seed)
		if err != nil {
			return err
		}
		data = x.F32
	} else if toy := trainingToy(lm.m); toy != nil {
		ref = &refData{toy: toy}
		data = float32s(toy.Sample(nil, refPoints, rand.New(rand.NewPCG(f.seed, 3))))
	}
	box, err := defaultBox(f.box, ref, lm.spec)
	if err != nil {
		return err
	}
	if f.box == "" && ref == nil && len(data) > 0 {
		box = plot.DataBox(data)
	}
	backend, err := runtime.Get(f.backend)
	if err != nil {
		return err
	}
	e, err := density.New(backend, lm.m, lm.spec, runtime.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	defer e.Close()
	g := plot.Grid{Box: box, Cols: f.cells, Rows: f.cells}
	var progress atomic.Int64
	stop := showProgress(c.ErrOrStderr(), &progress, int64(g.Len()), "log p", "points")
	res, err := e.LogP(context.Background(), g.Points(), g.Len(), density.Options{Sigma: f.sigma, Steps: f.steps, Progress: &progress})
	stop()
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	heat := fmt.Sprintf("log pσ₀ at σ₀ = %.3g (ODE to σ = %.3g)", res.From, res.To)
	if res.Process == "vp" {
		heat = "log p (VP ODE)"
	}
	title := fmt.Sprintf("%s — log-density by the probability-flow ODE (%s backend)", modelName(path), lm.backend)
	if err := writeFigure(f.pic.out, format, plot.LogDensityFigure(title, heat, g, res.LogP, data)); err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s\n", f.pic.out)
	return nil
}
