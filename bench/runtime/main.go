// Command runtime benchmarks ebmrun's runtime backends on the NCSN MLP
// fixture (testdata/models/ncsn_mlp/model.onnx) against each other and
// against onnx-go v0.5.0 with its gorgonia backend (gorgonnx), in one
// invocation, and prints a table of evaluations per second and ratios.
//
//	cd bench/runtime && go run .
//	go run . -batch 1,1000,10000 -time 1s -repeat 3
//
// It is a separate Go module so that onnx-go and gorgonia never enter the
// product's dependency graph (docs/design.md, Dependencies).
// README.md says what is measured and how to read the table.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	model       string
	batches     []int
	minTime     time.Duration
	warmup      time.Duration
	repeat      int
	threads     int
	driftRuns   int
	seed        uint64
	saveVariant string
}

func run(args []string) int {
	fs := flag.NewFlagSet("bench/runtime", flag.ContinueOnError)
	var o options
	var batches string
	fs.StringVar(&o.model, "model", "../../testdata/models/ncsn_mlp/model.onnx", "the NCSN MLP fixture (inputs x [N,2], sigma [N]; output score [N,2])")
	fs.StringVar(&batches, "batch", "1,1000,10000", "comma-separated batch sizes")
	fs.DurationVar(&o.minTime, "time", time.Second, "minimum timed duration of one measurement")
	fs.DurationVar(&o.warmup, "warmup", 200*time.Millisecond, "untimed running before the first measurement of each backend and batch")
	fs.IntVar(&o.repeat, "repeat", 3, "measurements per backend and batch; the table shows their median")
	fs.IntVar(&o.threads, "threads", 0, "threads for ebmrun's native and ort sessions (0: all cores)")
	fs.IntVar(&o.driftRuns, "drift-runs", 5, "repeated evaluations of the same input compared with the first, per backend and batch")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated inputs")
	fs.StringVar(&o.saveVariant, "save-variant", "", "also write the h variant (x||log sigma in, out/sigma done in Go) as ONNX to this path")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "bench/runtime: unexpected arguments %q\n", fs.Args())
		return 2
	}
	for _, s := range strings.Split(batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench/runtime: -batch %q: want positive integers separated by commas\n", s)
			return 2
		}
		o.batches = append(o.batches, n)
	}
	if o.repeat < 1 || o.minTime <= 0 || o.driftRuns < 1 {
		fmt.Fprintln(os.Stderr, "bench/runtime: -repeat and -drift-runs must be at least 1 and -time positive")
		return 2
	}
	if err := bench(os.Stdout, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench/runtime: %v\n", err)
		return 1
	}
	return 0
}
