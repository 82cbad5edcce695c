package native

import (
	"unsafe"

	"github.com/ebmrun/ebmrun/graph"
)

// elem is an element type the runtime computes with.
type elem interface{ float32 | int64 | bool }

// number is an element type with arithmetic.
type number interface{ float32 | int64 }

func dtypeOf[T elem]() graph.DType {
	var z T
	switch any(z).(type) {
	case float32:
		return graph.Float32
	case int64:
		return graph.Int64
	}
	return graph.Bool
}

// data returns the tensor's elements as []T; T must match the tensor's dtype.
func data[T elem](t *graph.Tensor) []T {
	switch dtypeOf[T]() {
	case graph.Float32:
		return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(t.F32))), len(t.F32))
	case graph.Int64:
		return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(t.I64))), len(t.I64))
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(t.B))), len(t.B))
}

// grow gives t room for n elements of its dtype, reusing buf (returned
// possibly reallocated) as the backing store.
func growSlice[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/8)
	}
	return s[:n]
}

// buffer is a block of session memory that values with disjoint lifetimes
// share; each dtype has its own slice.
type buffer struct {
	f32 []float32
	i64 []int64
	b   []bool
}

// growth is how many bytes attaching n elements of dt would add to the
// buffer (growSlice's capacity rule); 0 when it fits.
func (b *buffer) growth(dt graph.DType, n int) int64 {
	var c, size int
	switch dt {
	case graph.Float32:
		c, size = cap(b.f32), 4
	case graph.Int64:
		c, size = cap(b.i64), 8
	case graph.Bool:
		c, size = cap(b.b), 1
	default:
		return 0
	}
	if c >= n {
		return 0
	}
	return int64(n+n/8-c) * int64(size)
}

// attach points t's data at the buffer, growing it as needed.
func (b *buffer) attach(t *graph.Tensor, n int) {
	switch t.DType {
	case graph.Float32:
		b.f32 = growSlice(b.f32, n)
		t.F32 = b.f32
	case graph.Int64:
		b.i64 = growSlice(b.i64, n)
		t.I64 = b.i64
	case graph.Bool:
		b.b = growSlice(b.b, n)
		t.B = b.b
	}
}

// attachOwn sizes a caller-owned output's data slice in place.
func attachOwn(t *graph.Tensor, n int) {
	switch t.DType {
	case graph.Float32:
		t.F32 = growSlice(t.F32, n)
	case graph.Int64:
		t.I64 = growSlice(t.I64, n)
	case graph.Bool:
		t.B = growSlice(t.B, n)
	}
}

// copyTensor copies src into dst's own memory.
func copyTensor(dst, src *graph.Tensor) {
	setShape(dst, src.DType, src.Shape)
	n := int(prod(src.Shape))
	attachOwn(dst, n)
	switch src.DType {
	case graph.Float32:
		copy(dst.F32, src.F32)
	case graph.Int64:
		copy(dst.I64, src.I64)
	case graph.Bool:
		copy(dst.B, src.B)
	}
}
