package autodiff

import (
	"fmt"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

func init() {
	register(gradEinsum, "Einsum")
}

// gradEinsum differentiates an Einsum with another Einsum per operand: the
// output's gradient contracted with the other operands, onto the operand's
// labels. Labels only that operand has (summed in the forward pass) come
// back through a vector of ones of their size; a label repeated in the
// operand (a diagonal) is put back on the diagonal with identity matrices;
// an axis of size 1 that broadcast against the others is summed and
// restored as 1.
func gradEinsum(c *ruleCtx, gout []string) ([]string, error) {
	b := c.b
	n := c.n
	eq, err := graph.ParseEinsum(n.AttrString("equation", ""), len(n.Inputs))
	if err != nil {
		return nil, err
	}
	ranks := make([]int, len(n.Inputs))
	for i, in := range n.Inputs {
		if ranks[i], err = b.rank(in); err != nil {
			return nil, err
		}
	}
	ops, outLabs, err := eq.Expand(ranks)
	if err != nil {
		return nil, err
	}
	res := make([]string, len(n.Inputs))
	for k := range n.Inputs {
		if !c.wants(k) {
			continue
		}
		if res[k], err = b.einsumOperandGrad(n, k, ops, outLabs, gout[0]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (b *builder) einsumOperandGrad(n *graph.Node, k int, ops [][]int, outLabs []int, g string) (string, error) {
	x := n.Inputs[k]
	labs := ops[k]
	shape := b.shape(x)
	letters := map[int]byte{}
	used := map[byte]bool{}
	nextFree := 0
	fresh := func() (byte, error) {
		for ; nextFree < graph.EinsumLetters; nextFree++ {
			c := graph.EinsumLetter(nextFree)
			if !used[c] {
				used[c] = true
				return c, nil
			}
		}
		return 0, fmt.Errorf("the gradient's equation needs more than %d labels", graph.EinsumLetters)
	}
	letter := func(l int) (byte, error) {
		if c, ok := letters[l]; ok {
			return c, nil
		}
		c := byte(0)
		if l < graph.EinsumLetters && !used[graph.EinsumLetter(l)] {
			c = graph.EinsumLetter(l)
			used[c] = true
		} else {
			var err error
			if c, err = fresh(); err != nil {
				return 0, err
			}
		}
		letters[l] = c
		return c, nil
	}
	// Reserve the letters of every real label first, so fresh ones avoid them.
	for _, ls := range append(append([][]int(nil), ops...), outLabs) {
		for _, l := range ls {
			if l < graph.EinsumLetters {
				used[graph.EinsumLetter(l)] = true
				letters[l] = graph.EinsumLetter(l)
			}
		}
	}
	term := func(ls []int) (string, error) {
		var s strings.Builder
		for _, l := range ls {
			c, err := letter(l)
			if err != nil {
				return "", err
			}
			s.WriteByte(c)
		}
		return s.String(), nil
	}
	inputs := []string{g}
	t, err := term(outLabs)
	if err != nil {
		return "", err
	}
	terms := []string{t}
	elsewhere := map[int]bool{}
	for _, l := range outLabs {
		elsewhere[l] = true
	}
	for j, ls := range ops {
		if j == k {
			continue
		}
		t, err := term(ls)
		if err != nil {
			return "", err
		}
		inputs, terms = append(inputs, n.Inputs[j]), append(terms, t)
		for _, l := range ls {
			elsewhere[l] = true
		}
	}
	isOne := func(j int) bool { return shape[j].Known() && shape[j].Value == 1 }
	var outTerm []byte
	var ones []int64 // axes restored as size 1
	first := map[int]bool{}
	for j, l := range labs {
		if isOne(j) {
			ones = append(ones, int64(j))
			continue
		}
		c, err := letter(l)
		if err != nil {
			return "", err
		}
		if !first[l] {
			first[l] = true
			outTerm = append(outTerm, c)
			if !elsewhere[l] {
				// Summed in the forward pass: every element got the whole gradient.
				size := b.op("Gather", []string{b.shapeOf(x), b.ints(int64(j))})
				inputs = append(inputs, b.op("ConstantOfShape", []string{size},
					graph.TensorAttr("value", graph.NewFloat32([]int64{1}, []float32{1}))))
				terms = append(terms, string(c))
			}
			continue
		}
		// A repeated label: only its diagonal was read.
		d, err := b.dim(x, j)
		if err != nil {
			return "", fmt.Errorf("the gradient of a diagonal needs its size: %w", err)
		}
		f, err := fresh()
		if err != nil {
			return "", err
		}
		eye := graph.NewFloat32([]int64{d, d}, nil)
		for i := int64(0); i < d; i++ {
			eye.F32[i*d+i] = 1
		}
		inputs, terms = append(inputs, b.constant(eye)), append(terms, string([]byte{c, f}))
		outTerm = append(outTerm, f)
	}
	eqs := strings.Join(terms, ",") + "->" + string(outTerm)
	gx := b.op("Einsum", inputs, graph.StringAttr("equation", eqs))
	return b.unsqueeze(gx, ones), nil
}
