package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/sampler"
)

func init() { commands = append(commands, newBenchCmd) }

type benchRow struct {
	Backend     string  `json:"backend"`
	Batch       int     `json:"batch"`
	Runs        int     `json:"runs"`
	RunSeconds  float64 `json:"seconds_per_run"`
	EvalsPerSec float64 `json:"evaluations_per_second"`
	// SamplesPerSec is evaluations/s divided by the evaluations one sample
	// takes in the sampler sample would pick (sampler.FromSpec).
	SamplesPerSec float64 `json:"samples_per_second"`
	// BackendSeconds is the time inside the backend's own compute call per
	// run, where the backend measures it; OverheadPct is the Go-side rest
	// as a share of it.
	BackendSeconds float64 `json:"backend_seconds_per_run,omitempty"`
	OverheadPct    float64 `json:"go_overhead_percent,omitempty"`
	Error          string  `json:"error,omitempty"`
}

func newBenchCmd() *cobra.Command {
	var (
		batches, backends string
		minTime           time.Duration
		threads           int
		asJSON            bool
		sf                specFlags
	)
	c := &cobra.Command{
		Use:   "bench MODEL",
		Short: "Measure evaluations per second per backend and batch size",
		Long: `bench runs the model repeatedly on each backend and batch size with generated
inputs and reports evaluations per second (one evaluation = one sample's score),
samples per second for the sampler ebmrun sample would pick (its evaluations
per sample), and, where the backend measures its own compute time,
the Go-side overhead around it. Machines are noisy: compare figures from the same
run, not across runs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			var sizes []int
			for _, s := range splitList(batches) {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 {
					return usagef("--batch %q: want positive integers separated by commas", s)
				}
				sizes = append(sizes, n)
			}
			names := splitList(backends)
			if len(sizes) == 0 || len(names) == 0 {
				return usagef("need at least one batch size and one backend")
			}
			m, err := importer.Load(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, trimPrefix(err, "importer: "))
			}
			perSample := (&sampler.ALD{}).Evals() // NCSN's defaults
			if spec, err := importer.Spec(m, sf.overrides()); err == nil {
				if smp, err := sampler.FromSpec(spec, sampler.Overrides{}); err == nil {
					perSample = smp.Evals()
				}
			}
			var rows []benchRow
			for _, name := range names {
				for _, n := range sizes {
					row := benchOne(name, m, n, minTime, threads, sf.overrides())
					if row.EvalsPerSec > 0 {
						row.SamplesPerSec = row.EvalsPerSec / float64(perSample)
					}
					rows = append(rows, row)
				}
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rows); err != nil {
					return err
				}
			} else {
				printBench(c.OutOrStdout(), path, perSample, rows)
			}
			// Rows that failed are reported in the table; a bench none of
			// whose rows ran measured nothing, and says so in its status.
			for _, r := range rows {
				if r.Error == "" {
					return nil
				}
			}
			return fmt.Errorf("no backend and batch size could be measured (%d tried; the reasons are above)", len(rows))
		},
	}
	c.Flags().StringVar(&batches, "batch", "1,1000,10000", "comma-separated batch sizes")
	c.Flags().StringVar(&backends, "backends", "native,ort", "comma-separated backends")
	c.Flags().DurationVar(&minTime, "time", time.Second, "minimum measuring time per backend and batch size")
	threadsVar(c.Flags(), &threads, 0, "threads per session (0: all cores)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	sf.register(c)
	return c
}

func benchOne(name string, m *graph.Model, batch int, minTime time.Duration, threads int, ov importer.Overrides) benchRow {
	row := benchRow{Backend: name, Batch: batch}
	fail := func(err error) benchRow { row.Error = oneLine(err.Error()); return row }
	b, err := runtime.Get(name)
	if err != nil {
		return fail(err)
	}
	plan, err := b.Prepare(m, runtime.Options{Threads: threads})
	if err != nil {
		return fail(err)
	}
	defer plan.Close()
	sess, err := plan.NewSession()
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	ins, _, err := validateInputs(m, "", batch, 1, ov)
	if err != nil {
		return fail(err)
	}
	outs := make([]*graph.Tensor, len(plan.Outputs()))
	for i := range outs {
		outs[i] = new(graph.Tensor)
	}
	if err := sess.Run(ins, outs); err != nil { // warm-up: shapes, buffers
		return fail(err)
	}
	timer, _ := sess.(runtime.ComputeTimer)
	var before time.Duration
	if timer != nil {
		before = timer.ComputeTime()
	}
	start := time.Now()
	for time.Since(start) < minTime || row.Runs < 3 {
		if err := sess.Run(ins, outs); err != nil {
			return fail(err)
		}
		row.Runs++
	}
	elapsed := time.Since(start).Seconds()
	row.RunSeconds = elapsed / float64(row.Runs)
	row.EvalsPerSec = float64(batch) / row.RunSeconds
	if timer != nil {
		inner := (timer.ComputeTime() - before).Seconds() / float64(row.Runs)
		row.BackendSeconds = inner
		if inner > 0 {
			row.OverheadPct = 100 * (row.RunSeconds - inner) / inner
		}
	}
	return row
}

func printBench(w io.Writer, path string, perSample int, rows []benchRow) {
	fmt.Fprintf(w, "model %s (samples/s assume %d evaluations per sample)\n\n", path, perSample)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BACKEND\tBATCH\tRUNS\tms/RUN\tEVALS/s\tSAMPLES/s\tBACKEND ms/RUN\tGO OVERHEAD\t")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t-\t-\t\n", r.Backend, r.Batch)
			continue
		}
		inner, over := "-", "-"
		if r.BackendSeconds > 0 {
			inner = fmt.Sprintf("%.3f", 1e3*r.BackendSeconds)
			over = fmt.Sprintf("%.1f%%", r.OverheadPct)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.4g\t%.4g\t%s\t%s\t\n", r.Backend, r.Batch, r.Runs, 1e3*r.RunSeconds, r.EvalsPerSec, r.SamplesPerSec, inner, over)
	}
	tw.Flush()
	var errs []string
	for _, r := range rows {
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("%s batch %d: %s", r.Backend, r.Batch, r.Error))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "\n"+strings.Join(errs, "\n"))
	}
}
