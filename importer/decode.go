package importer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/ebmrun/ebmrun/graph"
	pb "github.com/ebmrun/ebmrun/importer/internal/onnxpb"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/safefile"
)

// Limits bound what a model file may make the importer allocate. Sizes are
// checked from the declared shapes before any tensor memory is allocated.
// A zero MaxTotalBytes takes the default, lowered to the memory budget
// (internal/membudget, the command line's --max-memory) when that is less.
type Limits struct {
	MaxTensorBytes int64 // one tensor; default 4 GiB
	MaxTotalBytes  int64 // all tensors together; default 16 GiB
}

// DefaultLimits are the limits used when none are given.
var DefaultLimits = Limits{MaxTensorBytes: 4 << 30, MaxTotalBytes: 16 << 30}

// Options control decoding. The zero value uses DefaultLimits and allows no
// external data.
type Options struct {
	Limits Limits
	// Dir is the folder the model was read from. External tensor data is
	// read only from files inside it; with Dir empty, external data is
	// refused.
	Dir string
}

// Sentinel errors callers may test with errors.Is.
var (
	ErrMalformed   = errors.New("not a valid ONNX model")
	ErrTooLarge    = errors.New("tensor exceeds size limit")
	ErrUnsafePath  = errors.New("external data path is not inside the model's folder")
	ErrUnsupported = errors.New("unsupported")
)

// Load reads, parses and checks an ONNX model file. External data is read
// only from the file's own folder.
func Load(path string) (*graph.Model, error) {
	return LoadWith(path, Options{})
}

// LoadWith is Load with options; opts.Dir is set to the file's folder.
func LoadWith(path string, opts Options) (*graph.Model, error) {
	data, err := ReadFile(path, opts.Limits)
	if err != nil {
		return nil, err
	}
	opts.Dir = filepath.Dir(path)
	return Decode(data, opts)
}

// ReadFile reads a model file's bytes as Load does, for callers that need
// them as well as the model (to rewrite metadata): only a regular file, no
// larger than the limits allow with room for the protobuf framing.
func ReadFile(path string, limits Limits) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("importer: %s is a folder, not a model file", path)
	}
	lim := limits.withDefaults()
	if st.Size() > lim.MaxTotalBytes+(64<<20) {
		return nil, fmt.Errorf("importer: %s: file of %d bytes exceeds the %d-byte limit: %w", path, st.Size(), lim.MaxTotalBytes, ErrTooLarge)
	}
	// Only a regular file, read no further than its size: a FIFO or a link
	// to /dev/zero is refused before a byte is read.
	data, err := safefile.ReadFile(path, "model", lim.MaxTotalBytes+(64<<20))
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	return data, nil
}

// Decode parses and checks a model: Parse, then Check.
func Decode(data []byte, opts Options) (*graph.Model, error) {
	m, err := Parse(data, opts)
	if err != nil {
		return nil, err
	}
	if err := Check(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Parse decodes ONNX bytes into a graph.Model without judging whether ebmrun
// can run it (opsets, op types, graph structure): any well-formed file parses,
// so inspect can describe it. Limits and external-data safety are enforced.
func Parse(data []byte, opts Options) (*graph.Model, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("importer: empty file: %w", ErrMalformed)
	}
	var mp pb.ModelProto
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &mp); err != nil {
		return nil, fmt.Errorf("importer: %w: %v", ErrMalformed, cleanProtoErr(err))
	}
	if mp.Graph == nil {
		return nil, fmt.Errorf("importer: %w: no graph (is this an ONNX model file?)", ErrMalformed)
	}
	d := &decoder{opts: opts, lim: opts.Limits.withDefaults()}
	m := &graph.Model{
		IRVersion:       mp.GetIrVersion(),
		ProducerName:    mp.GetProducerName(),
		ProducerVersion: mp.GetProducerVersion(),
		Domain:          mp.GetDomain(),
		ModelVersion:    mp.GetModelVersion(),
		Doc:             mp.GetDocString(),
	}
	for _, o := range mp.OpsetImport {
		m.Opsets = append(m.Opsets, graph.OpsetImport{Domain: o.GetDomain(), Version: o.GetVersion()})
	}
	for _, p := range mp.MetadataProps {
		m.Metadata = append(m.Metadata, graph.MetadataProp{Key: p.GetKey(), Value: p.GetValue()})
	}
	g, err := d.graph(mp.Graph, 0)
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	m.Graph = g
	return m, nil
}

// ReadTensorFile reads a serialized ONNX TensorProto (.pb), as ONNX's
// conformance tests store their inputs and outputs.
func ReadTensorFile(path string) (*graph.Tensor, error) {
	data, err := safefile.ReadFile(path, "tensor file", DefaultLimits.MaxTensorBytes+(1<<20))
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	var tp pb.TensorProto
	if err := proto.Unmarshal(data, &tp); err != nil {
		return nil, fmt.Errorf("importer: %s: %w: %v", path, ErrMalformed, cleanProtoErr(err))
	}
	d := &decoder{lim: DefaultLimits}
	t, err := d.tensor(&tp)
	if err != nil {
		return nil, fmt.Errorf("importer: %s: %w", path, err)
	}
	return t, nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxTensorBytes <= 0 {
		l.MaxTensorBytes = DefaultLimits.MaxTensorBytes
	}
	if l.MaxTotalBytes <= 0 {
		// The default also stays within the process's memory budget.
		l.MaxTotalBytes = min(DefaultLimits.MaxTotalBytes, membudget.Limit())
	}
	l.MaxTensorBytes = min(l.MaxTensorBytes, l.MaxTotalBytes)
	return l
}

func cleanProtoErr(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	s = strings.TrimPrefix(s, "proto: ")
	return s
}

type decoder struct {
	opts  Options
	lim   Limits
	total int64
}

// maxGraphDepth bounds nested subgraphs (If/Loop bodies); protobuf already
// bounds message nesting, this keeps our own recursion shallow too.
const maxGraphDepth = 64

func (d *decoder) graph(gp *pb.GraphProto, depth int) (*graph.Graph, error) {
	if depth > maxGraphDepth {
		return nil, fmt.Errorf("%w: subgraphs nested more than %d deep", ErrMalformed, maxGraphDepth)
	}
	g := &graph.Graph{Name: gp.GetName(), Doc: gp.GetDocString()}
	if len(gp.SparseInitializer) > 0 {
		return nil, &UnsupportedError{Feature: "sparse initializers"}
	}
	for _, tp := range gp.Initializer {
		t, err := d.tensor(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", tp.GetName(), err)
		}
		g.Initializers = append(g.Initializers, graph.Initializer{Name: tp.GetName(), Tensor: t, Doc: tp.GetDocString()})
	}
	var err error
	if g.Inputs, err = valueInfos(gp.Input); err != nil {
		return nil, err
	}
	if g.Outputs, err = valueInfos(gp.Output); err != nil {
		return nil, err
	}
	if g.ValueInfo, err = valueInfos(gp.ValueInfo); err != nil {
		return nil, err
	}
	for i, np := range gp.Node {
		n := &graph.Node{
			Name:    np.GetName(),
			OpType:  np.GetOpType(),
			Domain:  np.GetDomain(),
			Inputs:  np.Input,
			Outputs: np.Output,
			Doc:     np.GetDocString(),
		}
		for _, ap := range np.Attribute {
			a, err := d.attribute(ap, depth)
			if err != nil {
				return nil, fmt.Errorf("node %d %q (%s): attribute %q: %w", i, n.Name, n.OpType, ap.GetName(), err)
			}
			n.Attrs = append(n.Attrs, a)
		}
		g.Nodes = append(g.Nodes, n)
	}
	return g, nil
}

func valueInfos(vs []*pb.ValueInfoProto) ([]graph.ValueInfo, error) {
	out := make([]graph.ValueInfo, 0, len(vs))
	for _, v := range vs {
		vi := graph.ValueInfo{Name: v.GetName(), Doc: v.GetDocString()}
		tp := v.GetType()
		switch {
		case tp == nil:
		case tp.GetTensorType() != nil:
			tt := tp.GetTensorType()
			vi.DType = graph.DType(tt.GetElemType())
			if tt.Shape != nil {
				vi.HasShape = true
				vi.Shape = make(graph.Shape, len(tt.Shape.Dim))
				for i, dim := range tt.Shape.Dim {
					switch dv := dim.GetValue().(type) {
					case *pb.TensorShapeProto_Dimension_DimValue:
						if dv.DimValue < 0 {
							return nil, fmt.Errorf("%w: value %q has negative dimension %d", ErrMalformed, vi.Name, dv.DimValue)
						}
						vi.Shape[i] = graph.Dim{Value: dv.DimValue}
					case *pb.TensorShapeProto_Dimension_DimParam:
						vi.Shape[i] = graph.Dim{Param: dv.DimParam}
					default:
						vi.Shape[i] = graph.Unknown
					}
				}
			}
		case tp.GetSequenceType() != nil:
			vi.NonTensor = "sequence"
		case tp.GetMapType() != nil:
			vi.NonTensor = "map"
		case tp.GetOptionalType() != nil:
			vi.NonTensor = "optional"
		case tp.GetSparseTensorType() != nil:
			vi.NonTensor = "sparse_tensor"
		default:
			vi.NonTensor = "unknown"
		}
		out = append(out, vi)
	}
	return out, nil
}

func (d *decoder) attribute(ap *pb.AttributeProto, depth int) (*graph.Attribute, error) {
	a := &graph.Attribute{
		Name:    ap.GetName(),
		Type:    graph.AttrType(ap.GetType()),
		F:       ap.GetF(),
		I:       ap.GetI(),
		S:       string(ap.GetS()),
		Floats:  ap.Floats,
		Ints:    ap.Ints,
		RefAttr: ap.GetRefAttrName(),
		Doc:     ap.GetDocString(),
	}
	for _, s := range ap.Strings {
		a.Strings = append(a.Strings, string(s))
	}
	if ap.T != nil {
		t, err := d.tensor(ap.T)
		if err != nil {
			return nil, err
		}
		a.T = t
	}
	for _, tp := range ap.Tensors {
		t, err := d.tensor(tp)
		if err != nil {
			return nil, err
		}
		a.Tensors = append(a.Tensors, t)
	}
	if ap.G != nil {
		g, err := d.graph(ap.G, depth+1)
		if err != nil {
			return nil, fmt.Errorf("subgraph: %w", err)
		}
		a.G = g
	}
	for _, gp := range ap.Graphs {
		g, err := d.graph(gp, depth+1)
		if err != nil {
			return nil, fmt.Errorf("subgraph: %w", err)
		}
		a.Graphs = append(a.Graphs, g)
	}
	if a.Type == graph.AttrUndefined {
		a.Type = guessAttrType(a)
	}
	// A type ONNX does not define is a broken file. Sparse tensors and type
	// protos are well-formed (Optional's "type" carries one) and parse; the
	// graph holds no payload for them, so Encode refuses such a model as
	// unsupported rather than write it back without them.
	if t := ap.GetType(); t < pb.AttributeProto_UNDEFINED || t > pb.AttributeProto_TYPE_PROTOS {
		return nil, fmt.Errorf("%w: attribute %q has unknown type %d", ErrMalformed, a.Name, int32(t))
	}
	// A tensor or graph attribute without its payload would reach the
	// backends (and Encode) as a nil value.
	switch {
	case a.Type == graph.AttrTensor && a.T == nil:
		return nil, fmt.Errorf("%w: attribute %q is of type TENSOR but holds no tensor", ErrMalformed, a.Name)
	case a.Type == graph.AttrGraph && a.G == nil:
		return nil, fmt.Errorf("%w: attribute %q is of type GRAPH but holds no graph", ErrMalformed, a.Name)
	}
	return a, nil
}

// guessAttrType fills in the type of attributes written by old exporters
// that left it out (IR version 1 allowed that).
func guessAttrType(a *graph.Attribute) graph.AttrType {
	switch {
	case a.G != nil:
		return graph.AttrGraph
	case a.T != nil:
		return graph.AttrTensor
	case len(a.Floats) > 0:
		return graph.AttrFloats
	case len(a.Ints) > 0:
		return graph.AttrInts
	case len(a.Strings) > 0:
		return graph.AttrStrings
	case a.S != "":
		return graph.AttrString
	case a.F != 0:
		return graph.AttrFloat
	}
	return graph.AttrInt
}

// tensor converts a TensorProto, checking the declared size against the
// limits before allocating anything and the data against the shape.
func (d *decoder) tensor(tp *pb.TensorProto) (*graph.Tensor, error) {
	dt := graph.DType(tp.GetDataType())
	if !dt.Known() {
		return nil, fmt.Errorf("%w: unknown element type %d", ErrMalformed, tp.GetDataType())
	}
	if tp.Segment != nil {
		return nil, &UnsupportedError{Feature: "segmented tensors"}
	}
	shape := append([]int64{}, tp.Dims...)
	n, err := graph.CheckedNumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	size := declaredBytes(dt, n)
	if size < 0 || size > d.lim.MaxTensorBytes {
		return nil, fmt.Errorf("%w: shape %v of %s declares %s, limit %s", ErrTooLarge, shape, dt, human(size), human(d.lim.MaxTensorBytes))
	}
	d.total += size
	if d.total > d.lim.MaxTotalBytes {
		return nil, fmt.Errorf("%w: tensors total more than %s", ErrTooLarge, human(d.lim.MaxTotalBytes))
	}
	t := &graph.Tensor{DType: dt, Shape: shape}
	raw := tp.RawData
	if tp.GetDataLocation() == pb.TensorProto_EXTERNAL {
		if raw, err = d.external(tp, size); err != nil {
			return nil, err
		}
	}
	if raw != nil || tp.GetDataLocation() == pb.TensorProto_EXTERNAL {
		if dt == graph.String {
			return nil, fmt.Errorf("%w: string tensor with raw data", ErrMalformed)
		}
		if int64(len(raw)) != size {
			return nil, fmt.Errorf("%w: shape %v of %s needs %d bytes, data has %d", ErrMalformed, shape, dt, size, len(raw))
		}
		fromRaw(t, raw)
		return t, nil
	}
	if err := fromFields(t, tp, n); err != nil {
		return nil, err
	}
	return t, t.Check()
}

// declaredBytes is the byte size of n elements; -1 on overflow.
func declaredBytes(dt graph.DType, n int64) int64 {
	s := int64(dt.ByteSize())
	switch {
	case dt == graph.String:
		return 0 // strings are counted as they are read
	case s == 0:
		return (n + 1) / 2 // 4-bit types
	case n > math.MaxInt64/s:
		return -1
	}
	return n * s
}

func human(b int64) string {
	switch {
	case b < 0:
		return "more than 8 EiB"
	case b >= 1<<30:
		return strconv.FormatFloat(float64(b)/(1<<30), 'g', 4, 64) + " GiB"
	case b >= 1<<20:
		return strconv.FormatFloat(float64(b)/(1<<20), 'g', 4, 64) + " MiB"
	}
	return strconv.FormatInt(b, 10) + " bytes"
}

func fromRaw(t *graph.Tensor, raw []byte) {
	switch t.DType {
	case graph.Float32:
		t.F32 = make([]float32, len(raw)/4)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case graph.Int64:
		t.I64 = make([]int64, len(raw)/8)
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case graph.Bool:
		t.B = make([]bool, len(raw))
		for i, b := range raw {
			t.B[i] = b != 0
		}
	default:
		t.Raw = append([]byte{}, raw...)
	}
}

// fromFields reads the typed repeated fields ONNX uses when raw_data is absent.
func fromFields(t *graph.Tensor, tp *pb.TensorProto, n int64) error {
	count := func(got int) error {
		if int64(got) != n {
			return fmt.Errorf("%w: shape %v needs %d elements, data has %d", ErrMalformed, t.Shape, n, got)
		}
		return nil
	}
	switch t.DType {
	case graph.Float32:
		t.F32 = append([]float32{}, tp.FloatData...)
		return count(len(tp.FloatData))
	case graph.Int64:
		t.I64 = append([]int64{}, tp.Int64Data...)
		return count(len(tp.Int64Data))
	case graph.Bool:
		t.B = make([]bool, len(tp.Int32Data))
		for i, v := range tp.Int32Data {
			t.B[i] = v != 0
		}
		return count(len(tp.Int32Data))
	case graph.String:
		t.Str = tp.StringData
		return count(len(tp.StringData))
	case graph.Float64:
		t.Raw = make([]byte, 0, 8*len(tp.DoubleData))
		for _, v := range tp.DoubleData {
			t.Raw = binary.LittleEndian.AppendUint64(t.Raw, math.Float64bits(v))
		}
		return count(len(tp.DoubleData))
	case graph.Complex128:
		t.Raw = make([]byte, 0, 8*len(tp.DoubleData))
		for _, v := range tp.DoubleData {
			t.Raw = binary.LittleEndian.AppendUint64(t.Raw, math.Float64bits(v))
		}
		return count(len(tp.DoubleData) / 2)
	case graph.Complex64:
		t.Raw = make([]byte, 0, 4*len(tp.FloatData))
		for _, v := range tp.FloatData {
			t.Raw = binary.LittleEndian.AppendUint32(t.Raw, math.Float32bits(v))
		}
		return count(len(tp.FloatData) / 2)
	case graph.Uint32, graph.Uint64:
		size := t.DType.ByteSize()
		t.Raw = make([]byte, 0, size*len(tp.Uint64Data))
		for _, v := range tp.Uint64Data {
			if size == 4 {
				t.Raw = binary.LittleEndian.AppendUint32(t.Raw, uint32(v))
			} else {
				t.Raw = binary.LittleEndian.AppendUint64(t.Raw, v)
			}
		}
		return count(len(tp.Uint64Data))
	}
	// int32, int16, int8, uint8, uint16, float16, bfloat16, float8 and
	// 4-bit types travel in int32_data, one element (or two nibbles) each.
	size := t.DType.ByteSize()
	if size == 0 {
		t.Raw = make([]byte, len(tp.Int32Data))
		for i, v := range tp.Int32Data {
			t.Raw[i] = byte(v)
		}
		if int64(len(t.Raw)) != (n+1)/2 {
			return fmt.Errorf("%w: shape %v needs %d packed bytes, data has %d", ErrMalformed, t.Shape, (n+1)/2, len(t.Raw))
		}
		return nil
	}
	t.Raw = make([]byte, 0, size*len(tp.Int32Data))
	for _, v := range tp.Int32Data {
		switch size {
		case 1:
			t.Raw = append(t.Raw, byte(v))
		case 2:
			t.Raw = binary.LittleEndian.AppendUint16(t.Raw, uint16(v))
		default:
			t.Raw = binary.LittleEndian.AppendUint32(t.Raw, uint32(v))
		}
	}
	return count(len(tp.Int32Data))
}

// external reads a tensor's bytes from a file beside the model. The path
// must be relative and stay inside the model's folder: os.Root refuses "..",
// absolute paths and symbolic links that lead outside.
func (d *decoder) external(tp *pb.TensorProto, size int64) ([]byte, error) {
	var loc string
	var offset, length int64 = 0, -1
	for _, kv := range tp.ExternalData {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: external data %s %q: %v", ErrMalformed, kv.GetKey(), kv.GetValue(), err)
		}
	}
	if loc == "" {
		return nil, fmt.Errorf("%w: external data without a location", ErrMalformed)
	}
	if d.opts.Dir == "" {
		return nil, fmt.Errorf("%w: external data %q, but the model was not read from a file", ErrUnsafePath, loc)
	}
	if filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, `\`) {
		return nil, fmt.Errorf("%w: %q is an absolute path", ErrUnsafePath, loc)
	}
	if !filepath.IsLocal(loc) {
		return nil, fmt.Errorf("%w: %q leaves the model's folder", ErrUnsafePath, loc)
	}
	if offset < 0 {
		return nil, fmt.Errorf("%w: external data %q has negative offset %d", ErrMalformed, loc, offset)
	}
	if length < 0 {
		length = size
	}
	if length != size {
		return nil, fmt.Errorf("%w: external data %q has length %d, shape needs %d bytes", ErrMalformed, loc, length, size)
	}
	root, err := os.OpenRoot(d.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	defer root.Close()
	// The type first: opening a FIFO would wait for a writer.
	if st, err := root.Stat(loc); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: external data %q is not a regular file", ErrMalformed, loc)
	}
	f, err := root.OpenFile(loc, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q: %v", ErrUnsafePath, loc, pe.Err)
		}
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: external data %q is not a regular file", ErrMalformed, loc)
	}
	if offset > st.Size() || length > st.Size()-offset {
		return nil, fmt.Errorf("%w: external data %q: offset %d + length %d is beyond the file's %d bytes", ErrMalformed, loc, offset, length, st.Size())
	}
	if err := membudget.Check(fmt.Sprintf("external data %q", loc), length); err != nil {
		return nil, err
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	return buf, nil
}
