package graph

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors that callers may test with errors.Is.
var (
	ErrCycle         = errors.New("graph has a cycle")
	ErrDangling      = errors.New("input is produced by nothing")
	ErrDuplicate     = errors.New("value is defined twice")
	ErrMissingOutput = errors.New("graph output is produced by nothing")
	ErrShapeConflict = errors.New("shapes contradict each other")
	ErrUnsupportedOp = errors.New("unsupported operator")
)

// NodeError is an error at one node.
type NodeError struct {
	Node string // the node's label
	Op   string
	Err  error
}

func (e *NodeError) Error() string { return fmt.Sprintf("node %q (%s): %v", e.Node, e.Op, e.Err) }
func (e *NodeError) Unwrap() error { return e.Err }

// TopoOrder returns the nodes in an order where every node comes after the
// producers of its inputs. It is iterative (Kahn's algorithm), so chains of
// any length need no deep recursion. outer names values visible from an
// enclosing graph (for subgraphs); they count as available.
func (g *Graph) TopoOrder() ([]*Node, error) {
	producer := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = i
			}
		}
	}
	indeg := make([]int, len(g.Nodes))
	users := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		seen := map[int]bool{}
		for _, in := range n.Inputs {
			if p, ok := producer[in]; ok && in != "" && !seen[p] {
				seen[p] = true
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	queue := make([]int, 0, len(g.Nodes))
	for i, d := range indeg {
		if d == 0 {
			queue = append(queue, i)
		}
	}
	order := make([]*Node, 0, len(g.Nodes))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		order = append(order, g.Nodes[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				queue = append(queue, u)
			}
		}
	}
	if len(order) != len(g.Nodes) {
		var stuck []string
		for i, d := range indeg {
			if d > 0 {
				stuck = append(stuck, g.Nodes[i].Label())
			}
		}
		return nil, fmt.Errorf("%w through nodes %s", ErrCycle, listNames(stuck, 8))
	}
	return order, nil
}

// Validate checks the graph's structure: every node input is defined, no value
// is defined twice, every output is produced, there is no cycle, and declared
// shapes do not contradict what shape inference derives. All problems of a
// kind are reported together.
func (g *Graph) Validate() error {
	return g.validate(nil)
}

func (g *Graph) validate(outer map[string]bool) error {
	defined := map[string]bool{}
	var errs []error
	define := func(name, what string) {
		if name == "" {
			return
		}
		if defined[name] {
			errs = append(errs, fmt.Errorf("%w: %q (%s)", ErrDuplicate, name, what))
		}
		defined[name] = true
	}
	inits := map[string]bool{}
	for _, in := range g.Initializers {
		define(in.Name, "initializer")
		inits[in.Name] = true
	}
	for _, in := range g.Inputs {
		if inits[in.Name] {
			continue // weights listed as inputs too, as older exporters do
		}
		define(in.Name, "graph input")
	}
	for _, n := range g.Nodes {
		if n.OpType == "" {
			errs = append(errs, &NodeError{n.Label(), "?", errors.New("empty op type")})
		}
		for _, o := range n.Outputs {
			define(o, "output of node "+n.Label())
		}
	}
	var dangling []string
	visible := func(name string) bool { return defined[name] || outer[name] }
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != "" && !visible(in) {
				dangling = append(dangling, fmt.Sprintf("%q (node %q)", in, n.Label()))
			}
		}
		for _, a := range n.Attrs {
			subs := a.Graphs
			if a.G != nil {
				subs = append([]*Graph{a.G}, subs...)
			}
			for _, sg := range subs {
				scope := make(map[string]bool, len(defined)+len(outer))
				for k := range outer {
					scope[k] = true
				}
				for k := range defined {
					scope[k] = true
				}
				if err := sg.validate(scope); err != nil {
					errs = append(errs, &NodeError{n.Label(), n.OpType, fmt.Errorf("subgraph %q: %w", a.Name, err)})
				}
			}
		}
	}
	if len(dangling) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrDangling, listNames(dangling, 10)))
	}
	var missing []string
	for _, o := range g.Outputs {
		if !visible(o.Name) {
			missing = append(missing, fmt.Sprintf("%q", o.Name))
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrMissingOutput, strings.Join(missing, ", ")))
	}
	for _, in := range g.Initializers {
		if in.Tensor == nil {
			errs = append(errs, fmt.Errorf("initializer %q has no tensor", in.Name))
			continue
		}
		if err := in.Tensor.Check(); err != nil {
			errs = append(errs, fmt.Errorf("initializer %q: %w", in.Name, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, err := g.TopoOrder(); err != nil {
		return err
	}
	if outer == nil {
		if _, err := InferShapes(g); err != nil {
			return err
		}
	}
	return nil
}

func listNames(names []string, max int) string {
	sort.Strings(names)
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}
