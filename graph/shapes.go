package graph

import (
	"errors"
	"fmt"
)

// InferShapes walks the graph in topological order and derives the dtype and
// symbolic shape of every value it can, with the op table's rules (see
// Facts). It fails when two facts contradict (incompatible broadcast
// dimensions, inner dimensions of a product, a declared shape that disagrees
// with the derived one).
func InferShapes(g *Graph) (map[string]ValueInfo, error) {
	return InferShapesAt(g, 0)
}

// InferShapesAt is InferShapes for a model at a default-domain opset (0:
// the newest); the forms of some ops' arguments depend on it.
func InferShapesAt(g *Graph, opset int64) (map[string]ValueInfo, error) {
	order, err := g.TopoOrder()
	if err != nil {
		return nil, err
	}
	f := NewFacts(opset)
	consts := g.InitializerMap()
	for _, in := range g.Initializers {
		f.SetConst(in.Name, in.Tensor)
	}
	for _, in := range g.Inputs {
		if _, ok := consts[in.Name]; !ok {
			f.Values[in.Name] = &Fact{DType: in.DType, Shape: in.Shape, HasShape: in.HasShape}
		}
	}
	declared := map[string]ValueInfo{}
	for _, v := range g.ValueInfo {
		declared[v.Name] = v
	}
	for _, v := range g.Outputs {
		declared[v.Name] = v
	}
	var errs []error
	for _, n := range order {
		if err := f.Infer(n); err != nil {
			var ne *NodeError
			if errors.As(err, &ne) {
				err = &NodeError{ne.Node, ne.Op, fmt.Errorf("%w: %v", ErrShapeConflict, ne.Err)}
			}
			errs = append(errs, err)
			continue
		}
		for _, name := range n.Outputs {
			fact := f.Values[name]
			if name == "" || fact == nil {
				continue
			}
			o := ValueInfo{Name: name, DType: fact.DType, Shape: fact.Shape, HasShape: fact.HasShape}
			if d, ok := declared[name]; ok {
				if err := compatible(d, o); err != nil {
					errs = append(errs, &NodeError{n.Label(), n.OpType, fmt.Errorf("%w: output %q declared %s, inferred %s: %v", ErrShapeConflict, name, d.Shape, o.Shape, err)})
				}
				o = merge(d, o)
				fact.DType, fact.Shape, fact.HasShape = o.DType, o.Shape, o.HasShape
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	known := make(map[string]ValueInfo, len(f.Values))
	for name, fact := range f.Values {
		known[name] = ValueInfo{Name: name, DType: fact.DType, Shape: fact.Shape, HasShape: fact.HasShape}
	}
	return known, nil
}

func compatible(a, b ValueInfo) error {
	if a.DType != Undefined && b.DType != Undefined && a.DType != b.DType {
		return fmt.Errorf("dtype %s vs %s", a.DType, b.DType)
	}
	if !a.HasShape || !b.HasShape {
		return nil
	}
	if len(a.Shape) != len(b.Shape) {
		return fmt.Errorf("rank %d vs %d", len(a.Shape), len(b.Shape))
	}
	for i := range a.Shape {
		if a.Shape[i].Known() && b.Shape[i].Known() && a.Shape[i].Value != b.Shape[i].Value {
			return fmt.Errorf("dimension %d is %d vs %d", i, a.Shape[i].Value, b.Shape[i].Value)
		}
	}
	return nil
}

// merge keeps the more specific of two compatible facts.
func merge(decl, inf ValueInfo) ValueInfo {
	out := inf
	if out.DType == Undefined {
		out.DType = decl.DType
	}
	if !inf.HasShape {
		out.Shape, out.HasShape = decl.Shape, decl.HasShape
		return out
	}
	// Ranks that differ are a conflict the caller reports; keep the inferred.
	if decl.HasShape && len(decl.Shape) == len(inf.Shape) {
		out.Shape = append(Shape(nil), inf.Shape...)
		for i := range out.Shape {
			if !out.Shape[i].Known() && (decl.Shape[i].Known() || decl.Shape[i].Param != "") {
				out.Shape[i] = decl.Shape[i]
			}
		}
	}
	return out
}

// Broadcast combines shapes by ONNX multidirectional broadcasting.
func Broadcast(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		if len(s) > rank {
			rank = len(s)
		}
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = Dim{Value: 1}
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d.Known() && d.Value == 1:
			case o.Known() && o.Value == 1:
				*o = d
			case d.Known() && o.Known() && d.Value != o.Value:
				return nil, fmt.Errorf("cannot broadcast dimension %d against %d", o.Value, d.Value)
			case !o.Known() && d.Known():
				*o = d
			case d.Param != "" && o.Param == "" && !o.Known():
				*o = d
			}
		}
	}
	return out, nil
}
