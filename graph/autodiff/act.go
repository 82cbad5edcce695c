package autodiff

import (
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// Rules for the remaining differentiable ops the native backend runs, so
// every model it loads can be differentiated: Tan, Celu, ThresholdedRelu,
// HardSwish, Mish, Gelu, PRelu, CastLike, ReduceProd and ReduceLogSum.
func init() {
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string {
		return b.mul(g, b.add(b.scalar(1), b.mul(y, y)))
	}), "Tan")
	register(unary(func(b *builder, n *graph.Node, x, _, g string) string {
		a := float64(n.AttrFloat("alpha", 1))
		return b.where(gtZero(b, x), g, b.mul(g, b.un("Exp", b.div(x, b.scalar(a)))))
	}), "Celu")
	register(unary(func(b *builder, n *graph.Node, x, _, g string) string {
		a := float64(n.AttrFloat("alpha", 1))
		return b.where(b.op("Greater", []string{x, b.scalar(a)}), g, b.scalar(0))
	}), "ThresholdedRelu")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		// y = x·clip(x/6 + ½, 0, 1): slope 0 below −3, 1 above 3, x/3 + ½ between.
		mid := b.add(b.div(x, b.scalar(3)), b.scalar(0.5))
		d := b.where(b.op("Less", []string{x, b.scalar(-3)}), b.scalar(0),
			b.where(b.op("Greater", []string{x, b.scalar(3)}), b.scalar(1), mid))
		return b.mul(g, d)
	}), "HardSwish")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		// y = x·tanh(softplus x): y' = tanh(sp) + x·σ(x)·(1 − tanh²(sp)).
		t := b.un("Tanh", b.un("Softplus", x))
		d := b.add(t, b.mul(b.mul(x, b.un("Sigmoid", x)), b.sub(b.scalar(1), b.mul(t, t))))
		return b.mul(g, d)
	}), "Mish")
	register(unary(func(b *builder, n *graph.Node, x, _, g string) string {
		if n.AttrString("approximate", "none") == "tanh" {
			// y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³).
			k := math.Sqrt(2 / math.Pi)
			x2 := b.mul(x, x)
			u := b.mul(b.scalar(k), b.add(x, b.mul(b.scalar(0.044715), b.mul(x2, x))))
			t := b.un("Tanh", u)
			du := b.mul(b.scalar(k), b.add(b.scalar(1), b.mul(b.scalar(3*0.044715), x2)))
			d := b.add(b.mul(b.scalar(0.5), b.add(b.scalar(1), t)),
				b.mul(b.mul(b.scalar(0.5), x), b.mul(b.sub(b.scalar(1), b.mul(t, t)), du)))
			return b.mul(g, d)
		}
		// y = ½x(1 + erf(x/√2)): y' = ½(1 + erf(x/√2)) + x·φ(x).
		cdf := b.mul(b.scalar(0.5), b.add(b.scalar(1), b.un("Erf", b.mul(x, b.scalar(1/math.Sqrt2)))))
		pdf := b.mul(b.scalar(1/math.Sqrt(2*math.Pi)), b.un("Exp", b.mul(b.scalar(-0.5), b.mul(x, x))))
		return b.mul(g, b.add(cdf, b.mul(x, pdf)))
	}), "Gelu")
	register(gradPRelu, "PRelu")
	register(gradCast, "CastLike")
	register(gradReduceProdLogSum, "ReduceProd", "ReduceLogSum")
}

// gradPRelu: y = x where x > 0, slope·x elsewhere (slope broadcasts).
func gradPRelu(c *ruleCtx, gout []string) ([]string, error) {
	b, x, g := c.b, c.in(0), gout[0]
	pos := gtZero(b, x)
	return binary(c, func(i int) string {
		if i == 0 {
			return b.where(pos, g, b.mul(g, c.in(1)))
		}
		return b.where(pos, b.scalar(0), b.mul(g, x))
	})
}

// gradReduceProdLogSum: ∂Π/∂x = Π/x (undefined where an element is 0, as
// the division shows), ∂log Σ/∂x = 1/Σ = exp(−y).
func gradReduceProdLogSum(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, y, g := c.in(0), c.n.Outputs[0], gout[0]
	axes, _, noop, err := c.reduced()
	if err != nil {
		return nil, err
	}
	res := make([]string, len(c.n.Inputs))
	if noop {
		res[0] = g
		if c.n.OpType == "ReduceLogSum" {
			res[0] = b.div(g, x)
		}
		return res, nil
	}
	gk, yk := g, y
	if c.n.AttrInt("keepdims", 1) == 0 {
		gk, yk = b.unsqueeze(g, axes), b.unsqueeze(y, axes)
	}
	if c.n.OpType == "ReduceProd" {
		res[0] = b.mul(gk, b.div(yk, x))
	} else {
		res[0] = b.op("Expand", []string{b.mul(gk, b.un("Exp", b.neg(yk))), b.shapeOf(x)})
	}
	return res, nil
}
