package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebmrun/ebmrun/eval"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

// torchGradTol bounds, for every parameter tensor, max|g − want| / max|want|
// between the trainer's float32 gradient and PyTorch autograd's float64 one
// on the same weights and batch.
const torchGradTol = 1e-5

// TestGradientsMatchPyTorch feeds the weights and the batch of
// testdata/trainer_grads (made by make_grads.py there) to each loss's step
// graph and compares the loss and every parameter gradient with PyTorch's:
// the loss graphs, their autodiff (second order for SSM and SSM-VR) and
// FD-SSM's stacked feeds all sit between the two.
func TestGradientsMatchPyTorch(t *testing.T) {
	dir := testenv.Path(t, "testdata", "trainer_grads")
	read := func(name string) *graph.Tensor {
		t.Helper()
		x, err := tensorio.ReadNpyFile(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	xt, sigma, z, v := read("xt"), read("sigma"), read("z"), read("v")
	n := int(sigma.Shape[0])
	for _, name := range []string{"native", "ort"} {
		be, err := runtime.Get(name)
		if err != nil {
			if name == "native" || testenv.InCI() {
				t.Fatalf("backend %s: %v", name, err)
			}
			t.Logf("ort not tested: %v", err)
			continue
		}
		for _, loss := range LossNames {
			t.Run(name+"/"+loss, func(t *testing.T) {
				cfg := Config{Arch: MLP{Width: 16, Depth: 2}, Loss: loss, Batch: n, Sigmas: []float64{1, 0.3, 0.1}, FDEps: 0.1, Threads: 1} // FDEps as make_grads.py says
				tr, err := New(cfg, toyData(t), be)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				for i := range tr.params {
					p := read(fmt.Sprintf("p%d", i))
					if !slices.Equal(p.Shape, tr.shapes[i]) {
						t.Fatalf("parameter %d (%s): fixture shape %v, network %v", i, tr.net.Params[i], p.Shape, tr.shapes[i])
					}
					copy(tr.params[i], p.F32)
				}
				copy(tr.feed[feedX].F32, xt.F32)
				copy(tr.feed[feedSigma].F32, sigma.F32)
				switch loss {
				case LossDSM:
					copy(tr.feed[feedZ].F32, z.F32)
				case LossSSM, LossSSMVR:
					copy(tr.feed[feedV].F32, v.F32)
				case LossFDSSM:
					copy(tr.feed[feedV3].F32, v.F32)
					tr.stackFD()
				}
				if err := tr.sess.Run(tr.ins, tr.outs); err != nil {
					t.Fatal(err)
				}
				key := map[string]string{LossDSM: "dsm", LossSSM: "ssm", LossSSMVR: "ssm_vr", LossFDSSM: "fd_ssm"}[loss]
				want := float64(read(key + "_loss").F32[0])
				if got := float64(tr.lossOut.F32[0]); math.Abs(got-want) > torchGradTol*math.Abs(want) {
					t.Errorf("loss %.8g, PyTorch %.8g", got, want)
				}
				var worst float64
				for i, g := range tr.gradOuts {
					w := read(fmt.Sprintf("%s_g%d", key, i))
					if !slices.Equal(g.Shape, w.Shape) {
						t.Fatalf("gradient of %s has shape %v, PyTorch's %v", tr.net.Params[i], g.Shape, w.Shape)
					}
					e := relMax(g.F32, w.F32)
					worst = max(worst, e)
					if e > torchGradTol {
						t.Errorf("gradient of %s differs from PyTorch's by %.3g relative (tolerance %g)", tr.net.Params[i], e, torchGradTol)
					}
				}
				t.Logf("largest relative gap to PyTorch: %.3g", worst)
			})
		}
	}
}

// relMax is max|got − want| / max|want|.
func relMax(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

func toyData(t *testing.T) Data {
	t.Helper()
	d, err := NewToyData("swissroll")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestProjectionsMatchEval: the trainer's slicing vectors are eval's for the
// same source — both draw through package projection — so the vectors
// eval.Draws reports for a seed are the ones the trainer draws from that
// seed's projection stream (rand.NewPCG(Seed, level<<8 | 2), eval.Draws).
func TestProjectionsMatchEval(t *testing.T) {
	const d, n = 3, 50
	for _, kind := range []string{ProjRademacher, ProjGaussian, ProjSphere} {
		got := make([]float32, n*d)
		project(got, d, kind, rand.New(rand.NewPCG(9, 0<<8|2)))
		x := graph.NewFloat32([]int64{n, d}, make([]float32, n*d))
		_, want, err := eval.Draws(x, eval.ObjectiveOptions{Objective: eval.SSM, Projection: eval.Projection(kind), Seed: 9}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the trainer draws %v…, eval %v…", kind, got[:6], want[:6])
		}
	}
}

// adamTol bounds max|p − want| / max|want| per tensor after three steps
// against torch.optim.AdamW (float32 both; they round in different places).
const adamTol = 1e-6

// TestAdamMatchesPyTorch takes three Adam steps, without and with decoupled
// weight decay, from the fixture's weights with the DSM gradients scaled by
// 1, −0.5 and 2, and compares the weights with torch.optim.AdamW's.
func TestAdamMatchesPyTorch(t *testing.T) {
	dir := testenv.Path(t, "testdata", "trainer_grads")
	read := func(name string) []float32 {
		t.Helper()
		x, err := tensorio.ReadNpyFile(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		return x.F32
	}
	const layers = 6
	for _, wd := range []float64{0, 0.1} {
		var params, grads [][]float32
		for i := 0; i < layers; i++ {
			params = append(params, read(fmt.Sprintf("p%d", i)))
			grads = append(grads, make([]float32, len(params[i])))
		}
		opt := newAdam(params, 0.9, 0.999, 1e-8, wd)
		for k, scale := range []float32{1, -0.5, 2} {
			for i := range grads {
				for j, g := range read(fmt.Sprintf("dsm_g%d", i)) {
					grads[i][j] = scale * g
				}
			}
			opt.update(params, grads, k+1, 1e-2, 1)
		}
		for i := range params {
			want := read(fmt.Sprintf("adam_wd%g_p%d", wd, i))
			if e := relMax(params[i], want); e > adamTol {
				t.Errorf("weight decay %g: parameter %d after three steps differs from torch.optim.AdamW by %.3g relative", wd, i, e)
			}
		}
	}
}

// slicedTol bounds |FD-SSM − SSM| relative to the batch's mean |SSM| per
// sample: the central difference at ε = 0.01·σ is exact to O(ε²).
const slicedTol = 1e-2

// TestSlicedLossesAgree compares the three sliced losses on the same
// weights and batches (x̃, σ, v) at several points of an SSM training run:
// FD-SSM estimates SSM sample by sample, and SSM-VR differs from SSM by
// σ²·½(‖s‖² − (vᵀs)²) per sample, whose mean is zero for Rademacher v — so
// their batch means agree within a few standard errors of that difference.
func TestSlicedLossesAgree(t *testing.T) {
	be, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(loss string) *Trainer {
		cfg := Config{Arch: MLP{Width: 32, Depth: 2}, Loss: loss, Batch: 512, LR: 3e-3, Steps: 100, Seed: 7, Threads: 1,
			Sigmas: []float64{3, 1, 0.3, 0.1}}
		tr, err := New(cfg, toyData(t), be)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	ssm, vr, fd := mk(LossSSM), mk(LossSSMVR), mk(LossFDSSM)
	// perSample runs o's loss on step k's batch with ssm's current weights.
	perSample := func(o *Trainer, k int) []float64 {
		for i := range o.params {
			copy(o.params[i], ssm.params[i])
		}
		o.fill(k, sampler.Stream(o.cfg.Seed, k))
		if err := o.sess.Run(o.ins, o.outs); err != nil {
			t.Fatal(err)
		}
		n := o.cfg.Batch
		out := make([]float64, n)
		for j, v := range o.perOut.F32 { // FD-SSM: a sample's three rows
			out[j%n] += float64(v)
		}
		return out
	}
	checks := 0
	for k := 0; k < 60; k++ {
		if k%15 == 0 {
			checks++
			a, b, c := perSample(ssm, k), perSample(vr, k), perSample(fd, k)
			var ma, mb, mc, scale, dvr, dvr2 float64
			n := float64(len(a))
			for i := range a {
				ma, mb, mc = ma+a[i]/n, mb+b[i]/n, mc+c[i]/n
				scale += math.Abs(a[i]) / n
				dvr, dvr2 = dvr+(b[i]-a[i])/n, dvr2+(b[i]-a[i])*(b[i]-a[i])/n
			}
			se := math.Sqrt((dvr2 - dvr*dvr) / (n - 1))
			if math.Abs(mc-ma) > slicedTol*scale {
				t.Errorf("step %d: FD-SSM %.6f, SSM %.6f: differ by more than %g of mean |SSM| %.4f", k, mc, ma, slicedTol, scale)
			}
			if math.Abs(mb-ma) > 4*se || !(se > 0) {
				t.Errorf("step %d: SSM-VR %.6f, SSM %.6f: differ by more than 4 standard errors (%.3g)", k, mb, ma, se)
			}
			t.Logf("step %d: SSM %.5f, SSM-VR %.5f (±%.2g), FD-SSM %.5f", k, ma, mb, se, mc)
		}
		if _, err := ssm.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if checks < 3 {
		t.Fatalf("%d checks", checks)
	}
}
