package main

import (
	"fmt"
	"math"

	"github.com/ebmrun/ebmrun/graph"
)

// The fixture conditions on σ inside the graph: Log, Unsqueeze (axes as an
// input, opset ≥ 13), Concat before the MLP and Unsqueeze, Div after it.
// onnx-go v0.5.0 reads Unsqueeze's axes only from the attribute of opset < 13,
// so it cannot run the fixture. The "h" variant is the closest honest
// equivalent it can run: the fixture's own Gemm/Sigmoid/Mul layers with the
// fixture's weights and Gemm attributes, fed h = x‖log σ [N,3], with the
// division by σ done in Go. Every backend runs it the same way (see
// prepareH and finishH), so ratios on it compare like with like.

// variantH builds the h variant from the fixture. It walks the fixture's
// nodes in order and copies every Gemm (weights, bias and attributes as they
// are) and every SiLU (Sigmoid then Mul) that follows a Gemm, and fails if the
// fixture is not the shape of network this benchmark expects, rather than
// benchmark something else.
func variantH(fix *graph.Model) (*graph.Model, error) {
	g := fix.Graph
	init := g.InitializerMap()
	b := graph.NewBuilder("ncsn_mlp_h")
	n := graph.Dim{Param: "N"}
	h := b.Input("h", graph.Float32, graph.Shape{n, {Value: 3}})
	// produced maps a fixture value to the variant's value of the same meaning.
	produced := map[string]string{}
	var gemms, silus int
	for _, nd := range g.Nodes {
		switch nd.OpType {
		case "Gemm":
			if len(nd.Inputs) != 3 || init[nd.Inputs[1]] == nil || init[nd.Inputs[2]] == nil {
				return nil, fmt.Errorf("variant: Gemm %q: want input, weight and bias initializers", nd.Name)
			}
			in := h
			if gemms > 0 {
				v, ok := produced[nd.Inputs[0]]
				if !ok {
					return nil, fmt.Errorf("variant: Gemm %q does not follow the previous layer", nd.Name)
				}
				in = v
			}
			w := b.Const(nd.Inputs[1], init[nd.Inputs[1]].Clone())
			bias := b.Const(nd.Inputs[2], init[nd.Inputs[2]].Clone())
			var attrs []*graph.Attribute
			for _, a := range nd.Attrs {
				c := *a
				attrs = append(attrs, &c)
			}
			produced[nd.Outputs[0]] = b.Op1("Gemm", []string{in, w, bias}, attrs...)
			gemms++
		case "Sigmoid":
			if v, ok := produced[nd.Inputs[0]]; ok {
				produced[nd.Outputs[0]] = b.Op("Sigmoid", v)[0]
			}
		case "Mul":
			a, okA := produced[nd.Inputs[0]]
			c, okC := produced[nd.Inputs[1]]
			if okA && okC {
				produced[nd.Outputs[0]] = b.Op("Mul", a, c)[0]
				silus++
			}
		}
	}
	if gemms != 4 || silus != 3 {
		return nil, fmt.Errorf("variant: fixture has %d Gemm and %d SiLU layers; this benchmark expects the 4-layer NCSN MLP (4 Gemm, 3 SiLU)", gemms, silus)
	}
	// Name the last Gemm's output "out" instead of adding an Identity node,
	// so the variant has no op the fixture lacks.
	vg := b.Graph()
	last := vg.Nodes[len(vg.Nodes)-1]
	if last.OpType != "Gemm" {
		return nil, fmt.Errorf("variant: fixture's MLP does not end in a Gemm")
	}
	last.Outputs[0] = "out"
	vg.Outputs = append(vg.Outputs, graph.ValueInfo{Name: "out", DType: graph.Float32, Shape: graph.Shape{n, {Value: 2}}, HasShape: true})
	return &graph.Model{
		IRVersion:    fix.IRVersion,
		Opsets:       append([]graph.OpsetImport(nil), fix.Opsets...),
		ProducerName: "ebmrun bench/runtime",
		Doc:          "NCSN MLP of testdata/models/ncsn_mlp with sigma-conditioning outside: input h = x||log(sigma), score = out/sigma",
		Graph:        vg,
	}, nil
}

// prepareH writes h = x‖log σ, row by row: the Go-side work in front of the
// variant, the same for every backend.
func prepareH(h, x, sigma []float32) {
	for i, s := range sigma {
		h[3*i] = x[2*i]
		h[3*i+1] = x[2*i+1]
		h[3*i+2] = float32(math.Log(float64(s)))
	}
}

// finishH writes score = out/σ: the Go-side work behind the variant.
func finishH(score, out, sigma []float32) {
	for i, s := range sigma {
		score[2*i] = out[2*i] / s
		score[2*i+1] = out[2*i+1] / s
	}
}
