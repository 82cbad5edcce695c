package graph

import (
	"fmt"
	"sort"
	"strings"
)

// EinsumLetters is the number of letter labels (a–z, A–Z); ellipsis
// dimensions get the labels from EinsumLetters on, counted from the ellipsis'
// first dimension.
const EinsumLetters = 52

// EinsumEq is a parsed Einsum equation (numpy's language, as ONNX defines
// it): letter labels, one optional ellipsis per term, an explicit or an
// implicit output.
type EinsumEq struct {
	Terms    []EinsumTerm
	Out      EinsumTerm
	Implicit bool
}

// EinsumTerm is one side of the equation: letter labels (0–51) in order, and
// where the ellipsis sits among them (−1: none).
type EinsumTerm struct {
	Labels []int
	Ell    int
}

func einsumLabel(r byte) (int, bool) {
	switch {
	case r >= 'a' && r <= 'z':
		return int(r - 'a'), true
	case r >= 'A' && r <= 'Z':
		return 26 + int(r-'A'), true
	}
	return 0, false
}

// EinsumLetter is the letter of label l (< EinsumLetters).
func EinsumLetter(l int) byte {
	if l < 26 {
		return byte('a' + l)
	}
	return byte('A' + l - 26)
}

func parseEinsumTerm(s string) (EinsumTerm, error) {
	t := EinsumTerm{Ell: -1}
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], "...") {
			if t.Ell >= 0 {
				return t, fmt.Errorf("term %q has two ellipses", s)
			}
			t.Ell = len(t.Labels)
			i += 2
			continue
		}
		l, ok := einsumLabel(s[i])
		if !ok {
			return t, fmt.Errorf("term %q: %q is not a letter", s, s[i])
		}
		t.Labels = append(t.Labels, l)
	}
	return t, nil
}

// ParseEinsum parses an equation for a node with the given number of inputs.
func ParseEinsum(eq string, inputs int) (*EinsumEq, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	e := &EinsumEq{}
	lhs, rhs, explicit := strings.Cut(eq, "->")
	for _, s := range strings.Split(lhs, ",") {
		t, err := parseEinsumTerm(s)
		if err != nil {
			return nil, err
		}
		e.Terms = append(e.Terms, t)
	}
	if len(e.Terms) != inputs {
		return nil, fmt.Errorf("equation %q has %d operands, the node %d inputs", eq, len(e.Terms), inputs)
	}
	var count [EinsumLetters]int
	anyEll := false
	for _, t := range e.Terms {
		for _, l := range t.Labels {
			count[l]++
		}
		anyEll = anyEll || t.Ell >= 0
	}
	if explicit {
		t, err := parseEinsumTerm(rhs)
		if err != nil {
			return nil, err
		}
		var seen [EinsumLetters]bool
		for _, l := range t.Labels {
			if seen[l] {
				return nil, fmt.Errorf("equation %q repeats output label %c", eq, EinsumLetter(l))
			}
			if count[l] == 0 {
				return nil, fmt.Errorf("equation %q: output label %c is in no input", eq, EinsumLetter(l))
			}
			seen[l] = true
		}
		if t.Ell >= 0 && !anyEll {
			return nil, fmt.Errorf("equation %q: output ellipsis without an input one", eq)
		}
		e.Out = t
		return e, nil
	}
	// Implicit output: the ellipsis, then the labels used exactly once, in
	// ASCII order (upper case first), as numpy does.
	e.Implicit = true
	e.Out = EinsumTerm{Ell: -1}
	if anyEll {
		e.Out.Ell = 0
	}
	var once []byte
	for l, n := range count {
		if n == 1 {
			once = append(once, EinsumLetter(l))
		}
	}
	sort.Slice(once, func(i, j int) bool { return once[i] < once[j] })
	for _, r := range once {
		l, _ := einsumLabel(r)
		e.Out.Labels = append(e.Out.Labels, l)
	}
	return e, nil
}

// Expand labels every axis of operands of the given ranks, numbering the
// ellipsis dimensions right-aligned (they broadcast against each other), and
// returns the output's labels.
func (e *EinsumEq) Expand(ranks []int) (ops [][]int, out []int, err error) {
	ell := 0
	for i, t := range e.Terms {
		r := ranks[i]
		switch {
		case t.Ell < 0 && r != len(t.Labels):
			return nil, nil, fmt.Errorf("einsum operand %d has rank %d, its term %d labels", i, r, len(t.Labels))
		case t.Ell >= 0 && r < len(t.Labels):
			return nil, nil, fmt.Errorf("einsum operand %d has rank %d, fewer than its term's %d labels", i, r, len(t.Labels))
		case t.Ell >= 0:
			ell = max(ell, r-len(t.Labels))
		}
	}
	expand := func(t EinsumTerm, ne int) []int {
		labs := make([]int, 0, len(t.Labels)+ne)
		for j := 0; j <= len(t.Labels); j++ {
			if j == t.Ell {
				for k := 0; k < ne; k++ {
					labs = append(labs, EinsumLetters+ell-ne+k)
				}
			}
			if j < len(t.Labels) {
				labs = append(labs, t.Labels[j])
			}
		}
		return labs
	}
	for i, t := range e.Terms {
		ops = append(ops, expand(t, ranks[i]-len(t.Labels)))
	}
	return ops, expand(e.Out, ell), nil
}

// inferEinsum derives the output from the parsed equation, ellipses
// included; a label's size is the first operand's that is not 1.
func inferEinsum(n *Node, in []*Fact) ([]*Fact, error) {
	e, err := ParseEinsum(n.AttrString("equation", ""), len(n.Inputs))
	if err != nil {
		return nil, err
	}
	out := &Fact{DType: in0(in).DType}
	ranks := make([]int, len(in))
	for i, v := range in {
		if v == nil || !v.HasShape {
			return []*Fact{out}, nil
		}
		ranks[i] = len(v.Shape)
	}
	ops, labs, err := e.Expand(ranks)
	if err != nil {
		return nil, err
	}
	size := map[int]Dim{}
	for i, ls := range ops {
		for j, l := range ls {
			d := in[i].Shape[j]
			old, ok := size[l]
			switch {
			case !ok || (old.Known() && old.Value == 1):
				size[l] = d
			case d.Known() && old.Known() && d.Value != old.Value && d.Value != 1:
				return nil, fmt.Errorf("einsum label %d has sizes %d and %d", l, old.Value, d.Value)
			case !old.Known() && old.Param == "" && (d.Known() && d.Value != 1 || d.Param != ""):
				size[l] = d
			}
		}
	}
	out.Shape, out.HasShape = make(Shape, len(labs)), true
	for i, l := range labs {
		out.Shape[i] = size[l]
	}
	return []*Fact{out}, nil
}

func init() {
	on(func(_ *Facts, n *Node, ins []*Fact) ([]*Fact, error) { return inferEinsum(n, ins) }, "Einsum")
}
