package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/tensorio"
)

// addressSpaceKiB is the limit the hostile cases run under: 8 GiB, the
// issue's bar. A case that tries to allocate what a hostile file claims
// dies under it instead of passing by luck on a large machine.
const addressSpaceKiB = 8 << 20

// limitedRun is what one hostile case did.
type limitedRun struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runLimited runs ebmrun (this test binary) with args in dir under an
// 8 GiB address-space limit (ulimit -v), killed after 60 s.
func runLimited(t *testing.T, dir string, args ...string) limitedRun {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `ulimit -v ` + itoa(addressSpaceKiB) + ` && exec "$0" "$@"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, self}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	timer.Stop()
	r := limitedRun{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return r
}

func itoa(n int) string { return strconv.Itoa(n) }

// assertClean checks the bar for one case: exit status want, one
// `ebmrun: …` line on stderr (informational notes of the auto backend
// aside) containing each of wants, within seconds, and dir as it was.
func assertClean(t *testing.T, name string, r limitedRun, want int, dir string, before []string, wants ...string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "ebmrun: backend auto:") {
			lines = append(lines, l)
		}
	}
	if r.code != want {
		t.Errorf("%s: exit %d, want %d; stderr %q", name, r.code, want, r.stderr)
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ebmrun: ") || len(lines[0]) > 500 {
		t.Errorf("%s: stderr is not one `ebmrun: …` line: %q", name, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr %q does not contain %q", name, r.stderr, w)
		}
	}
	if r.took > 20*time.Second {
		t.Errorf("%s: took %v", name, r.took)
	}
	if after := listDir(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("%s: left files: before %v, after %v", name, before, after)
	}
}

func listDir(t *testing.T, dir string) []string {
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			names = append(names, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return names
}

// The cases of the hardening issue, each with its file in testdata/hostile
// or a special file made here, each run as a process under 8 GiB.
func TestHostileInputsEndInOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ~30 processes")
	}
	root := testenv.Root(t)
	h := func(name string) string { return filepath.Join(root, "testdata", "hostile", name) }
	swiss := filepath.Join(root, "models", "swissroll", "model.onnx")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.onnx")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoData := filepath.Join(dir, "fifo.npy")
	if err := syscall.Mkfifo(fifoData, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.onnx")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "outdir.npy"), 0o755)
	os.WriteFile(filepath.Join(dir, "s.trace.csv"), []byte("x"), 0o644)
	pts := filepath.Join(dir, "pts.npy")
	if err := tensorio.WriteNpyFile(pts, graph.NewFloat32([]int64{3, 2}, []float32{0, 1, 2, 3, 4, 5})); err != nil {
		t.Fatal(err)
	}
	energy := filepath.Join(root, "models", "8gaussians_energy_cd", "model.onnx")
	before := listDir(t, dir)
	out := filepath.Join(dir, "out.npy")
	native := []string{"--backend", "native"}
	sample := func(model string, extra ...string) []string {
		return append(append([]string{"sample", model, "-n", "100", "-o", out}, native...), extra...)
	}
	evalOn := func(data string, extra ...string) []string {
		return append(append([]string{"eval", swiss, "--data", data, "--sigma", "0.1"}, native...), extra...)
	}
	cases := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		// 1: special files as model and data paths.
		{"fifo model", sample(fifo), 1, []string{"named pipe"}},
		{"dev zero model", sample(zero), 1, []string{"device"}},
		{"folder model", sample(dir), 1, []string{"folder"}},
		{"fifo data", evalOn(fifoData), 1, []string{"named pipe"}},
		// The commands that read a file outside the loaders did not check.
		{"fifo model to meta", []string{"meta", fifo, "--sigmas", "geom:1,0.01,10", "-o", filepath.Join(dir, "m.onnx")}, 1, []string{"named pipe"}},
		{"dev zero model to meta", []string{"meta", zero, "--sigmas", "geom:1,0.01,10", "-o", filepath.Join(dir, "m.onnx")}, 1, []string{"device"}},
		{"fifo shard to merge", []string{"merge", fifoData, "-o", filepath.Join(dir, "merged.npy")}, 1, []string{"named pipe"}},
		{"fifo trace to plot", []string{"plot", "trace", fifoData, "-o", filepath.Join(dir, "t.png")}, 1, []string{"named pipe"}},
		{"fifo loss log to plot", []string{"plot", "loss", fifoData, "-o", filepath.Join(dir, "l.png")}, 1, []string{"named pipe"}},
		{"dev zero token file", []string{"serve", "--models", dir, "--token-file", zero, "--addr", "127.0.0.1:0"}, 1, []string{"--token-file", "device"}},
		// 2 and 14: per-sample size and flags bounded before allocating.
		{"data_shape 3×4096×4096", sample(h("meta_data_shape_big.onnx")), 1, []string{"memory budget"}},
		{"data_shape 2⁶⁰", sample(h("meta_data_shape_huge.onnx")), 1, []string{"ebmrun.data_shape"}},
		{"input shape 2⁴⁰", sample(h("shape_huge.onnx")), 1, []string{"one sample of more than"}},
		{"batch 2³¹−1", append(sample(swiss, "--batch", "2147483647"), "-n", "2147483647"), 1, []string{"memory budget"}},
		{"sigmas 1e11 levels", sample(swiss, "--sigmas", "geom:1,0.01,100000000000"), 2, []string{"levels"}},
		// 5 and 6: data files that claim more than they hold.
		{"npy 4 GiB header", evalOn(h("npy_huge_header.npy")), 1, []string{"header"}},
		{"npy 8 GiB data", evalOn(h("npy_huge_data.npy")), 1, []string{"bytes of data"}},
		{"npy truncated", evalOn(h("npy_truncated.npy")), 1, []string{"788 missing"}},
		{"csv.gz bomb", evalOn(h("bomb.csv.gz"), "--max-memory", "16M"), 1, []string{"memory budget"}},
		{"16-bit png bomb", evalOn(h("png16_huge")), 1, []string{"memory budget"}},
		// 7 and 15: metadata errors exit 1 and name no flag.
		{"betas steps 0", []string{"sample", h("meta_betas_zero.onnx"), "-n", "10", "-o", out, "--sampler", "ald"}, 1, []string{"ebmrun.betas"}},
		{"betas steps 4e12", sample(h("meta_betas_huge.onnx")), 1, []string{"ebmrun.betas"}},
		{"betas steps -5", sample(h("meta_betas_negative.onnx")), 1, []string{"ebmrun.betas"}},
		{"sigmas empty", sample(h("meta_sigmas_empty.onnx")), 1, []string{"ebmrun.sigmas"}},
		{"sigmas NaN", sample(h("meta_sigmas_nan.onnx")), 1, []string{"ebmrun.sigmas"}},
		{"sampler steps 9e12", sample(h("meta_sampler_steps_huge.onnx")), 1, []string{"ebmrun.sampler"}},
		// 12: output conflicts before work.
		{"-o a folder", append([]string{"sample", swiss, "-n", "10", "-o", filepath.Join(dir, "outdir.npy"), "--force"}, native...), 1, []string{"is a folder"}},
		{"existing trace", append([]string{"sample", swiss, "-n", "10", "-o", filepath.Join(dir, "s.npy"), "--trace", "1"}, native...), 1, []string{"s.trace.csv exists"}},
		{"error deep in nested If", sample(h("nested_if.onnx")), 1, []string{"NoSuchOp"}},
		{"bad --max-memory", append(sample(swiss), "--max-memory", "lots"), 2, []string{"--max-memory"}},
		// The budget covers a native run's activations, and --timeout a native call.
		{"activations over budget", []string{"sample", filepath.Join(root, "models", "fashion_mnist", "model.onnx"), "-n", "2000", "--batch", "2000",
			"-o", out, "--backend", "native", "--max-memory", "300M"}, 1, []string{"activations", "memory budget"}},
		{"native past --timeout", append(sample(swiss), "--timeout", "1ns"), 1, []string{"native: model call ran past its deadline"}},
		// 100 000 threads each took their scratch and ran out of memory.
		{"threads 100000", append(sample(swiss), "--threads", "100000"), 2, []string{"--threads", "to 1024"}},
		// Sizes from flags that allocated before any check (fatal out of memory, or a makeslice panic).
		{"logp 1e9 probes", []string{"logp", swiss, "--data", "toy:swissroll:10", "--divergence", "hutchinson", "--probes", "1000000000", "--backend", "native"}, 1, []string{"probes", "memory budget"}},
		{"logp 1e12 toy points", []string{"logp", swiss, "--data", "toy:swissroll:1000000000000", "--backend", "native"}, 1, []string{"points of swissroll", "memory budget"}},
		{"eval 1e12 toy points", evalOn("toy:swissroll:1000000000000"), 1, []string{"points of swissroll", "memory budget"}},
		{"data 1e12 toy points", []string{"data", "swissroll", "-n", "1000000000000", "-o", out}, 1, []string{"points of swissroll", "memory budget"}},
		{"logp heat map 1e8 per side", []string{"logp", swiss, "--data", "toy:swissroll:10", "--grid", "100000000", "--heatmap", filepath.Join(dir, "h.png"), "--backend", "native"}, 2, []string{"--grid"}},
		{"ais 1e12 chains", []string{"logp", energy, "--data", "toy:8gaussians:10", "--method", "ais", "--chains", "1000000000000", "--backend", "native"}, 1, []string{"chains", "memory budget"}},
		{"grid 1e9 points per axis", []string{"logp", energy, "--data", "toy:8gaussians:10", "--method", "grid", "--grid-points", "1000000000", "--backend", "native"}, 1, []string{"grid", "memory budget"}},
		{"train batch 1e12", trainArgs(filepath.Join(dir, "t.onnx"), "--batch", "1000000000000"), 1, []string{"batches of 1000000000000 samples", "memory budget"}},
		{"train width 1e9", trainArgs(filepath.Join(dir, "t.onnx"), "--width", "1000000000"), 1, []string{"parameters", "memory budget"}},
		{"train depth 1e8", trainArgs(filepath.Join(dir, "t.onnx"), "--depth", "100000000"), 2, []string{"depth 100000000 in 1 … 1000"}},
		{"train cd buffer 1e12", trainArgs(filepath.Join(dir, "t.onnx"), "--arch", "energy-mlp", "--loss", "cd", "--buffer", "1000000000000"), 1, []string{"replay buffer", "memory budget"}},
		{"validate batch 1e12", []string{"validate", swiss, "--batch", "1000000000000", "--backends", "native"}, 1, []string{"generated input", "memory budget"}},
		{"anneal 1e9 frames", []string{"plot", "anneal", swiss, "--frames", "1000000000", "-o", filepath.Join(dir, "a.gif"), "--backend", "native"}, 2, []string{"--frames"}},
		{"eval 1e9 projections", evalOn("toy:swissroll:10", "--projections", "1000000000"), 1, []string{"projections", "memory budget"}},
		{"meta --snr NaN", []string{"meta", swiss, "--snr", "NaN", "-o", filepath.Join(dir, "m.onnx")}, 2, []string{"snr must be a finite number"}},
		{"data offset 2⁶³−1", []string{"data", pts, "-n", "2", "--offset", "9223372036854775807", "-o", out}, 2, []string{"asks for more"}},
		{"plot box wider than float64", []string{"plot", "field", swiss, "--sigma", "0.1", "--box=-1e308,1e308", "-o", filepath.Join(dir, "f.png"), "--backend", "native"}, 2, []string{"--box", "finite width"}},
		{"report 13 field levels", []string{"report", swiss, "--field-sigmas", "1,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1,0.05,0.02,0.01", "-o", filepath.Join(dir, "r.html"), "--backend", "native"}, 2, []string{"--field-sigmas", "at most 12"}},
		{"compare 1e9 projections", []string{"compare", pts, pts, "--projections", "1000000000"}, 1, []string{"projections", "memory budget"}},
		{"compare 1e12 permutations", []string{"compare", pts, pts, "--permutations", "1000000000000"}, 2, []string{"--permutations"}},
		{"compare 1e8 permutations", []string{"compare", pts, pts, "--permutations", "100000000", "--max-memory", "100M"}, 1, []string{"permutations", "memory budget"}},
	}
	for _, c := range cases {
		r := runLimited(t, dir, c.args...)
		assertClean(t, c.name, r, c.code, dir, before, c.wants...)
		if c.code == 1 && strings.Contains(c.name, "betas") || strings.Contains(c.name, "sigmas empty") {
			if strings.Contains(r.stderr, "--") {
				t.Errorf("%s: names a flag the user did not give: %q", c.name, r.stderr)
			}
		}
	}
}

// An ONNX Loop with a 2⁶² trip count on onnxruntime ends at --timeout.
func TestHostileLoopTimesOut(t *testing.T) {
	if _, err := runtime.Get("ort"); err != nil {
		testenv.Missing(t, err.Error())
	}
	root := testenv.Root(t)
	dir := t.TempDir()
	r := runLimited(t, dir, "sample", filepath.Join(root, "testdata", "hostile", "loop_forever.onnx"), "-n", "4", "-o", filepath.Join(dir, "o.npy"),
		"--backend", "ort", "--timeout", "1s", "--sampler", "ula", "--steps", "1", "--sigmas", "1")
	assertClean(t, "loop", r, 1, dir, nil, "deadline")
}

// SIGINT during eval: one line, exit 130, promptly.
func TestEvalInterrupted(t *testing.T) {
	root := testenv.Root(t)
	dir := t.TempDir()
	self, _ := os.Executable()
	cmd := exec.Command(self, "eval", filepath.Join(root, "models", "swissroll", "model.onnx"), "--data", "toy:swissroll:3000000",
		"--all-sigmas", "--backend", "native")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130; stderr %q", err, errb.String())
	}
	if took := time.Since(sent); took > 10*time.Second {
		t.Errorf("stopped %v after SIGINT", took)
	}
	if s := strings.TrimSpace(errb.String()); s != "ebmrun: interrupted by SIGINT; no result" {
		t.Errorf("stderr %q", s)
	}
}

// Long error lines keep their start and end; a failure that mentions a
// usage word is still a failure (exit 1).
func TestErrorLines(t *testing.T) {
	long := "importer: node \"If_0\": " + strings.Repeat("then_branch: node \"If_1\": ", 150) + "unknown op NoSuchOp"
	got := oneLine(long)
	if len(got) > maxErrorLine+8 || !strings.HasPrefix(got, "importer: node") || !strings.HasSuffix(got, "unknown op NoSuchOp") {
		t.Errorf("oneLine of %d bytes gave %d: %q", len(long), len(got), got)
	}
	if isCobraUsage(errors.New("m.onnx: metadata ebmrun.sampler: ddpm accepts only time-conditioned models")) {
		t.Error("a failure mentioning \"accepts\" counted as a usage error")
	}
	if !isCobraUsage(errors.New("accepts 1 arg(s), received 2")) || !isCobraUsage(usagef("--batch: bad")) {
		t.Error("usage errors not recognised")
	}
}

// A model whose recommended sampler does not fit it (a diffusion sampler
// for a σ-conditioned score) is the model's fault: exit 1, naming the
// metadata key and no flag. The same choice made with --sampler is a usage
// error.
func TestRecommendedSamplerMismatchIsNotUsage(t *testing.T) {
	root := testenv.Root(t)
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(root, "models", "swissroll", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	data, err = importer.SetMetadata(data, map[string]string{importer.MetaSampler: `{"sampler":"ddpm","steps":10}`})
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runLimited(t, dir, "sample", model, "-n", "10", "-o", filepath.Join(dir, "o.npy"), "--backend", "native")
	assertClean(t, "recommended ddpm", r, 1, dir, nil, importer.MetaSampler, "ddpm")
	if strings.Contains(r.stderr, "--") {
		t.Errorf("names a flag the user did not give: %q", r.stderr)
	}
	r = runLimited(t, dir, "sample", filepath.Join(root, "models", "swissroll", "model.onnx"), "-n", "10", "-o", filepath.Join(dir, "o.npy"),
		"--backend", "native", "--sampler", "ddpm")
	assertClean(t, "--sampler ddpm", r, 2, dir, nil, "ddpm")
}
