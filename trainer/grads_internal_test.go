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
