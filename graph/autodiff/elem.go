package autodiff

import (
	"errors"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// unary builds the gradient of a one-input op from x, y and ∂y.
func unary(f func(b *builder, n *graph.Node, x, y, g string) string) rule {
	return func(c *ruleCtx, gout []string) ([]string, error) {
		res := make([]string, len(c.n.Inputs))
		if c.wants(0) && gout[0] != "" {
			res[0] = f(c.b, c.n, c.in(0), c.n.Outputs[0], gout[0])
		}
		return res, nil
	}
}

// gtZero is x > 0 as a bool mask.
func gtZero(b *builder, x string) string { return b.op("Greater", []string{x, b.scalar(0)}) }

func init() {
	register(unary(func(b *builder, _ *graph.Node, _, _, g string) string { return g }), "Identity")
	register(gradDropout, "Dropout")
	register(unary(func(b *builder, _ *graph.Node, _, _, g string) string { return b.neg(g) }), "Neg")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string { return b.mul(g, b.un("Sign", x)) }), "Abs")
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string { return b.mul(g, y) }), "Exp")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string { return b.div(g, x) }), "Log")
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string {
		return b.div(b.mul(g, b.scalar(0.5)), y)
	}), "Sqrt")
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string {
		return b.neg(b.mul(g, b.mul(y, y)))
	}), "Reciprocal")
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string {
		return b.mul(g, b.mul(y, b.sub(b.scalar(1), y)))
	}), "Sigmoid")
	register(unary(func(b *builder, _ *graph.Node, _, y, g string) string {
		return b.mul(g, b.sub(b.scalar(1), b.mul(y, y)))
	}), "Tanh")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		return b.where(gtZero(b, x), g, b.scalar(0))
	}), "Relu")
	register(unary(func(b *builder, n *graph.Node, x, _, g string) string {
		a := float64(n.AttrFloat("alpha", 0.01))
		return b.where(gtZero(b, x), g, b.mul(g, b.scalar(a)))
	}), "LeakyRelu")
	register(unary(func(b *builder, n *graph.Node, x, y, g string) string {
		a := float64(n.AttrFloat("alpha", 1))
		return b.where(gtZero(b, x), g, b.mul(g, b.add(y, b.scalar(a))))
	}), "Elu")
	register(unary(func(b *builder, n *graph.Node, x, y, g string) string {
		a := float64(n.AttrFloat("alpha", 1.67326319217681884765625))
		gm := float64(n.AttrFloat("gamma", 1.05070102214813232421875))
		return b.where(gtZero(b, x), b.mul(g, b.scalar(gm)), b.mul(g, b.add(y, b.scalar(a*gm))))
	}), "Selu")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		return b.mul(g, b.un("Sigmoid", x))
	}), "Softplus")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		d := b.add(b.scalar(1), b.un("Abs", x))
		return b.div(g, b.mul(d, d))
	}), "Softsign")
	register(unary(func(b *builder, n *graph.Node, _, y, g string) string {
		a := float64(n.AttrFloat("alpha", 0.2))
		inside := b.op("And", []string{gtZero(b, y), b.op("Less", []string{y, b.scalar(1)})})
		return b.where(inside, b.mul(g, b.scalar(a)), b.scalar(0))
	}), "HardSigmoid")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		e := b.un("Exp", b.neg(b.mul(x, x)))
		return b.mul(g, b.mul(e, b.scalar(2/math.Sqrt(math.Pi))))
	}), "Erf")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string { return b.mul(g, b.un("Cos", x)) }), "Sin")
	register(unary(func(b *builder, _ *graph.Node, x, _, g string) string {
		return b.neg(b.mul(g, b.un("Sin", x)))
	}), "Cos")
	register(gradCast, "Cast")
	register(gradAdd, "Add")
	register(gradSub, "Sub")
	register(gradMul, "Mul")
	register(gradDiv, "Div")
	register(gradPow, "Pow")
	register(gradSum, "Sum")
	register(gradMean, "Mean")
	register(gradMaxMin, "Max", "Min")
	register(gradWhere, "Where")
	register(gradClip, "Clip")
}

func gradDropout(c *ruleCtx, gout []string) ([]string, error) {
	if c.n.AttrInt("training_mode", 0) != 0 || (c.in(2) != "" && c.b.consts[c.in(2)] == nil) {
		return nil, errors.New("only inference-mode Dropout (an identity) is differentiable")
	}
	if t := c.b.consts[c.in(2)]; t != nil && len(t.B) == 1 && t.B[0] {
		return nil, errors.New("only inference-mode Dropout (an identity) is differentiable")
	}
	res := make([]string, len(c.n.Inputs))
	res[0] = gout[0]
	return res, nil
}

func gradCast(c *ruleCtx, gout []string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	if c.wants(0) {
		res[0] = c.b.op("Cast", []string{gout[0]}, graph.IntAttr("to", int64(c.b.dtype(c.in(0)))))
		if c.b.dtype(c.in(0)) == graph.Float32 && c.b.dtype(c.n.Outputs[0]) == graph.Float32 {
			res[0] = gout[0]
		}
	}
	return res, nil
}

// binary runs f for each input that wants a gradient and sums the result
// down to that input's shape.
func binary(c *ruleCtx, f func(i int) string) ([]string, error) {
	res := make([]string, len(c.n.Inputs))
	for i := range c.n.Inputs {
		if !c.wants(i) {
			continue
		}
		g, err := c.b.unbroadcast(f(i), c.in(i), c.n.Inputs...)
		if err != nil {
			return nil, err
		}
		res[i] = g
	}
	return res, nil
}

func gradAdd(c *ruleCtx, gout []string) ([]string, error) {
	return binary(c, func(int) string { return gout[0] })
}

func gradSub(c *ruleCtx, gout []string) ([]string, error) {
	return binary(c, func(i int) string {
		if i == 1 {
			return c.b.neg(gout[0])
		}
		return gout[0]
	})
}

func gradMul(c *ruleCtx, gout []string) ([]string, error) {
	return binary(c, func(i int) string { return c.b.mul(gout[0], c.in(1-i)) })
}

func gradDiv(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	return binary(c, func(i int) string {
		if i == 0 {
			return b.div(gout[0], c.in(1))
		}
		return b.neg(b.div(b.mul(gout[0], c.n.Outputs[0]), c.in(1)))
	})
}

func gradPow(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, e, y, g := c.in(0), c.in(1), c.n.Outputs[0], gout[0]
	ef := e
	if b.dtype(e) != graph.Float32 {
		ef = b.op("Cast", []string{e}, graph.IntAttr("to", int64(graph.Float32)))
	}
	return binary(c, func(i int) string {
		if i == 0 {
			return b.mul(g, b.mul(ef, b.op("Pow", []string{x, b.sub(ef, b.scalar(1))})))
		}
		return b.mul(g, b.mul(y, b.un("Log", x)))
	})
}

func gradSum(c *ruleCtx, gout []string) ([]string, error) {
	return binary(c, func(int) string { return gout[0] })
}

func gradMean(c *ruleCtx, gout []string) ([]string, error) {
	k := float64(len(c.n.Inputs))
	return binary(c, func(int) string { return c.b.mul(gout[0], c.b.scalar(1/k)) })
}

// gradMaxMin sends the gradient to the inputs equal to the result; on ties
// the first such input takes it.
func gradMaxMin(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	y := c.n.Outputs[0]
	zero := b.scalar(0)
	taken := ""
	masks := make([]string, len(c.n.Inputs))
	for i, in := range c.n.Inputs {
		hit := b.op("Equal", []string{in, y})
		if taken != "" {
			hit = b.op("And", []string{hit, b.un("Not", taken)})
			taken = b.op("Or", []string{taken, hit})
		} else {
			taken = hit
		}
		masks[i] = hit
	}
	return binary(c, func(i int) string { return b.where(masks[i], gout[0], zero) })
}

func gradWhere(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	zero := b.scalar(0)
	res, err := binary(c, func(i int) string {
		switch i {
		case 1:
			return b.where(c.in(0), gout[0], zero)
		case 2:
			return b.where(c.in(0), zero, gout[0])
		}
		return ""
	})
	if err == nil && len(res) > 0 {
		res[0] = ""
	}
	return res, err
}

// gradClip passes the gradient where the input was not clipped; the bounds
// (inputs from opset 11) get it where they were the result.
func gradClip(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	x, y, g := c.in(0), c.n.Outputs[0], gout[0]
	zero := b.scalar(0)
	inside := b.op("Equal", []string{x, y})
	// A bound gets the gradient where it is the result and x is not (when
	// min > max the result is max everywhere).
	bound := func(v string) string {
		return b.op("And", []string{b.op("Equal", []string{y, v}), b.un("Not", inside)})
	}
	return binary(c, func(i int) string {
		switch i {
		case 0:
			return b.where(inside, g, zero)
		case 1:
			return b.where(bound(c.in(1)), g, zero)
		}
		return b.where(bound(c.in(2)), g, zero)
	})
}
