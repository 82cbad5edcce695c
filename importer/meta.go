package importer

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/ebmrun/ebmrun/importer/internal/onnxpb"
)

// SetMetadata returns the ONNX file data with its ebmrun.* metadata replaced
// by kv (keys outside ebmrun.* are kept, in their order). Only the metadata
// changes: the graph, its weights and every field ebmrun does not read are
// carried over as they were, which re-encoding a decoded model would not
// guarantee. Keys of kv are written sorted.
func SetMetadata(data []byte, kv map[string]string) ([]byte, error) {
	var mp pb.ModelProto
	// Unknown fields are kept, so a newer ONNX's fields survive the rewrite.
	if err := proto.Unmarshal(data, &mp); err != nil {
		return nil, fmt.Errorf("importer: %w: %v", ErrMalformed, cleanProtoErr(err))
	}
	if mp.Graph == nil {
		return nil, fmt.Errorf("importer: %w: no graph (is this an ONNX model file?)", ErrMalformed)
	}
	var props []*pb.StringStringEntryProto
	for _, p := range mp.MetadataProps {
		if !strings.HasPrefix(p.GetKey(), "ebmrun.") {
			props = append(props, p)
		}
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		if !strings.HasPrefix(k, "ebmrun.") {
			return nil, fmt.Errorf("importer: metadata key %q: only ebmrun.* keys are written", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		props = append(props, &pb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(kv[k])})
	}
	mp.MetadataProps = props
	return proto.MarshalOptions{Deterministic: true}.Marshal(&mp)
}
