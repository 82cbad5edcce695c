package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/density"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// energyLogpSummary is what --json prints for --method ais or grid.
type energyLogpSummary struct {
	Model    string        `json:"model"`
	Data     string        `json:"data"`
	MeanLogP float64       `json:"mean_logp"`
	StdErr   float64       `json:"stderr"`
	N        int           `json:"n"`
	Dim      int           `json:"dim"`
	Sigma    float64       `json:"sigma,omitempty"`
	LogZ     *density.LogZ `json:"log_z"`
	Backend  string        `json:"backend"`
	Evals    int64         `json:"evaluations"`
	Seed     uint64        `json:"seed"`
	Seconds  float64       `json:"seconds"`
	Output   string        `json:"output,omitempty"`
}

// runEnergyLogp is logp for energy models by log p = −E − log Z (a signal
// cancels ctx and stops AIS or the grid between temperatures or chunks), with
// log Z by annealed importance sampling or grid quadrature.
func runEnergyLogp(ctx context.Context, c *cobra.Command, path string, m *graph.Model, spec *importer.ModelSpec, x *graph.Tensor, be runtime.Backend, f *logpFlags) error {
	if spec.Kind != importer.OutEnergy {
		return usagef("--method %s needs an energy model; %s is a %s model", f.method, path, spec.Kind)
	}
	e, err := density.NewEnergy(be, m, spec, f.sigma, runtime.Options{Threads: f.threads})
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	defer e.Close()
	begin := time.Now()
	var z *density.LogZ
	if f.method == "ais" {
		z, err = e.AIS(ctx, density.AISOptions{Chains: f.chains, Temperatures: f.temperatures, BaseStd: f.baseStd, Seed: f.seed})
	} else {
		lo, hi, berr := energyBox(f.box, spec, e.Dim())
		if berr != nil {
			return berr
		}
		z, err = e.Grid(ctx, lo, hi, f.gridPoints)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	n := int(x.Shape[0])
	lp := make([]float64, n)
	if err := e.LogP(lp, x.F32, n, z.LogZ); err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "density: "))
	}
	var mean, m2 float64
	for i, v := range lp {
		dv := v - mean
		mean += dv / float64(i+1)
		m2 += dv * (v - mean)
	}
	se := math.NaN()
	if n > 1 {
		se = math.Sqrt(m2/float64(n-1)) / math.Sqrt(float64(n))
	}
	sum := energyLogpSummary{Model: path, Data: f.data, MeanLogP: mean, StdErr: se, N: n, Dim: e.Dim(), Sigma: e.Sigma(), LogZ: z,
		Backend: be.Name(), Evals: e.Calls(), Seed: f.seed, Seconds: time.Since(begin).Seconds(), Output: f.out}
	if f.out != "" {
		out := make([]float32, n)
		for i, v := range lp {
			out[i] = float32(v)
		}
		if err := tensorio.WriteNpyFile(f.out, graph.NewFloat32([]int64{int64(n)}, out)); err != nil {
			return err
		}
	}
	if f.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "%s on %s: %d points of %d values (%s, log p = −E − log Z)\n", path, f.data, n, e.Dim(), be.Name())
	if z.Method == "ais" {
		fmt.Fprintf(w, "log Z      %.6g ± %.2g (AIS: %d chains, %d temperatures, base std %.3g, acceptance %.2f, ESS %.0f)\n",
			z.LogZ, z.StdErr, z.Chains, z.Temperatures, z.BaseStd, z.Accept, z.ESS)
	} else {
		fmt.Fprintf(w, "log Z      %.6g (grid: %d cells per axis on [%v, %v], edge mass %.2g)\n", z.LogZ, z.Points, z.Lo, z.Hi, z.EdgeMass)
	}
	fmt.Fprintf(w, "log p      %.6g ± %.2g nats\n", mean, se)
	fmt.Fprintf(w, "evals      %d, %.2fs\n", e.Calls(), sum.Seconds)
	return nil
}

// energyBox is --box LO,HI on every axis, or the model's data range widened
// by half its width on each side, or [−5, 5].
func energyBox(s string, spec *importer.ModelSpec, d int) (lo, hi []float64, err error) {
	a, b := -5.0, 5.0
	if r := spec.DataRange; len(r) == 2 && r[1] > r[0] {
		w := r[1] - r[0]
		a, b = r[0]-w/2, r[1]+w/2
	}
	if s != "" {
		parts := strings.Split(s, ",")
		var e1, e2 error
		if len(parts) == 2 {
			a, e1 = strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
			b, e2 = strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		}
		if len(parts) != 2 || e1 != nil || e2 != nil || !(b > a) || math.IsInf(b-a, 0) {
			return nil, nil, usagef("--box %q: want LO,HI with LO < HI", s)
		}
	}
	for i := 0; i < d; i++ {
		lo, hi = append(lo, a), append(hi, b)
	}
	return lo, hi, nil
}
