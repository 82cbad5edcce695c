package importer

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/ebmrun/ebmrun/importer/internal/onnxpb"
)

// TestAttributeWithoutPayload: a TENSOR or GRAPH attribute that holds no
// tensor or graph is a malformed file, refused at Decode. FuzzDecode found a
// Constant whose "value" was such an attribute: it decoded, and the nil
// tensor reached Encode (and would reach the backends).
func TestAttributeWithoutPayload(t *testing.T) {
	for _, c := range []struct {
		op   string
		attr *pb.AttributeProto
		want string
	}{
		{"Constant", &pb.AttributeProto{Name: proto.String("value"), Type: pb.AttributeProto_TENSOR.Enum()}, "holds no tensor"},
		{"If", &pb.AttributeProto{Name: proto.String("then_branch"), Type: pb.AttributeProto_GRAPH.Enum()}, "holds no graph"},
	} {
		m := &pb.ModelProto{
			IrVersion:   proto.Int64(8),
			OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
			Graph: &pb.GraphProto{
				Name:   proto.String("g"),
				Node:   []*pb.NodeProto{{OpType: proto.String(c.op), Output: []string{"y"}, Attribute: []*pb.AttributeProto{c.attr}}},
				Output: []*pb.ValueInfoProto{{Name: proto.String("y")}},
			},
		}
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(data, Options{})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), *c.attr.Name) {
			t.Errorf("%s with an empty %s attribute: %v, want ErrMalformed saying it %s", c.op, *c.attr.Name, err, c.want)
		}
	}
}
