package graph

import (
	"fmt"
	"math"
)

// DType is a tensor element type. The values are ONNX's TensorProto.DataType
// numbers, so a DType read from a file needs no translation table.
type DType int32

// Element types. Float32, Int64 and Bool are the types the runtime computes
// with; the others are decoded (so any ONNX file can be inspected and
// round-tripped) and refused by backends with a clear error.
const (
	Undefined  DType = 0
	Float32    DType = 1
	Uint8      DType = 2
	Int8       DType = 3
	Uint16     DType = 4
	Int16      DType = 5
	Int32      DType = 6
	Int64      DType = 7
	String     DType = 8
	Bool       DType = 9
	Float16    DType = 10
	Float64    DType = 11
	Uint32     DType = 12
	Uint64     DType = 13
	Complex64  DType = 14
	Complex128 DType = 15
	BFloat16   DType = 16
)

var dtypeNames = map[DType]string{
	Undefined: "undefined", Float32: "float32", Uint8: "uint8", Int8: "int8",
	Uint16: "uint16", Int16: "int16", Int32: "int32", Int64: "int64",
	String: "string", Bool: "bool", Float16: "float16", Float64: "float64",
	Uint32: "uint32", Uint64: "uint64", Complex64: "complex64",
	Complex128: "complex128", BFloat16: "bfloat16",
	17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz",
	21: "uint4", 22: "int4", 23: "float4e2m1",
}

func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Known reports whether d is an ONNX element type this package can hold.
func (d DType) Known() bool { _, ok := dtypeNames[d]; return ok && d != Undefined }

// Computable reports whether the runtime computes with d.
func (d DType) Computable() bool { return d == Float32 || d == Int64 || d == Bool }

// ByteSize is the size of one element in bytes; 0 for strings and sub-byte
// types, whose size is not a whole number of bytes per element.
func (d DType) ByteSize() int {
	switch d {
	case Uint8, Int8, Bool, 17, 18, 19, 20:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Int64, Float64, Uint64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// Tensor is a dense, row-major tensor. Exactly one of the data slices is used,
// chosen by DType: F32 for Float32, I64 for Int64, B for Bool, Str for String,
// and Raw (little-endian bytes, as in ONNX raw_data) for every other type.
type Tensor struct {
	DType DType
	Shape []int64
	F32   []float32
	I64   []int64
	B     []bool
	Str   [][]byte
	Raw   []byte
}

// NumElements is the product of the shape; 1 for a scalar.
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// CheckedNumElements is NumElements with overflow and negative-dimension
// checks, for shapes that come from untrusted files.
func CheckedNumElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v has more elements than fit in int64", shape)
		}
		n *= d
	}
	return n, nil
}

// Len is the number of elements the tensor holds.
func (t *Tensor) Len() int64 { return NumElements(t.Shape) }

// NewFloat32 makes a float32 tensor; data is used, not copied. With nil data
// it allocates zeros.
func NewFloat32(shape []int64, data []float32) *Tensor {
	if data == nil {
		data = make([]float32, NumElements(shape))
	}
	return &Tensor{DType: Float32, Shape: append([]int64(nil), shape...), F32: data}
}

// NewInt64 makes an int64 tensor; data is used, not copied.
func NewInt64(shape []int64, data []int64) *Tensor {
	if data == nil {
		data = make([]int64, NumElements(shape))
	}
	return &Tensor{DType: Int64, Shape: append([]int64(nil), shape...), I64: data}
}

// NewBool makes a bool tensor; data is used, not copied.
func NewBool(shape []int64, data []bool) *Tensor {
	if data == nil {
		data = make([]bool, NumElements(shape))
	}
	return &Tensor{DType: Bool, Shape: append([]int64(nil), shape...), B: data}
}

// ScalarFloat32 is a rank-0 float32 tensor.
func ScalarFloat32(v float32) *Tensor { return NewFloat32(nil, []float32{v}) }

// ScalarInt64 is a rank-0 int64 tensor.
func ScalarInt64(v int64) *Tensor { return NewInt64(nil, []int64{v}) }

// Clone is a deep copy.
func (t *Tensor) Clone() *Tensor {
	if t == nil {
		return nil
	}
	c := &Tensor{DType: t.DType, Shape: append([]int64(nil), t.Shape...)}
	if t.F32 != nil {
		c.F32 = append([]float32(nil), t.F32...)
	}
	if t.I64 != nil {
		c.I64 = append([]int64(nil), t.I64...)
	}
	if t.B != nil {
		c.B = append([]bool(nil), t.B...)
	}
	if t.Raw != nil {
		c.Raw = append([]byte(nil), t.Raw...)
	}
	for _, s := range t.Str {
		c.Str = append(c.Str, append([]byte(nil), s...))
	}
	return c
}

// DataLen is the number of elements in the tensor's data slice, which must
// equal Len for a well-formed tensor.
func (t *Tensor) DataLen() int64 {
	switch t.DType {
	case Float32:
		return int64(len(t.F32))
	case Int64:
		return int64(len(t.I64))
	case Bool:
		return int64(len(t.B))
	case String:
		return int64(len(t.Str))
	}
	if s := t.DType.ByteSize(); s > 0 {
		return int64(len(t.Raw) / s)
	}
	// Sub-byte types pack two elements a byte.
	return int64(len(t.Raw)) * 2
}

// Check reports whether the data agrees with the shape and dtype.
func (t *Tensor) Check() error {
	if !t.DType.Known() {
		return fmt.Errorf("unknown element type %d", int32(t.DType))
	}
	n, err := CheckedNumElements(t.Shape)
	if err != nil {
		return err
	}
	got := t.DataLen()
	if s := t.DType.ByteSize(); s > 0 && !t.DType.Computable() && t.DType != String && len(t.Raw)%s != 0 {
		return fmt.Errorf("%s data of %d bytes is not a whole number of elements", t.DType, len(t.Raw))
	}
	if t.DType.ByteSize() == 0 && t.DType != String {
		if got != n && got != n+1 { // odd counts are padded to a whole byte
			return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, n, got)
		}
		return nil
	}
	if got != n {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, n, got)
	}
	return nil
}

// AsInt64s returns the values of an integer tensor (Int64, or Int32 and
// smaller stored raw) as int64, for ops whose shape arguments come from
// tensors.
func (t *Tensor) AsInt64s() ([]int64, error) {
	switch t.DType {
	case Int64:
		return t.I64, nil
	case Int32:
		out := make([]int64, len(t.Raw)/4)
		for i := range out {
			b := t.Raw[4*i:]
			out[i] = int64(int32(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24))
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected an integer tensor, got %s", t.DType)
}
