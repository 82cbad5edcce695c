package native

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
)

// TestBatchInvariance: a sample's score does not depend, to the last bit, on
// the batch it is computed in or its place there. The samplers promise
// bit-identical samples for any batch size, which rests on this.
func TestBatchInvariance(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"ncsn_mlp", "ncsnv1_labels", "conv_score"} {
		path := testenv.Path(t, "testdata", "models", name, "model.onnx")
		testenv.Require(t, path, "run `make fixtures`")
		m, err := importer.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{1, 2} {
			p, err := Backend{}.Prepare(m, runtime.Options{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			const n = 203
			rng := rand.New(rand.NewPCG(1, 2))
			ins := make([]*graph.Tensor, len(p.Inputs()))
			for i, v := range p.Inputs() {
				shape := append([]int64{n}, v.Shape[1:].Ints()...)
				switch v.DType {
				case graph.Float32:
					ins[i] = graph.NewFloat32(shape, nil)
					for k := range ins[i].F32 {
						ins[i].F32[k] = float32(math.Exp(rng.NormFloat64() - 1))
					}
				case graph.Int64:
					ins[i] = graph.NewInt64(shape, nil)
					for k := range ins[i].I64 {
						ins[i].I64[k] = rng.Int64N(10)
					}
				}
			}
			whole := []*graph.Tensor{new(graph.Tensor)}
			if err := s.Run(ins, whole); err != nil {
				t.Fatal(err)
			}
			per := int(whole[0].Len() / n)
			for _, chunk := range []int{1, 6, 7, 16, 17, 100} {
				for start := 0; start < n; start += chunk {
					end := min(n, start+chunk)
					part := make([]*graph.Tensor, len(ins))
					for i, in := range ins {
						part[i] = rows(in, start, end)
					}
					out := []*graph.Tensor{new(graph.Tensor)}
					if err := s.Run(part, out); err != nil {
						t.Fatal(err)
					}
					for k, v := range out[0].F32 {
						if w := whole[0].F32[start*per+k]; math.Float32bits(v) != math.Float32bits(w) {
							t.Fatalf("%s, %d threads: sample %d differs in a batch of %d: %v vs %v", name, threads, start+k/per, chunk, v, w)
						}
					}
				}
			}
			s.Close()
			p.Close()
		}
	}
}

func rows(t *graph.Tensor, start, end int) *graph.Tensor {
	per := int(t.Len()) / int(t.Shape[0])
	shape := append([]int64{int64(end - start)}, t.Shape[1:]...)
	if t.DType == graph.Int64 {
		return graph.NewInt64(shape, t.I64[start*per:end*per])
	}
	return graph.NewFloat32(shape, t.F32[start*per:end*per])
}
