package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
)

// Opset is the default-domain opset of every graph the trainer builds: the
// exported models, and the loss and gradient graphs it runs.
const Opset = 17

// Names of the inference graph's inputs and output (the score-model
// contract of docs/design.md: x [N, …data], σ [N], score like x).
const (
	InputX     = "x"
	InputSigma = "sigma"
	OutScore   = "score"
)

// Net is a noise-conditional score network s(x, σ): its inference graph,
// whose trainable parameters are initializers named in Params, with their
// initial values in the graph.
type Net struct {
	Model  *graph.Model
	Params []string
	// Energy, for an energy architecture, is the graph of E(x, σ) [N]
	// (output OutEnergy) whose negative gradient Model computes; it holds
	// the same parameters, by the same names. Nil for score networks.
	Energy *graph.Model
}

// Arch is a network architecture: it builds a Net for samples of a given
// shape, drawing the initial parameters from r.
type Arch interface {
	Name() string
	Validate() error
	Build(dataShape []int64, r *rand.Rand) (*Net, error)
}

// netBuilder is a graph.Builder with the helpers every architecture uses:
// parameters (initializers listed in Net.Params), shared constants, and
// the few composite layers.
type netBuilder struct {
	*graph.Builder
	name       string
	paramElems int64 // parameters so far; -1 past int64
	params     []string
	r          *rand.Rand
	consts     map[string]string
}

func newNetBuilder(name string, r *rand.Rand) *netBuilder {
	return &netBuilder{Builder: graph.NewBuilder(name), name: name, r: r, consts: map[string]string{}}
}

// param adds a trainable initializer drawn from U(−bound, bound): PyTorch's
// default for Linear and Conv weights and biases, bound = 1/√fan_in.
func (b *netBuilder) param(name string, shape []int64, bound float64) string {
	b.countParams(membudget.Product(shape...))
	t := graph.NewFloat32(shape, nil)
	for i := range t.F32 {
		t.F32[i] = float32(bound * (2*b.r.Float64() - 1))
	}
	return b.paramTensor(name, t)
}

func (b *netBuilder) paramTensor(name string, t *graph.Tensor) string {
	b.countParams(int64(len(t.F32)))
	n := b.Const(name, t)
	b.params = append(b.params, n)
	return n
}

// MaxDepth bounds the layers of the architectures that take a depth, far
// above what any score network uses: a graph of 10⁸ layers took the
// memory in its nodes before any weight.
const MaxDepth = 1000

// paramBytes is what training keeps of each parameter: the weight, its
// EMA, Adam's two moments, the gradient and the step's copy, float32 each.
const paramBytes = 6 * 4

// countParams adds n parameters to the network's count and stops the build
// (see withParamBudget) as soon as training them would exceed the memory
// budget, before they are allocated: a width of 10⁹ asked for 12 GB in one
// weight.
func (b *netBuilder) countParams(n int64) {
	if n < 0 || b.paramElems > 1<<62-n {
		b.paramElems = -1
	} else if b.paramElems >= 0 {
		b.paramElems += n
	}
	if err := membudget.Elems(fmt.Sprintf("trainer: %s: training its %s", b.name, paramCount(b.paramElems)), b.paramElems, paramBytes); err != nil {
		panic(paramBudgetError{err})
	}
}

func paramCount(n int64) string {
	if n < 0 {
		return "more than 2⁶² parameters"
	}
	return fmt.Sprintf("first %d parameters", n)
}

// paramBudgetError carries a budget error out of an architecture's build,
// however deep in its layers; withParamBudget turns it back into an error.
type paramBudgetError struct{ err error }

func withParamBudget[T any](build func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe, ok := p.(paramBudgetError)
			if !ok {
				panic(p)
			}
			err = pe.err
		}
	}()
	return build()
}

// ints is a shared 1-D int64 constant (axes, shapes).
func (b *netBuilder) ints(v ...int64) string {
	key := fmt.Sprint("i", v)
	if n, ok := b.consts[key]; ok {
		return n
	}
	n := b.Const("c_ints", graph.NewInt64([]int64{int64(len(v))}, append([]int64(nil), v...)))
	b.consts[key] = n
	return n
}

// scalar is a shared rank-0 float32 constant.
func (b *netBuilder) scalar(v float32) string {
	key := fmt.Sprint("f", math.Float32bits(v))
	if n, ok := b.consts[key]; ok {
		return n
	}
	n := b.Const("c_f32", graph.ScalarFloat32(v))
	b.consts[key] = n
	return n
}

func (b *netBuilder) op(op string, in ...string) string { return b.Op(op, in...)[0] }

// dense is h·W + b with W [in, out].
func (b *netBuilder) dense(name, h string, in, out int64) string {
	bound := 1 / math.Sqrt(float64(in))
	w := b.param(name+".w", []int64{in, out}, bound)
	c := b.param(name+".b", []int64{out}, bound)
	return b.op("Add", b.op("MatMul", h, w), c)
}

// act applies an activation by name (see Activations).
func (b *netBuilder) act(name, h string) string {
	switch name {
	case "silu":
		return b.op("Mul", h, b.op("Sigmoid", h))
	case "relu":
		return b.op("Relu", h)
	case "tanh":
		return b.op("Tanh", h)
	case "softplus":
		return b.op("Softplus", h)
	case "elu":
		return b.op("Elu", h)
	}
	panic("trainer: unknown activation " + name) // Validate refuses it first
}

// Activations are the hidden-layer nonlinearities the architectures offer.
var Activations = []string{"silu", "relu", "tanh", "softplus", "elu"}

func checkAct(a string) error {
	for _, n := range Activations {
		if a == n {
			return nil
		}
	}
	return fmt.Errorf("trainer: unknown activation %q (have %s)", a, strings.Join(Activations, ", "))
}

// sigmaLike reshapes σ [N] to [N, 1, …] of the given rank, to divide by.
func (b *netBuilder) sigmaLike(sigma string, rank int) string {
	axes := make([]int64, rank-1)
	for i := range axes {
		axes[i] = int64(i + 1)
	}
	return b.op("Unsqueeze", sigma, b.ints(axes...))
}

func (b *netBuilder) finish(x, sigma, out string, dataShape []int64) *Net {
	shape := graph.Shape{{Param: "N"}}
	for _, d := range dataShape {
		shape = append(shape, graph.Dim{Value: d})
	}
	b.Output(OutScore, out, graph.Float32, shape)
	return &Net{
		Model: &graph.Model{
			IRVersion:    8,
			Opsets:       []graph.OpsetImport{{Version: Opset}},
			ProducerName: "ebmrun",
			Graph:        b.Graph(),
		},
		Params: b.params,
	}
}

func dataInput(b *netBuilder, dataShape []int64) (x, sigma string) {
	shape := graph.Shape{{Param: "N"}}
	for _, d := range dataShape {
		shape = append(shape, graph.Dim{Value: d})
	}
	x = b.Input(InputX, graph.Float32, shape)
	sigma = b.Input(InputSigma, graph.Float32, graph.Shape{{Param: "N"}})
	return x, sigma
}

// MLP is the NCSN MLP for vectors (docs/design.md, W1): the input x ‖ log σ goes
// through Depth hidden layers of Width units with activation Act, then a
// linear layer back to the data dimension, and the result is divided by σ.
// The zero value is the default: 3 × 128, SiLU.
type MLP struct {
	Width int    // hidden units; default 128
	Depth int    // hidden layers; default 3
	Act   string // one of Activations; default "silu"
}

func (a MLP) defaults() MLP {
	if a.Width == 0 {
		a.Width = 128
	}
	if a.Depth == 0 {
		a.Depth = 3
	}
	if a.Act == "" {
		a.Act = "silu"
	}
	return a
}

// Name is "mlp".
func (MLP) Name() string { return "mlp" }

// Validate checks the settings.
func (a MLP) Validate() error {
	p := a.defaults()
	if p.Width < 1 || p.Depth < 1 || p.Depth > MaxDepth {
		return fmt.Errorf("trainer: mlp: width %d must be positive and depth %d in 1 … %d", p.Width, p.Depth, MaxDepth)
	}
	return checkAct(p.Act)
}

// String describes the architecture in one line.
func (a MLP) String() string {
	p := a.defaults()
	return fmt.Sprintf("mlp %d×%d %s", p.Depth, p.Width, p.Act)
}

// Build makes the network for vectors of shape [d].
func (a MLP) Build(dataShape []int64, r *rand.Rand) (*Net, error) {
	return withParamBudget(func() (*Net, error) { return a.build(dataShape, r) })
}

func (a MLP) build(dataShape []int64, r *rand.Rand) (*Net, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(dataShape) != 1 || dataShape[0] < 1 {
		return nil, fmt.Errorf("trainer: mlp: takes vectors, got samples of shape %v (use the unet for images)", dataShape)
	}
	p := a.defaults()
	d := dataShape[0]
	b := newNetBuilder("ncsn_mlp", r)
	x, sigma := dataInput(b, dataShape)
	logs := b.op("Unsqueeze", b.op("Log", sigma), b.ints(1))
	h := b.Op1("Concat", []string{x, logs}, graph.IntAttr("axis", 1))
	in := d + 1
	for i := 0; i < p.Depth; i++ {
		h = b.act(p.Act, b.dense(fmt.Sprintf("l%d", i), h, in, int64(p.Width)))
		in = int64(p.Width)
	}
	out := b.dense(fmt.Sprintf("l%d", p.Depth), h, in, d)
	out = b.op("Div", out, b.sigmaLike(sigma, 2))
	return b.finish(x, sigma, out, dataShape), nil
}
