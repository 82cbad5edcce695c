package importer

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/ebmrun/ebmrun/graph"
	pb "github.com/ebmrun/ebmrun/importer/internal/onnxpb"
	"github.com/ebmrun/ebmrun/tensorio"
)

// Encode serializes a model to ONNX bytes. Tensor data is written inline as
// raw_data, so the result never depends on files beside it.
func Encode(m *graph.Model) ([]byte, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("importer: encode: model has no graph")
	}
	mp := &pb.ModelProto{
		IrVersion:       proto.Int64(m.IRVersion),
		ProducerName:    proto.String(m.ProducerName),
		ProducerVersion: proto.String(m.ProducerVersion),
		Domain:          proto.String(m.Domain),
		ModelVersion:    proto.Int64(m.ModelVersion),
		DocString:       proto.String(m.Doc),
	}
	for _, o := range m.Opsets {
		mp.OpsetImport = append(mp.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String(o.Domain), Version: proto.Int64(o.Version)})
	}
	for _, p := range m.Metadata {
		mp.MetadataProps = append(mp.MetadataProps, &pb.StringStringEntryProto{Key: proto.String(p.Key), Value: proto.String(p.Value)})
	}
	g, err := encodeGraph(m.Graph)
	if err != nil {
		return nil, fmt.Errorf("importer: encode: %w", err)
	}
	mp.Graph = g
	return proto.MarshalOptions{Deterministic: true}.Marshal(mp)
}

// Save encodes a model and writes it atomically to path.
func Save(path string, m *graph.Model) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	return tensorio.WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

func encodeGraph(g *graph.Graph) (*pb.GraphProto, error) {
	gp := &pb.GraphProto{Name: proto.String(g.Name)}
	if g.Doc != "" {
		gp.DocString = proto.String(g.Doc)
	}
	for _, in := range g.Initializers {
		tp, err := encodeTensor(in.Tensor)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", in.Name, err)
		}
		tp.Name = proto.String(in.Name)
		if in.Doc != "" {
			tp.DocString = proto.String(in.Doc)
		}
		gp.Initializer = append(gp.Initializer, tp)
	}
	gp.Input = encodeValueInfos(g.Inputs)
	gp.Output = encodeValueInfos(g.Outputs)
	gp.ValueInfo = encodeValueInfos(g.ValueInfo)
	for _, n := range g.Nodes {
		np := &pb.NodeProto{
			Input:  n.Inputs,
			Output: n.Outputs,
			OpType: proto.String(n.OpType),
		}
		if n.Name != "" {
			np.Name = proto.String(n.Name)
		}
		if n.Domain != "" {
			np.Domain = proto.String(n.Domain)
		}
		if n.Doc != "" {
			np.DocString = proto.String(n.Doc)
		}
		for _, a := range n.Attrs {
			ap, err := encodeAttr(a)
			if err != nil {
				return nil, fmt.Errorf("node %q attribute %q: %w", n.Label(), a.Name, err)
			}
			np.Attribute = append(np.Attribute, ap)
		}
		gp.Node = append(gp.Node, np)
	}
	return gp, nil
}

func encodeValueInfos(vs []graph.ValueInfo) []*pb.ValueInfoProto {
	out := make([]*pb.ValueInfoProto, 0, len(vs))
	for _, v := range vs {
		vp := &pb.ValueInfoProto{Name: proto.String(v.Name)}
		if v.Doc != "" {
			vp.DocString = proto.String(v.Doc)
		}
		if v.NonTensor == "" && (v.DType != graph.Undefined || v.HasShape) {
			tt := &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(v.DType))}
			if v.HasShape {
				tt.Shape = &pb.TensorShapeProto{Dim: make([]*pb.TensorShapeProto_Dimension, len(v.Shape))}
				for i, d := range v.Shape {
					dim := &pb.TensorShapeProto_Dimension{}
					switch {
					case d.Param != "":
						dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
					case d.Value >= 0:
						dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
					}
					tt.Shape.Dim[i] = dim
				}
			}
			vp.Type = &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: tt}}
		}
		out = append(out, vp)
	}
	return out
}

func encodeAttr(a *graph.Attribute) (*pb.AttributeProto, error) {
	t := pb.AttributeProto_AttributeType(a.Type)
	ap := &pb.AttributeProto{Name: proto.String(a.Name), Type: &t}
	if a.RefAttr != "" {
		ap.RefAttrName = proto.String(a.RefAttr)
	}
	if a.Doc != "" {
		ap.DocString = proto.String(a.Doc)
	}
	switch a.Type {
	case graph.AttrFloat:
		ap.F = proto.Float32(a.F)
	case graph.AttrInt:
		ap.I = proto.Int64(a.I)
	case graph.AttrString:
		ap.S = []byte(a.S)
	case graph.AttrTensor:
		tp, err := encodeTensor(a.T)
		if err != nil {
			return nil, err
		}
		ap.T = tp
	case graph.AttrGraph:
		gp, err := encodeGraph(a.G)
		if err != nil {
			return nil, err
		}
		ap.G = gp
	case graph.AttrFloats:
		ap.Floats = a.Floats
	case graph.AttrInts:
		ap.Ints = a.Ints
	case graph.AttrStrings:
		for _, s := range a.Strings {
			ap.Strings = append(ap.Strings, []byte(s))
		}
	case graph.AttrTensors:
		for _, t := range a.Tensors {
			tp, err := encodeTensor(t)
			if err != nil {
				return nil, err
			}
			ap.Tensors = append(ap.Tensors, tp)
		}
	case graph.AttrGraphs:
		for _, g := range a.Graphs {
			gp, err := encodeGraph(g)
			if err != nil {
				return nil, err
			}
			ap.Graphs = append(ap.Graphs, gp)
		}
	default:
		return nil, unsupported("attribute type", "attribute type %s is not supported", a.Type)
	}
	return ap, nil
}

func encodeTensor(t *graph.Tensor) (*pb.TensorProto, error) {
	if t == nil {
		return nil, fmt.Errorf("nil tensor")
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	tp := &pb.TensorProto{DataType: proto.Int32(int32(t.DType)), Dims: append([]int64{}, t.Shape...)}
	switch t.DType {
	case graph.Float32:
		tp.RawData = make([]byte, 4*len(t.F32))
		for i, v := range t.F32 {
			binary.LittleEndian.PutUint32(tp.RawData[4*i:], math.Float32bits(v))
		}
	case graph.Int64:
		tp.RawData = make([]byte, 8*len(t.I64))
		for i, v := range t.I64 {
			binary.LittleEndian.PutUint64(tp.RawData[8*i:], uint64(v))
		}
	case graph.Bool:
		tp.RawData = make([]byte, len(t.B))
		for i, v := range t.B {
			if v {
				tp.RawData[i] = 1
			}
		}
	case graph.String:
		tp.StringData = t.Str
	default:
		tp.RawData = append([]byte{}, t.Raw...)
	}
	if tp.RawData == nil && t.DType != graph.String {
		tp.RawData = []byte{}
	}
	return tp, nil
}

// WriteTensorFile writes a TensorProto file, the format of ONNX's
// conformance test data.
func WriteTensorFile(path, name string, t *graph.Tensor) error {
	tp, err := encodeTensor(t)
	if err != nil {
		return err
	}
	tp.Name = proto.String(name)
	b, err := proto.Marshal(tp)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
