package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/runtime"
)

// mlpWeights holds the toy NCSN MLP's parameters, for the graph and for the
// plain-Go reference.
type mlpWeights struct {
	w     [4][]float32 // [in, out] row-major
	b     [4][]float32
	sizes [5]int
}

func newMLPWeights(seed uint64, hidden int) *mlpWeights {
	r := rand.New(rand.NewPCG(seed, 1))
	m := &mlpWeights{sizes: [5]int{3, hidden, hidden, hidden, 2}}
	for l := 0; l < 4; l++ {
		in, out := m.sizes[l], m.sizes[l+1]
		m.w[l] = make([]float32, in*out)
		m.b[l] = make([]float32, out)
		s := float32(1 / math.Sqrt(float64(in)))
		for i := range m.w[l] {
			m.w[l][i] = float32(r.NormFloat64()) * s
		}
		for i := range m.b[l] {
			m.b[l][i] = float32(r.NormFloat64()) * 0.1
		}
	}
	return m
}

// buildMLP makes concat(x, log σ) → 3×(linear, SiLU) → linear → ÷σ, using
// Gemm for the first two layers and MatMul+Add for the others.
func buildMLP(m *mlpWeights) *graph.Model {
	b := graph.NewBuilder("ncsn_mlp")
	N := graph.Dim{Param: "N"}
	x := b.Input("x", graph.Float32, graph.Shape{N, {Value: 2}})
	sigma := b.Input("sigma", graph.Float32, graph.Shape{N, {Value: 1}})
	h := b.Op1("Concat", []string{x, b.Op("Log", sigma)[0]}, graph.IntAttr("axis", 1))
	for l := 0; l < 4; l++ {
		in, out := int64(m.sizes[l]), int64(m.sizes[l+1])
		w := b.Const("w", graph.NewFloat32([]int64{in, out}, m.w[l]))
		bias := b.Const("b", graph.NewFloat32([]int64{out}, m.b[l]))
		if l < 2 {
			h = b.Op1("Gemm", []string{h, w, bias})
		} else {
			h = b.Op("Add", b.Op("MatMul", h, w)[0], bias)[0]
		}
		if l < 3 {
			h = b.Op("Mul", b.Op("Sigmoid", h)[0], h)[0]
		}
	}
	b.Output("score", b.Op("Div", h, sigma)[0], graph.Float32, graph.Shape{N, {Value: 2}})
	return &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
}

// mlpRef evaluates the MLP in float64.
func mlpRef(m *mlpWeights, x, sigma []float32, n int) []float32 {
	out := make([]float32, 2*n)
	for i := 0; i < n; i++ {
		h := []float64{float64(x[2*i]), float64(x[2*i+1]), math.Log(float64(sigma[i]))}
		for l := 0; l < 4; l++ {
			in, o := m.sizes[l], m.sizes[l+1]
			next := make([]float64, o)
			for j := 0; j < o; j++ {
				s := float64(m.b[l][j])
				for k := 0; k < in; k++ {
					s += h[k] * float64(m.w[l][k*o+j])
				}
				if l < 3 {
					s = s / (1 + math.Exp(-s))
				}
				next[j] = s
			}
			h = next
		}
		out[2*i] = float32(h[0] / float64(sigma[i]))
		out[2*i+1] = float32(h[1] / float64(sigma[i]))
	}
	return out
}

func mlpInputs(seed uint64, n int) (*graph.Tensor, *graph.Tensor) {
	r := rand.New(rand.NewPCG(seed, 2))
	x := graph.NewFloat32([]int64{int64(n), 2}, nil)
	s := graph.NewFloat32([]int64{int64(n), 1}, nil)
	for i := range x.F32 {
		x.F32[i] = float32(r.NormFloat64())
	}
	for i := range s.F32 {
		s.F32[i] = float32(0.01 + r.Float64())
	}
	return x, s
}

// mlpTol is the relative tolerance of the float32 MLP against float64.
const mlpTol = 1e-4

func newSession(t testing.TB, m *graph.Model, opts runtime.Options) runtime.Session {
	t.Helper()
	p, err := Backend{}.Prepare(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMLPMatchesReference(t *testing.T) {
	t.Parallel()
	w := newMLPWeights(1, 128)
	for _, threads := range []int{1, 2} {
		s := newSession(t, buildMLP(w), runtime.Options{Threads: threads})
		out := new(graph.Tensor)
		for _, n := range []int{1, 7, 256, 1000, 0} {
			x, sig := mlpInputs(uint64(n), n)
			if err := s.Run([]*graph.Tensor{x, sig}, []*graph.Tensor{out}); err != nil {
				t.Fatalf("threads %d batch %d: %v", threads, n, err)
			}
			if out.DType != graph.Float32 || !sameShape(out.Shape, []int64{int64(n), 2}) {
				t.Fatalf("batch %d: got %s %v", n, out.DType, out.Shape)
			}
			want := mlpRef(w, x.F32, sig.F32, n)
			for i := range want {
				if d := math.Abs(float64(out.F32[i] - want[i])); d > mlpTol*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("threads %d batch %d: score[%d] = %g, want %g", threads, n, i, out.F32[i], want[i])
				}
			}
		}
	}
}

func TestRunAllocatesNothing(t *testing.T) {
	w := newMLPWeights(2, 128)
	for _, threads := range []int{1, 2} {
		s := newSession(t, buildMLP(w), runtime.Options{Threads: threads})
		x, sig := mlpInputs(3, 256)
		in := []*graph.Tensor{x, sig}
		out := []*graph.Tensor{new(graph.Tensor)}
		if err := s.Run(in, out); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if err := s.Run(in, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("threads %d: Run allocates %v times per call in steady state", threads, allocs)
		}
	}
}

func BenchmarkMLP(b *testing.B) {
	w := newMLPWeights(2, 128)
	for _, n := range []int{1, 256, 1000, 10000} {
		b.Run(itoa(n), func(b *testing.B) {
			s := newSession(b, buildMLP(w), runtime.Options{})
			x, sig := mlpInputs(3, n)
			in := []*graph.Tensor{x, sig}
			out := []*graph.Tensor{new(graph.Tensor)}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Run(in, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// TestPlanPrepacksConstantB: Prepare packs the weights of Gemm and MatMul
// once, and the plan computes the same bits as one that packs them per run.
func TestPlanPrepacksConstantB(t *testing.T) {
	t.Parallel()
	w := newMLPWeights(4, 37)
	pp, err := Backend{}.Prepare(buildMLP(w), runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Backend{}.Prepare(buildMLP(w), runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	perRun := fresh.(*plan)
	products := 0
	for i, st := range perRun.steps {
		var pre **packedB
		switch k := st.k.(type) {
		case *gemmKernel:
			c := *k
			perRun.steps[i].k, pre = &c, &c.pre
		case *matmulKernel:
			c := *k
			perRun.steps[i].k, pre = &c, &c.pre
		default:
			continue
		}
		products++
		if haveAVX2 && *pre == nil {
			t.Errorf("step %s: B is not packed at Prepare", st.node.Label())
		}
		*pre = nil
	}
	if products != 4 {
		t.Fatalf("plan has %d products, want 4", products)
	}
	s1, err := pp.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := perRun.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, n := range []int{1, 5, 203} {
		x, sig := mlpInputs(uint64(n), n)
		o1, o2 := new(graph.Tensor), new(graph.Tensor)
		if err := s1.Run([]*graph.Tensor{x, sig}, []*graph.Tensor{o1}); err != nil {
			t.Fatal(err)
		}
		if err := s2.Run([]*graph.Tensor{x, sig}, []*graph.Tensor{o2}); err != nil {
			t.Fatal(err)
		}
		for i := range o1.F32 {
			if math.Float32bits(o1.F32[i]) != math.Float32bits(o2.F32[i]) {
				t.Fatalf("batch %d: score[%d] = %v pre-packed, %v packed per run", n, i, o1.F32[i], o2.F32[i])
			}
		}
	}
}

// TestSessionsShareAPlan: sessions on several goroutines read the plan's
// pre-packed weights at once and each gets the bits a lone session gets.
func TestSessionsShareAPlan(t *testing.T) {
	t.Parallel()
	p, err := Backend{}.Prepare(buildMLP(newMLPWeights(5, 64)), runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	x, sig := mlpInputs(6, 33)
	want := new(graph.Tensor)
	s := newSessionOf(t, p)
	if err := s.Run([]*graph.Tensor{x, sig}, []*graph.Tensor{want}); err != nil {
		t.Fatal(err)
	}
	const goroutines = 4
	errs := make(chan error, goroutines)
	for range goroutines {
		s := newSessionOf(t, p)
		go func() {
			out := new(graph.Tensor)
			for range 20 {
				if err := s.Run([]*graph.Tensor{x, sig}, []*graph.Tensor{out}); err != nil {
					errs <- err
					return
				}
				for i, v := range out.F32 {
					if math.Float32bits(v) != math.Float32bits(want.F32[i]) {
						errs <- fmt.Errorf("score[%d] = %v, want %v", i, v, want.F32[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func newSessionOf(t *testing.T, p runtime.Plan) runtime.Session {
	t.Helper()
	s, err := p.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
