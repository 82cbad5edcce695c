// Command w4 is benchmark W4: convolutional score networks on ebmrun's
// pure-Go backend against onnxruntime and PyTorch, in one invocation.
//
//	go run ./bench/w4 [-models a.onnx,b.onnx] [-batch 1,16,128] [-train-batch 64]
//
// For every model it times the forward pass at each batch size and one
// denoising-score-matching training step (forward, loss, gradient and Adam,
// trainer.Trainer.Step) at the training batch, on native and on ort, and the
// same in PyTorch (bench/w4/w4_torch.py: the research families' own PyTorch
// modules from testdata/research/make_research.py with the fixture's
// weights, and for a model made by ebmrun — the shipped Fashion-MNIST U-Net
// — its ONNX graph run op by op with torch functions, which is what eager
// PyTorch does for the equivalent module). PyTorch runs at 1 and 2 threads
// and the faster is the peer.
//
// These machines are shared: every figure worth quoting is a ratio between
// rows of one invocation. Each time is the median of -repeat measurements
// of at least -time each, taken round-robin over native and ort so that a
// burst of load hits both. GFLOP/s counts the multiply-adds of Conv, Gemm,
// MatMul and Einsum (PyTorch's script counts them from ONNX's shape
// inference) and is set against the sgemm peak measured at the start, the
// best of native's packed GEMM and PyTorch's mm on 512³ at the same thread
// count.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "w4: %v\n", err)
		os.Exit(1)
	}
}

type settings struct {
	batches      []int
	trainBatch   int
	repeat       int
	minTime      time.Duration
	threads      int
	torchThreads []int
	python       string
	script       string
}

// fixture is a model of the benchmark and how PyTorch builds it.
type fixture struct {
	name, path string
	torch      string // w4_torch.py's --family: a make_research class, or "onnx"
	seed       int    // make_research's parameter seed
}

var defaultModels = []fixture{
	{"fashion_mnist U-Net", "models/fashion_mnist/model.onnx", "onnx", 0},
	{"NCSNv2 RefineNet", "testdata/research/ncsnv2_op14/model.onnx", "NCSNv2", 12},
	{"NCSN++ (attention)", "testdata/research/ncsnpp_op14/model.onnx", "NCSNpp", 13},
	{"DDPM ε-U-Net", "testdata/research/ddpm_op13/model.onnx", "DDPMEps", 14},
}

func run() error {
	var s settings
	batches := flag.String("batch", "1,16,128", "forward batch sizes")
	flag.IntVar(&s.trainBatch, "train-batch", 64, "batch of the DSM training step (0: none)")
	flag.IntVar(&s.repeat, "repeat", 5, "measurements per runner and row (the median counts)")
	flag.DurationVar(&s.minTime, "time", 300*time.Millisecond, "least time of one measurement")
	flag.IntVar(&s.threads, "threads", goruntime.NumCPU(), "threads of native and ort")
	tt := flag.String("torch-threads", "1,2", "PyTorch thread counts (the faster is the peer)")
	flag.StringVar(&s.python, "python", "/usr/bin/python3", "Python with Debian's torch and onnx")
	flag.StringVar(&s.script, "script", "bench/w4/w4_torch.py", "the PyTorch peer")
	only := flag.String("models", "", "comma-separated model paths (default: the four of W4)")
	flag.Parse()
	var err error
	if s.batches, err = ints(*batches); err != nil {
		return fmt.Errorf("-batch: %w", err)
	}
	if s.torchThreads, err = ints(*tt); err != nil {
		return fmt.Errorf("-torch-threads: %w", err)
	}
	models := defaultModels
	if *only != "" {
		models = nil
		for _, p := range strings.Split(*only, ",") {
			f := fixture{name: p, path: p, torch: "onnx"}
			for _, d := range defaultModels {
				if d.path == p {
					f = d
				}
			}
			models = append(models, f)
		}
	}

	fmt.Printf("W4: conv score networks, forward at batch %v and a DSM step at batch %d; %d cores, %s, native and ort at %d threads, PyTorch at %v\n",
		s.batches, s.trainBatch, goruntime.NumCPU(), goruntime.Version(), s.threads, s.torchThreads)
	fmt.Printf("load average before: %s\n\n", loadavg())

	nativePeak := gemmPeak(s.threads)
	var rows []row
	var torchPeak float64
	for _, f := range models {
		tr, err := torchPeer(&s, f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "w4: %s: PyTorch: %v\n", f.name, err)
		}
		torchPeak = max(torchPeak, tr.Peak)
		rs, err := measure(&s, f, tr)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		for _, r := range rs { // progress, for long runs on a loaded machine
			fmt.Fprintf(os.Stderr, "w4: %s, %s: native %.4gs, ort %.4gs, PyTorch %.4gs (%d threads) %s %s\n",
				r.model, r.task, r.native, r.ort, r.torch, r.torchThreads, firstLine(r.nativeN), firstLine(r.ortN))
		}
		rows = append(rows, rs...)
	}
	peak := max(nativePeak, torchPeak)
	fmt.Printf("sgemm peak at %d threads (512³): native %.1f GFLOP/s, PyTorch %.1f GFLOP/s; the table uses %.1f\n\n",
		s.threads, nativePeak, torchPeak, peak)
	printTable(rows, peak)
	fmt.Printf("\nload average after: %s\n", loadavg())
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// row is one line of the table: a model, a task, each runner's seconds.
type row struct {
	model, task   string
	flops         float64 // multiply-adds × 2 of the task
	native, ort   float64 // seconds, 0: failed
	torch         float64 // the faster PyTorch
	torchThreads  int
	nativeN, ortN string // notes when a runner failed
}

// torchResult is w4_torch.py's answer.
type torchResult struct {
	Torch   string             `json:"torch"`
	Forward map[string]float64 `json:"forward"` // "batch/threads" → seconds
	Train   map[string]float64 `json:"train"`   // "threads" → seconds
	Flops   float64            `json:"flops_per_sample"`
	Peak    float64            `json:"peak_gflops"`
	CheckOK *bool              `json:"check_ok"`
	Check   float64            `json:"check_rel_err"`
	Note    string             `json:"note"`
}

func torchPeer(s *settings, f fixture) (torchResult, error) {
	var r torchResult
	var bs []string
	for _, b := range s.batches {
		bs = append(bs, strconv.Itoa(b))
	}
	var ts []string
	for _, t := range s.torchThreads {
		ts = append(ts, strconv.Itoa(t))
	}
	cmd := exec.Command(s.python, s.script, "--model", f.path, "--family", f.torch, "--seed", strconv.Itoa(f.seed),
		"--batch", strings.Join(bs, ","), "--train-batch", strconv.Itoa(s.trainBatch), "--threads", strings.Join(ts, ","),
		"--repeat", strconv.Itoa(s.repeat), "--time", strconv.FormatFloat(s.minTime.Seconds(), 'g', -1, 64),
		"--peak-threads", strconv.Itoa(s.threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", s.python, s.script, err)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("%s: %v in %q", s.script, err, out)
	}
	if r.CheckOK != nil && !*r.CheckOK {
		return r, fmt.Errorf("PyTorch's module does not reproduce the fixture (rel. error %.2g)", r.Check)
	}
	return r, nil
}

// measure times native and ort on every task of f.
func measure(s *settings, f fixture, tr torchResult) ([]row, error) {
	m, err := importer.Load(f.path)
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, b := range s.batches {
		r := row{model: f.name, task: fmt.Sprintf("forward, batch %d", b), flops: 2 * tr.Flops * float64(b)}
		r.torch, r.torchThreads = bestTorch(tr.Forward, strconv.Itoa(b)+"/", s.torchThreads)
		ins, err := inputs(m, b)
		if err != nil {
			return nil, err
		}
		var runners []*timed
		for _, be := range []string{"native", "ort"} {
			t, err := newForward(be, m, ins, s.threads)
			if err != nil {
				runners = append(runners, &timed{err: err})
				continue
			}
			defer t.close()
			runners = append(runners, t)
		}
		roundRobin(runners, s)
		r.native, r.nativeN = runners[0].result()
		r.ort, r.ortN = runners[1].result()
		rows = append(rows, r)
	}
	if s.trainBatch > 0 {
		r := row{model: f.name, task: fmt.Sprintf("DSM step, batch %d", s.trainBatch), flops: 3 * 2 * tr.Flops * float64(s.trainBatch)}
		r.torch, r.torchThreads = bestTorch(tr.Train, "", s.torchThreads)
		var runners []*timed
		for _, be := range []string{"native", "ort"} {
			t, err := newTrainStep(be, m, s.trainBatch, s.threads)
			if err != nil {
				runners = append(runners, &timed{err: err})
				continue
			}
			defer t.close()
			runners = append(runners, t)
		}
		roundRobin(runners, s)
		r.native, r.nativeN = runners[0].result()
		r.ort, r.ortN = runners[1].result()
		rows = append(rows, r)
	}
	return rows, nil
}

func bestTorch(m map[string]float64, prefix string, threads []int) (float64, int) {
	best, bt := 0.0, 0
	for _, t := range threads {
		if v, ok := m[prefix+strconv.Itoa(t)]; ok && v > 0 && (best == 0 || v < best) {
			best, bt = v, t
		}
	}
	return best, bt
}

// timed is one runner of one row: a function run repeatedly.
type timed struct {
	run   func() error
	close func()
	times []float64
	err   error
}

func (t *timed) result() (float64, string) {
	if t.err != nil {
		return 0, t.err.Error()
	}
	if len(t.times) == 0 {
		return 0, "no measurement"
	}
	slices.Sort(t.times)
	return t.times[len(t.times)/2], ""
}

// roundRobin warms every runner up, then takes s.repeat measurements of
// each in turn.
func roundRobin(rs []*timed, s *settings) {
	for _, t := range rs {
		if t.err == nil {
			t.err = t.run()
		}
	}
	for range s.repeat {
		for _, t := range rs {
			if t.err != nil {
				continue
			}
			n, start := 0, time.Now()
			for time.Since(start) < s.minTime || n == 0 {
				if err := t.run(); err != nil {
					t.err = err
					break
				}
				n++
			}
			t.times = append(t.times, time.Since(start).Seconds()/float64(n))
		}
	}
}

// inputs draws a batch of b for m's inputs: images N(0.5, 0.25²), σ and
// labels and times spread over their usual ranges, one seed for all runners.
func inputs(m *graph.Model, b int) ([]*graph.Tensor, error) {
	r := rand.New(rand.NewPCG(4, uint64(b)))
	var ins []*graph.Tensor
	for _, v := range m.Graph.Inputs {
		if isInitializer(m, v.Name) {
			continue
		}
		shape := []int64{int64(b)}
		for _, d := range v.Shape[1:] {
			if !d.Known() {
				return nil, fmt.Errorf("input %q has an unknown dimension besides the batch", v.Name)
			}
			shape = append(shape, d.Value)
		}
		switch v.DType {
		case graph.Float32:
			t := graph.NewFloat32(shape, nil)
			for i := range t.F32 {
				switch {
				case len(shape) > 1:
					t.F32[i] = float32(0.5 + 0.25*r.NormFloat64())
				case v.Name == "t":
					t.F32[i] = float32(r.IntN(1000))
				default:
					t.F32[i] = float32(math.Exp(math.Log(0.01) * r.Float64()))
				}
			}
			ins = append(ins, t)
		case graph.Int64:
			t := graph.NewInt64(shape, nil)
			hi := int64(10)
			if v.Name == "t" {
				hi = 1000
			}
			for i := range t.I64 {
				t.I64[i] = r.Int64N(hi)
			}
			ins = append(ins, t)
		default:
			return nil, fmt.Errorf("input %q of type %s", v.Name, v.DType)
		}
	}
	return ins, nil
}

func isInitializer(m *graph.Model, name string) bool {
	for _, in := range m.Graph.Initializers {
		if in.Name == name {
			return true
		}
	}
	return false
}

func newForward(backend string, m *graph.Model, ins []*graph.Tensor, threads int) (*timed, error) {
	be, err := runtime.Get(backend)
	if err != nil {
		return nil, err
	}
	if err := be.Available(); err != nil {
		return nil, err
	}
	p, err := be.Prepare(m, runtime.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	sess, err := p.NewSession()
	if err != nil {
		p.Close()
		return nil, err
	}
	outs := make([]*graph.Tensor, len(p.Outputs()))
	for i := range outs {
		outs[i] = new(graph.Tensor)
	}
	return &timed{run: func() error { return sess.Run(ins, outs) }, close: func() { sess.Close(); p.Close() }}, nil
}

// peakModel is a 512³ MatMul for the sgemm peak.
func gemmPeak(threads int) float64 {
	const n = 512
	b := graph.NewBuilder("peak")
	x := b.Input("x", graph.Float32, graph.Shape{{Value: n}, {Value: n}})
	w := graph.NewFloat32([]int64{n, n}, nil)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range w.F32 {
		w.F32[i] = float32(r.NormFloat64())
	}
	y := b.Op("MatMul", x, b.Const("w", w))[0]
	b.Output("y", y, graph.Float32, graph.Shape{{Value: n}, {Value: n}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	xin := graph.NewFloat32([]int64{n, n}, slices.Clone(w.F32))
	t, err := newForward("native", m, []*graph.Tensor{xin}, threads)
	if err != nil {
		fmt.Fprintf(os.Stderr, "w4: sgemm peak: %v\n", err)
		return 0
	}
	defer t.close()
	roundRobin([]*timed{t}, &settings{repeat: 5, minTime: 200 * time.Millisecond})
	sec, _ := t.result()
	return 2 * n * n * n / sec / 1e9
}

func printTable(rows []row, peak float64) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "model\ttask\tnative ms\tort ms\tPyTorch ms\tnative/ort\tnative/PyTorch\tort/PyTorch\tnative GFLOP/s\t% peak\tort GFLOP/s\t")
	ms := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v*1e3)
	}
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	gf := func(v, flops float64) string {
		if v == 0 || flops == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", flops/v/1e9)
	}
	pct := func(v, flops float64) string {
		if v == 0 || flops == 0 || peak == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*flops/v/1e9/peak)
	}
	var notes []string
	for _, r := range rows {
		torch := ms(r.torch)
		if r.torch > 0 {
			torch = fmt.Sprintf("%s (%dt)", torch, r.torchThreads)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.model, r.task, ms(r.native), ms(r.ort), torch,
			ratio(r.native, r.ort), ratio(r.native, r.torch), ratio(r.ort, r.torch), gf(r.native, r.flops), pct(r.native, r.flops), gf(r.ort, r.flops))
		for _, n := range []struct{ who, note string }{{"native", r.nativeN}, {"ort", r.ortN}} {
			if n.note != "" {
				notes = append(notes, fmt.Sprintf("%s, %s, %s: %s", r.model, r.task, n.who, firstLine(n.note)))
			}
		}
	}
	w.Flush()
	fmt.Println("\nms: median time per run. Ratios are times (lower is faster); the targets are native/ort ≤ 1 and both ≤ 0.5 × PyTorch.")
	fmt.Println("GFLOP/s: 2 × multiply-adds of Conv, Gemm, MatMul and Einsum per second; the DSM step counts 3 × the forward's.")
	for _, n := range notes {
		fmt.Println(n)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
