package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/plot"
)

// traceFlags are the settings of `ebmrun plot trace`.
type traceFlags struct {
	pic         picture
	chains      int
	exact, data string
	box         string
	seed        uint64
}

func newTraceCmd() *cobra.Command {
	var f traceFlags
	c := &cobra.Command{
		Use:   "trace FILE.trace.csv -o OUT",
		Short: "Langevin trajectories of a few chains, from sample --trace",
		Long: `trace draws the paths of the chains that ` + "`ebmrun sample --trace K`" + ` recorded
(2-D models), each a line from an open circle (start) to a dot (end), over
the data: the log-density of a Gaussian-mixture toy at the trace's smallest
σ (--exact toy:NAME), or a histogram of data points (--exact toy:NAME for
other toys, --data FILE).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runTrace(c, args[0], &f) },
	}
	fl := c.Flags()
	fl.IntVar(&f.chains, "chains", 8, "chains to draw (the first ones)")
	fl.StringVar(&f.exact, "exact", "", "toy:NAME, the data's distribution, drawn underneath")
	fl.StringVar(&f.data, "data", "", "a .npy/.csv file of 2-D data points, drawn underneath")
	fl.StringVar(&f.box, "box", "", "lo,hi: draw over [lo,hi]² (default: the toy's scale, else the chains' box)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the toy points drawn underneath")
	f.pic.register(c)
	return c
}

// traceFile is a .trace.csv read back: per chain, its states in step order.
type traceFile struct {
	dim      int
	chains   map[int][]float32
	steps    int
	sigmaMin float64
	sigmaMax float64
}

// readTrace reads chain,step,level,sigma,x0,… as sample --trace writes it.
func readTrace(path string) (*traceFile, error) {
	fh, _, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := csv.NewReader(bufio.NewReader(fh))
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: no header: %w", path, err)
	}
	if len(head) < 5 || strings.Join(head[:4], ",") != "chain,step,level,sigma" {
		return nil, fmt.Errorf("%s: not a trace (want a header chain,step,level,sigma,x0,…, as sample --trace writes)", path)
	}
	t := &traceFile{dim: len(head) - 4, chains: map[int][]float32{}, sigmaMin: math.Inf(1), sigmaMax: math.Inf(-1)}
	type row struct {
		step int
		x    []float32
	}
	rows := map[int][]row{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		chain, err1 := strconv.Atoi(rec[0])
		step, err2 := strconv.Atoi(rec[1])
		sigma, err3 := strconv.ParseFloat(rec[3], 64)
		if err := errors.Join(err1, err2, err3); err != nil || chain < 0 {
			return nil, fmt.Errorf("%s: line %d: want integers chain and step and a number sigma", path, line)
		}
		x := make([]float32, t.dim)
		for j := range x {
			v, err := strconv.ParseFloat(rec[4+j], 32)
			if err != nil {
				return nil, fmt.Errorf("%s: line %d: %q is not a float32 number", path, line, rec[4+j])
			}
			x[j] = float32(v)
		}
		rows[chain] = append(rows[chain], row{step, x})
		t.steps = max(t.steps, step)
		if sigma > 0 {
			t.sigmaMin, t.sigmaMax = min(t.sigmaMin, sigma), max(t.sigmaMax, sigma)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: the trace has no points", path)
	}
	for ch, rs := range rows {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].step < rs[j].step })
		for _, r := range rs {
			t.chains[ch] = append(t.chains[ch], r.x...)
		}
	}
	return t, nil
}

func runTrace(c *cobra.Command, path string, f *traceFlags) error {
	format, err := f.pic.check(plot.PNG, plot.SVG)
	if err != nil {
		return err
	}
	if f.chains < 1 {
		return usagef("--chains is %d; want at least 1", f.chains)
	}
	if f.exact != "" && f.data != "" {
		return usagef("--exact and --data exclude each other")
	}
	t, err := readTrace(path)
	if err != nil {
		return err
	}
	if t.dim != 2 {
		return fmt.Errorf("%s: trace draws 2-D chains; these have %d values a state", path, t.dim)
	}
	ids := make([]int, 0, len(t.chains))
	for id := range t.chains {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	ids = ids[:min(len(ids), f.chains)]
	var chains [][]float32
	var all []float32
	for _, id := range ids {
		chains = append(chains, t.chains[id])
		all = append(all, t.chains[id]...)
	}
	var ref *refData
	if f.exact != "" || f.data != "" {
		// A trace names no model, so no provenance to fall back on.
		if ref, err = resolveData(f.exact, f.data, nil, f.seed, c.ErrOrStderr()); err != nil {
			return err
		}
	}
	box := plot.DataBox(all)
	switch {
	case f.box != "":
		if box, err = parseBox(f.box); err != nil {
			return err
		}
	case ref != nil && ref.toy != nil:
		box = plot.SquareBox(-ref.toy.Box, ref.toy.Box)
	}
	var grid *plot.Grid
	var logp []float64
	if ref != nil {
		// The mixture's own density at the trace's smallest σ; a sample's
		// smoothed at a fiftieth of the box at least, so it reads as a
		// density rather than as dots.
		g := plot.Grid{Box: box, Cols: 150, Rows: 150}
		s := max(t.sigmaMin, 1e-3)
		if ref.toy == nil || ref.toy.GMM == nil {
			s = max(s, (box.X1-box.X0)/50)
		}
		grid, logp = &g, ref.logDensity(g.Points(), s)
	}
	sig := ""
	if !math.IsInf(t.sigmaMin, 0) {
		sig = fmt.Sprintf(", σ %.3g → %.3g", t.sigmaMax, t.sigmaMin)
	}
	title := fmt.Sprintf("Langevin trajectories of %d chains over %d steps%s", len(chains), t.steps, sig)
	p, err := plot.Trajectories(title, chains, box, grid, logp)
	if err != nil {
		return err
	}
	fig := &plot.Figure{Title: filepath.Base(path), Panels: []plot.Panel{{Plot: p}}, PanelSize: 6 * 72}
	if err := writeFigure(f.pic.out, format, fig); err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s\n", f.pic.out)
	return nil
}

// lossFlags are the settings of `ebmrun plot loss`.
type lossFlags struct {
	pic   picture
	model string
}

func newLossCmd() *cobra.Command {
	var f lossFlags
	c := &cobra.Command{
		Use:   "loss train.jsonl -o OUT",
		Short: "The training loss per σ level over the steps, log scale",
		Long: `loss draws the training log that ` + "`ebmrun train --log`" + ` writes: the loss at
each σ level against the step, and the total, on a log scale. The levels are
labelled with their σ from --model (default: model.onnx beside the log,
when it is there), else by index, level 1 being the largest σ.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runLoss(c, args[0], &f) },
	}
	c.Flags().StringVar(&f.model, "model", "", "the model the log trained, for its σ schedule and loss (default: model.onnx beside the log)")
	f.pic.register(c)
	return c
}

// trainLog is a training log read back.
type trainLog struct {
	steps, total []float64
	perSigma     [][]float64 // [level][record]
}

func readTrainLog(path string) (*trainLog, error) {
	fh, _, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	l := &trainLog{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec struct {
			Step      *int       `json:"step"`
			Loss      *float64   `json:"loss"`
			SigmaLoss []*float64 `json:"sigma_loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Step == nil || rec.Loss == nil {
			return nil, fmt.Errorf("%s: line %d: not a training log record (want JSON with step and loss)", path, line)
		}
		i := len(l.steps)
		l.steps = append(l.steps, float64(*rec.Step))
		l.total = append(l.total, *rec.Loss)
		for len(l.perSigma) < len(rec.SigmaLoss) {
			l.perSigma = append(l.perSigma, nanSlice(i))
		}
		for k := range l.perSigma {
			v := math.NaN()
			if k < len(rec.SigmaLoss) && rec.SigmaLoss[k] != nil {
				v = *rec.SigmaLoss[k]
			}
			l.perSigma[k] = append(l.perSigma[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(l.steps) == 0 {
		return nil, fmt.Errorf("%s: an empty training log", path)
	}
	return l, nil
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

func runLoss(c *cobra.Command, path string, f *lossFlags) error {
	format, err := f.pic.check(plot.PNG, plot.SVG)
	if err != nil {
		return err
	}
	l, err := readTrainLog(path)
	if err != nil {
		return err
	}
	mpath := f.model
	if mpath == "" {
		if p := filepath.Join(filepath.Dir(path), "model.onnx"); isRegularFile(p) {
			mpath = p
		}
	}
	name, yLabel := filepath.Base(path), "loss per sample"
	var sigmas []float64
	if mpath != "" {
		m, err := importer.Load(mpath)
		if err != nil {
			return fmt.Errorf("%s: %w", mpath, trimPrefix(err, "importer: "))
		}
		if spec, err := importer.Spec(m, importer.Overrides{}); err == nil && len(spec.Sigmas) == len(l.perSigma) {
			sigmas = spec.Sigmas
		}
		prov := provenanceOf(m)
		if loss, _ := prov["loss"].(string); loss != "" {
			yLabel = strings.ToUpper(loss) + " loss per sample"
			if w, _ := prov["weighted"].(string); w != "" {
				yLabel += ", weight " + strings.NewReplacer("lambda", "λ", "sigma", "σ", "^2", "²").Replace(w)
			}
		}
		name = modelName(mpath)
	}
	panel, err := plot.LossCurves(name+": training loss per noise level", l.steps, l.total, l.perSigma, sigmas, yLabel)
	if err != nil {
		return fmt.Errorf("%s: %w", path, trimPrefix(err, "plot: "))
	}
	fig := &plot.Figure{Panels: []plot.Panel{panel}, PanelSize: 4.5 * 72}
	if err := writeFigure(f.pic.out, format, fig); err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: wrote %s\n", f.pic.out)
	return nil
}

func isRegularFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
