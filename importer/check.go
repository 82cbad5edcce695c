package importer

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
)

// Supported versions.
const (
	MinOpset = 11
	MaxOpset = 21
	MinIR    = 3
	MaxIR    = 10
)

// UnknownOpsError lists every node whose op type is not an ONNX operator.
type UnknownOpsError struct {
	Nodes []string // "name (OpType)"
}

func (e *UnknownOpsError) Error() string {
	return fmt.Sprintf("%d node(s) use unknown operators: %s", len(e.Nodes), strings.Join(e.Nodes, ", "))
}

func (e *UnknownOpsError) Unwrap() error { return graph.ErrUnsupportedOp }

// UnsupportedError is a well-formed model using something ebmrun does not
// take. Feature names the kind of thing, for callers that act on it: "IR
// version", "opset", "opset domain", "value type", "sparse initializers",
// "segmented tensors" or "attribute type". It wraps ErrUnsupported.
type UnsupportedError struct {
	Feature string
	Msg     string // the full sentence; empty: Feature + " are not supported"
}

func (e *UnsupportedError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Feature + " are not supported"
}

func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

func unsupported(feature, format string, args ...any) *UnsupportedError {
	return &UnsupportedError{Feature: feature, Msg: fmt.Sprintf(format, args...)}
}

// Check decides whether ebmrun can take the model: IR version 3–10, the
// default-domain opset 11–21 and no other domain, op types that ONNX defines
// (all unknown ones reported together), and a structurally valid graph.
func Check(m *graph.Model) error {
	if m.IRVersion < MinIR || m.IRVersion > MaxIR {
		return fmt.Errorf("importer: %w", unsupported("IR version", "IR version %d is not supported (supported: %d–%d)", m.IRVersion, MinIR, MaxIR))
	}
	v := m.Opset("")
	if v == 0 && m.IRVersion >= 3 {
		return fmt.Errorf("importer: the model imports no default-domain opset: %w", ErrMalformed)
	}
	if v < MinOpset || v > MaxOpset {
		return fmt.Errorf("importer: %w", unsupported("opset", "opset %d of the default ONNX domain is not supported (supported: %d–%d)", v, MinOpset, MaxOpset))
	}
	for _, o := range m.Opsets {
		if o.Domain != "" && o.Domain != "ai.onnx" {
			return fmt.Errorf("importer: %w", unsupported("opset domain", "opset domain %q (version %d) is not supported; only the default ONNX domain is", o.Domain, o.Version))
		}
	}
	if err := unknownOps(m.Graph, v); err != nil {
		return fmt.Errorf("importer: %w", err)
	}
	for _, vi := range append(append([]graph.ValueInfo{}, m.Graph.Inputs...), m.Graph.Outputs...) {
		if vi.NonTensor != "" {
			return fmt.Errorf("importer: %w", unsupported("value type", "value %q has type %s; only tensors are supported", vi.Name, vi.NonTensor))
		}
	}
	if err := m.Graph.Validate(); err != nil {
		return fmt.Errorf("importer: invalid graph: %w", err)
	}
	return nil
}

func unknownOps(g *graph.Graph, opset int64) error {
	var bad []string
	g.Walk(func(n *graph.Node) {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			bad = append(bad, fmt.Sprintf("%q (%s.%s)", n.Label(), n.Domain, n.OpType))
			return
		}
		op := graph.Op(n.OpType)
		switch {
		case op == nil:
			bad = append(bad, fmt.Sprintf("%q (%s)", n.Label(), n.OpType))
		case op.Since > opset:
			bad = append(bad, fmt.Sprintf("%q (%s needs opset %d)", n.Label(), n.OpType, op.Since))
		}
	})
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return &UnknownOpsError{Nodes: bad}
}

// IsUnknownOps reports whether err lists unknown operators.
func IsUnknownOps(err error) bool {
	var u *UnknownOpsError
	return errors.As(err, &u)
}
