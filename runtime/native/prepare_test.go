package native

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
)

// prepareNoPanic runs Prepare, turning a panic into an error the test reports.
func prepareNoPanic(m *graph.Model, opts runtime.Options) (err error, panicked error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Errorf("Prepare panicked: %v", r)
		}
	}()
	p, err := Backend{}.Prepare(m, opts)
	if err == nil {
		p.Close()
	}
	return err, nil
}

// oneNode is a model of one node of op whose inputs are named ins ("" for an
// empty name), every named input a float32 [2, 3] graph input x.
func oneNode(op string, opset int64, ins []string, nout int) *graph.Model {
	g := &graph.Graph{Name: op}
	g.Inputs = []graph.ValueInfo{{Name: "x", DType: graph.Float32, Shape: graph.Fixed(2, 3), HasShape: true}}
	n := &graph.Node{Name: "the_node", OpType: op, Inputs: ins}
	for i := 0; i < nout; i++ {
		o := fmt.Sprintf("y%d", i)
		n.Outputs = append(n.Outputs, o)
		g.Outputs = append(g.Outputs, graph.ValueInfo{Name: o})
	}
	g.Nodes = []*graph.Node{n}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: opset}}, Graph: g}
}

// TestPrepareRefusesMissingInputs builds, for every op the backend claims, a
// node with too few inputs and nodes with each required input empty-named:
// Prepare must refuse each cleanly, naming the node and the op, and never
// panic. With all required inputs present (and default attributes) it may
// refuse, but must not panic either.
func TestPrepareRefusesMissingInputs(t *testing.T) {
	for _, op := range SupportedOps() {
		def := graph.Op(op)
		if def == nil {
			t.Errorf("%s: claimed by native but not in the op table", op)
			continue
		}
		opset := max(int64(17), def.Since)
		minIn, _, minOut, _, required, _ := def.Arity(opset)
		nout := max(minOut, 1)
		named := func(k int) []string {
			ins := make([]string, k)
			for i := range ins {
				ins[i] = "x"
			}
			return ins
		}
		type variant struct {
			name string
			ins  []string
		}
		var bad []variant
		if minIn > 0 {
			bad = append(bad, variant{"too few inputs", named(minIn - 1)})
		}
		for i := 0; i < minIn && i < len(required); i++ {
			if required[i] {
				ins := named(minIn)
				ins[i] = ""
				bad = append(bad, variant{fmt.Sprintf("input %d empty-named", i), ins})
			}
		}
		if minIn > 0 && len(bad) < 2 {
			t.Errorf("%s: expected at least one empty-named variant (min %d inputs, required %v)", op, minIn, required)
		}
		for _, v := range bad {
			err, panicked := prepareNoPanic(oneNode(op, opset, v.ins, nout), runtime.Options{Threads: 1})
			switch {
			case panicked != nil:
				t.Errorf("%s, %s: %v", op, v.name, panicked)
			case err == nil:
				t.Errorf("%s, %s: Prepare accepted the node", op, v.name)
			case !errors.Is(err, graph.ErrArity) || !strings.Contains(err.Error(), `"the_node"`) || !strings.Contains(err.Error(), op):
				t.Errorf("%s, %s: error does not name the node, op and arity: %v", op, v.name, err)
			}
		}
		if _, panicked := prepareNoPanic(oneNode(op, opset, named(minIn), nout), runtime.Options{Threads: 1}); panicked != nil {
			t.Errorf("%s with %d inputs: %v", op, minIn, panicked)
		}
	}
}

// TestPrepareRefusesBadWindows: kernel_shape 0 or negative and strides 0
// are refused at Prepare, not run (MaxPool used to return −Inf).
func TestPrepareRefusesBadWindows(t *testing.T) {
	for _, op := range []string{"MaxPool", "AveragePool", "Conv"} {
		for _, attrs := range [][]*graph.Attribute{
			{graph.IntsAttr("kernel_shape", 0, 0)},
			{graph.IntsAttr("kernel_shape", -1, 2)},
			{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 0, 1)},
			{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("dilations", 1, 0)},
			{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("pads", 0, 0, -1, 0)},
		} {
			ins := []string{"x"}
			if op == "Conv" {
				ins = append(ins, "w")
			}
			m := oneNode(op, 17, ins, 1)
			m.Graph.Inputs = []graph.ValueInfo{{Name: "x", DType: graph.Float32, Shape: graph.Fixed(1, 1, 4, 4), HasShape: true}}
			m.Graph.Initializers = []graph.Initializer{{Name: "w", Tensor: graph.NewFloat32([]int64{1, 1, 2, 2}, make([]float32, 4))}}
			m.Graph.Nodes[0].Attrs = attrs
			err, panicked := prepareNoPanic(m, runtime.Options{Threads: 1})
			switch {
			case panicked != nil:
				t.Errorf("%s %v: %v", op, attrs, panicked)
			case !errors.Is(err, graph.ErrAttribute):
				t.Errorf("%s %v: want an invalid-attribute error, got %v", op, attrs, err)
			}
		}
	}
}

// TestFoldBudget: 200-byte models whose constants expand to 2^30 elements
// (4 GiB) are refused at Prepare by the folding budget, with an error that
// names the node and the size, having allocated next to nothing; a larger
// budget lets the same node fold.
func TestFoldBudget(t *testing.T) {
	for _, c := range []struct{ file, node string }{{"fill.onnx", "fill_huge"}, {"expand.onnx", "expand_huge"}} {
		path := testenv.Path(t, "testdata", "foldbomb", c.file)
		testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
		m, err := importer.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		_, err = Backend{}.Prepare(m, runtime.Options{Threads: 1})
		goruntime.ReadMemStats(&after)
		if !errors.Is(err, ErrFoldBudget) || !strings.Contains(err.Error(), c.node) || !strings.Contains(err.Error(), "[32768 32768]") {
			t.Errorf("%s: want a folding-budget error naming %q and the shape, got %v", c.file, c.node, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("%s: Prepare allocated %d MiB before refusing", c.file, grew>>20)
		}
	}
	// The budget is the caller's: a small one refuses a small fold.
	b := graph.NewBuilder("small")
	x := b.Input("x", graph.Float32, graph.Fixed(4, 4))
	big := b.Node("ConstantOfShape", []string{b.Const("shape", graph.NewInt64([]int64{2}, []int64{4, 4}))}, 1)[0]
	b.Output("y", b.Node("Add", []string{x, big}, 1)[0], graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	if _, err := (Backend{}).Prepare(m, runtime.Options{Threads: 1, FoldElements: 15}); !errors.Is(err, ErrFoldBudget) {
		t.Errorf("16 elements under a budget of 15: got %v", err)
	}
	if _, err := (Backend{}).Prepare(m, runtime.Options{Threads: 1, FoldElements: 16}); err != nil {
		t.Errorf("16 elements under a budget of 16: %v", err)
	}
}

// TestReshapeTakesDyingInputsBuffer: a Reshape whose input is used nowhere
// else gets that input's buffer (no copy); one whose input is still needed
// afterwards gets its own, and both compute the right values.
func TestReshapeTakesDyingInputsBuffer(t *testing.T) {
	b := graph.NewBuilder("alias")
	x := b.Input("x", graph.Float32, graph.Fixed(2, 3))
	shape := b.Const("shape", graph.NewInt64([]int64{2}, []int64{3, 2}))
	r := b.Op1("Relu", []string{x})
	dies := b.Op1("Reshape", []string{r, shape}) // r is not used again
	n := b.Op1("Neg", []string{x})               // n is used again below
	kept := b.Op1("Reshape", []string{n, shape}) // so this one copies
	b.Output("y", b.Op1("Add", []string{b.Op1("Abs", []string{dies}), b.Op1("Add", []string{kept, b.Op1("Reshape", []string{n, shape})})}), graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	pr, err := Backend{}.Prepare(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*plan)
	slot := func(name string) int {
		for i, s := range p.slotName {
			if s == name {
				return i
			}
		}
		t.Fatalf("no slot %s", name)
		return -1
	}
	if p.bufOf[slot(dies)] != p.bufOf[slot(r)] {
		t.Errorf("the reshape of a dying value got buffer %d, its input had %d", p.bufOf[slot(dies)], p.bufOf[slot(r)])
	}
	if p.bufOf[slot(kept)] == p.bufOf[slot(n)] {
		t.Errorf("the reshape of a value used later shares its buffer %d", p.bufOf[slot(n)])
	}
	s, err := pr.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in := graph.NewFloat32([]int64{2, 3}, []float32{1, -2, 3, -4, 5, -6})
	out := []*graph.Tensor{new(graph.Tensor)}
	if err := s.Run([]*graph.Tensor{in}, out); err != nil {
		t.Fatal(err)
	}
	// |relu(x)| + 2·(−x)
	for i, v := range in.F32 {
		if want := max(v, 0) - 2*v; out[0].F32[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, out[0].F32[i], want)
		}
	}
}

// TestLargeSliceTransposeOnWorkers: Slice and Transpose of tensors large
// enough to be split over the workers give the serial copy's result.
func TestLargeSliceTransposeOnWorkers(t *testing.T) {
	b := graph.NewBuilder("gather")
	x := b.Input("x", graph.Float32, graph.Fixed(4, 16, 40, 40))
	tr := b.Op1("Transpose", []string{x}, graph.IntsAttr("perm", 1, 0, 3, 2))
	sl := b.Op1("Slice", []string{x, b.Const("starts", graph.NewInt64([]int64{2}, []int64{1, 2})), b.Const("e", graph.NewInt64([]int64{2}, []int64{39, 40})),
		b.Const("a", graph.NewInt64([]int64{2}, []int64{2, 3})), b.Const("st", graph.NewInt64([]int64{2}, []int64{1, 2}))})
	b.Output("transposed", tr, graph.Float32, nil)
	b.Output("sliced", sl, graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	pr, err := Backend{}.Prepare(m, runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := pr.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in := graph.NewFloat32([]int64{4, 16, 40, 40}, nil)
	for i := range in.F32 {
		in.F32[i] = float32(i)
	}
	out := []*graph.Tensor{new(graph.Tensor), new(graph.Tensor)}
	if err := s.Run([]*graph.Tensor{in}, out); err != nil {
		t.Fatal(err)
	}
	for a := 0; a < 16; a++ {
		for n := 0; n < 4; n++ {
			for w := 0; w < 40; w++ {
				for h := 0; h < 40; h++ {
					if got, want := out[0].F32[((a*4+n)*40+w)*40+h], in.F32[((n*16+a)*40+h)*40+w]; got != want {
						t.Fatalf("transpose[%d,%d,%d,%d] = %g, want %g", a, n, w, h, got, want)
					}
				}
			}
		}
	}
	// 4·16·38·19 = 46 208 elements: over the split threshold, like the transpose
	if got := out[1].Shape; len(got) != 4 || got[2] != 38 || got[3] != 19 {
		t.Fatalf("slice shape %v, want [4 16 38 19]", got)
	}
	for i, v := range out[1].F32 {
		n, c, h, w := i/(16*38*19), i/(38*19)%16, i/19%38, i%19
		if want := in.F32[((n*16+c)*40+h+1)*40+2+2*w]; v != want {
			t.Fatalf("slice[%d] = %g, want %g", i, v, want)
		}
	}
}

// TestBatchedProductsOnWorkers: small batched MatMuls and Einsum products,
// handed out whole to the workers, give one thread's bits.
func TestBatchedProductsOnWorkers(t *testing.T) {
	b := graph.NewBuilder("bmm")
	x := b.Input("x", graph.Float32, graph.Fixed(6, 20, 24))
	y := b.Input("y", graph.Float32, graph.Fixed(6, 24, 20))
	w := b.Input("w", graph.Float32, graph.Fixed(24, 10))
	b.Output("mm", b.Op1("MatMul", []string{x, y}), graph.Float32, nil)
	b.Output("es", b.Op1("Einsum", []string{x, y}, graph.StringAttr("equation", "bij,bjk->bik")), graph.Float32, nil)
	b.Output("nin", b.Op1("Einsum", []string{y, w}, graph.StringAttr("equation", "bcn,cd->bdn")), graph.Float32, nil)
	m := &graph.Model{Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	r := rand.New(rand.NewPCG(3, 9))
	in := []*graph.Tensor{graph.NewFloat32([]int64{6, 20, 24}, randVec(r, 6*20*24)), graph.NewFloat32([]int64{6, 24, 20}, randVec(r, 6*24*20)),
		graph.NewFloat32([]int64{24, 10}, randVec(r, 240))}
	run := func(threads int) []*graph.Tensor {
		pr, err := Backend{}.Prepare(m, runtime.Options{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		s, err := pr.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out := []*graph.Tensor{new(graph.Tensor), new(graph.Tensor), new(graph.Tensor)}
		if err := s.Run(in, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	one, two := run(1), run(2)
	for k := range one {
		for i := range one[k].F32 {
			if math.Float32bits(one[k].F32[i]) != math.Float32bits(two[k].F32[i]) {
				t.Fatalf("output %d element %d: %g on one thread, %g on two", k, i, one[k].F32[i], two[k].F32[i])
			}
		}
	}
	// and they are the products
	for q := 0; q < 6; q++ {
		for i := 0; i < 20; i++ {
			for j := 0; j < 20; j++ {
				var s float64
				for k := 0; k < 24; k++ {
					s += float64(in[0].F32[(q*20+i)*24+k]) * float64(in[1].F32[(q*24+k)*20+j])
				}
				if got := float64(one[0].F32[(q*20+i)*20+j]); math.Abs(got-s) > 1e-4 {
					t.Fatalf("mm[%d,%d,%d] = %g, want %g", q, i, j, got, s)
				}
			}
		}
	}
}

// TestTransposeTiles: transposes that take the tiled copy (the last two
// axes swapped, with odd sizes and outer axes) match the plain strided
// gather element for element.
func TestTransposeTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct {
		shape []int64
		perm  []int
	}{
		{[]int64{3, 37, 21}, []int{0, 2, 1}},
		{[]int64{2, 5, 64, 48}, []int{0, 1, 3, 2}},
		{[]int64{40, 17}, []int{1, 0}},
		{[]int64{2, 3, 20, 19}, []int{1, 0, 3, 2}},
		{[]int64{16, 16, 256}, []int{0, 2, 1}},
	} {
		n := int(prod(c.shape))
		src := randVec(r, n)
		var inStride, stride dims
		s := int64(1)
		for i := len(c.shape) - 1; i >= 0; i-- {
			inStride[i] = s
			s *= c.shape[i]
		}
		out := make([]int64, len(c.shape))
		for i, p := range c.perm {
			out[i] = c.shape[p]
			stride[i] = inStride[p]
		}
		want := make([]float32, n)
		gatherStrided(want, src, 0, out, stride[:len(out)])
		for _, pl := range []*pool{nil, newPool(2)} {
			got := make([]float32, n)
			gatherF32(&exec{pool: pl, state: new(gatherTask)}, got, src, 0, out, stride[:len(out)])
			pl.close()
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%v perm %v: element %d is %g, want %g", c.shape, c.perm, i, got[i], want[i])
				}
			}
		}
	}
}
