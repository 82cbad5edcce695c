package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// machine describes where and how the benchmark runs, for the header.
func machine(o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ebmrun bench/runtime  %s\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "model %s; batches %v; %d repeats of >= %v each (median shown), %v warm-up\n", o.model, o.batches, o.repeat, o.minTime, o.warmup)
	fmt.Fprintf(&b, "cpu %s; %d logical cores; GOMAXPROCS %d; %s\n", cpuModel(), goruntime.NumCPU(), goruntime.GOMAXPROCS(0), goruntime.Version())
	threads := "all cores"
	if o.threads > 0 {
		threads = fmt.Sprint(o.threads)
	}
	fmt.Fprintf(&b, "threads: native and ort %s; onnx-go as gonum's BLAS decides (goroutines up to GOMAXPROCS)\n", threads)
	fmt.Fprintf(&b, "load average before: %s\n", loadavg())
	return b.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// report prints the throughput table, the correctness checks, the footnotes
// and the verdict on the two targets.
func report(w io.Writer, o options, rs []*result) {
	get := func(v, b string, n int) *result {
		for _, r := range rs {
			if r.variant == v && r.backend == b && r.batch == n {
				return r
			}
		}
		return nil
	}
	var notes []string
	note := func(s string) string {
		for i, n := range notes {
			if n == s {
				return fmt.Sprintf("[%d]", i+1)
			}
		}
		notes = append(notes, s)
		return fmt.Sprintf("[%d]", len(notes))
	}
	variantNote := note("h: the fixture's 4 Gemm + 3 SiLU layers with its weights and Gemm attributes, input h = x||log(sigma) [N,3] built in Go, score = out/sigma in Go; " +
		"every backend does the same Go-side work, so ratios on h compare like with like")

	fmt.Fprintln(w, "evaluations per second (one evaluation = one sample's score); ratio = native's evals/s over the peer's")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "VARIANT\tBATCH\tNATIVE\tORT\tONNX-GO\tNATIVE/ORT\tNATIVE/ONNX-GO\t")
	for _, v := range variants {
		for _, n := range o.batches {
			label := v
			if v == hVar {
				label += " " + variantNote
			}
			cells := []string{label, fmt.Sprint(n)}
			for _, b := range backends {
				r := get(v, b, n)
				cells = append(cells, rateCell(r, note))
			}
			nat := get(v, native, n)
			cells = append(cells, ratio(nat, get(v, ort, n)), ratio(nat, get(v, onnxGO, n)))
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\nchecks: max |score - native on the fixture| on the first evaluation and after the timed runs; drift = max change over %d repeated evaluations of the same input; tolerance %.0e x max(1, max|score|)\n", o.driftRuns, agreeRel)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "VARIANT\tBATCH\tBACKEND\tFIRST\tDRIFT\tAFTER\tTOLERANCE\tSPREAD\tVERDICT\t")
	for _, v := range variants {
		for _, n := range o.batches {
			for _, b := range backends {
				r := get(v, b, n)
				if r == nil {
					continue
				}
				if r.err != nil {
					fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t-\t-\tdid not run %s\t\n", v, n, b, note(b+" on "+v+": "+oneLine(r.err.Error())))
					continue
				}
				verdict := "ok"
				switch {
				case !r.agrees():
					verdict = "WRONG"
				case r.restored:
					verdict = "DRIFTS; ok with biases restored"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%.2g\t%.2g\t%.2g\t%.2g\t%.0f%%\t%s\t\n", v, n, b, r.firstDiff, r.drift, r.afterDiff, r.tol, 100*r.spread(), verdict)
			}
		}
	}
	tw.Flush()

	if len(notes) > 0 {
		fmt.Fprintln(w)
		for i, n := range notes {
			fmt.Fprintf(w, "[%d] %s\n", i+1, n)
		}
	}
	fmt.Fprintln(w)
	targets(w, o, get)
}

// rateCell formats a median rate, marking a result that is wrong or missing
// with a footnote.
func rateCell(r *result, note func(string) string) string {
	switch {
	case r == nil:
		return "-"
	case r.err != nil:
		return "n/a " + note(r.backend+" on "+r.variant+": "+oneLine(r.err.Error()))
	case !r.agrees() && r.drift > r.tol:
		return human(r.median()) + " " + note(fmt.Sprintf("%s drifts at batch %d: the same input gives a different score on each run (by up to %.3g over %d runs; %.3g from the reference after the timed runs), so this rate is that of a wrong computation", r.backend, r.batch, r.drift, r.driftRuns, r.afterDiff))
	case r.restored:
		return human(r.median()) + " " + note(fmt.Sprintf("%s drifts at batch %d: its Gemm adds into the bias initializer in place when the bias has as many elements as the output (batch 1), so the same input scores differently on every run (by up to %.3g over %d runs). "+
			"Timed with a workaround that makes it right: the Gemm biases copied back before every run, that cost included (max |diff| after the timed runs %.2g)", r.backend, r.batch, r.drift, r.driftRuns, r.afterDiff))
	case !r.agrees():
		return human(r.median()) + " " + note(fmt.Sprintf("%s disagrees with the reference at batch %d (max |diff| %.3g): the rate is that of a wrong computation", r.backend, r.batch, max(r.firstDiff, r.afterDiff)))
	}
	return human(r.median())
}

func ratio(a, b *result) string {
	if a == nil || b == nil || len(a.rates) == 0 || len(b.rates) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a.median()/b.median())
}

// targets states the two targets and whether this run met them.
func targets(w io.Writer, o options, get func(v, b string, n int) *result) {
	metOrNot := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "NOT MET"
	}
	const big = 10000
	nat, ortR := get(fixture, native, big), get(fixture, ort, big)
	if nat != nil && ortR != nil && len(nat.rates) > 0 && len(ortR.rates) > 0 {
		r := nat.median() / ortR.median()
		fmt.Fprintf(w, "target 1, native >= 1/3 of ort's throughput at batch %d (fixture): native/ort = %.2f -> %s\n", big, r, metOrNot(r >= 1.0/3))
	} else {
		fmt.Fprintf(w, "target 1, native >= 1/3 of ort's throughput at batch %d: not measured in this run (needs batch %d and a working ort)\n", big, big)
	}
	var parts []string
	all, any := true, false
	for _, n := range o.batches {
		a, b := get(hVar, native, n), get(hVar, onnxGO, n)
		if a == nil || b == nil || len(a.rates) == 0 || len(b.rates) == 0 {
			continue
		}
		any = true
		r := a.median() / b.median()
		all = all && r > 1
		parts = append(parts, fmt.Sprintf("batch %d: %.2f", n, r))
	}
	if any {
		fmt.Fprintf(w, "target 2, native ahead of onnx-go (variant h, every batch): native/onnx-go %s -> %s\n", strings.Join(parts, ", "), metOrNot(all))
	} else {
		fmt.Fprintln(w, "target 2, native ahead of onnx-go: not measured in this run (onnx-go did not run)")
	}
}

// human writes a rate with three significant digits and a k/M suffix.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
