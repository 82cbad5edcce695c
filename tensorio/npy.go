// Package tensorio reads and writes graph tensors as NumPy .npy files, the
// format fixtures, samples and data sets use. Reading accepts little-endian
// float32, float64 (converted to float32), int64, int32 (converted to int64)
// and bool arrays in C order; writing produces float32, int64 or bool arrays
// that numpy.load reads as they are.
package tensorio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"codeberg.org/sbinet/npyio"

	"github.com/ebmrun/ebmrun/graph"
)

// ReadNpyFile reads a .npy file into a tensor.
func ReadNpyFile(path string) (*graph.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ReadNpy(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("tensorio: %s: %w", path, err)
	}
	return t, nil
}

// ReadNpy reads one .npy array from r.
func ReadNpy(r io.Reader) (t *graph.Tensor, err error) {
	defer func() {
		// npyio reports some malformed headers by panicking.
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("malformed npy data: %v", p)
		}
	}()
	nr, err := npyio.NewReader(r)
	if err != nil {
		return nil, err
	}
	d := nr.Header.Descr
	if d.Fortran {
		return nil, errors.New("fortran-ordered arrays are not supported; save with numpy.ascontiguousarray")
	}
	shape := make([]int64, len(d.Shape))
	for i, s := range d.Shape {
		shape[i] = int64(s)
	}
	n, err := graph.CheckedNumElements(shape)
	if err != nil {
		return nil, err
	}
	if n > 1<<31 {
		return nil, fmt.Errorf("array of %d elements is too large", n)
	}
	switch strings.Trim(d.Type, "'\"") {
	case "<f4", "f4":
		var v []float32
		if err := nr.Read(&v); err != nil {
			return nil, err
		}
		return graph.NewFloat32(shape, v), check(shape, len(v))
	case "<f8", "f8":
		var v []float64
		if err := nr.Read(&v); err != nil {
			return nil, err
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return graph.NewFloat32(shape, out), check(shape, len(v))
	case "<i8", "i8":
		var v []int64
		if err := nr.Read(&v); err != nil {
			return nil, err
		}
		return graph.NewInt64(shape, v), check(shape, len(v))
	case "<i4", "i4":
		var v []int32
		if err := nr.Read(&v); err != nil {
			return nil, err
		}
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return graph.NewInt64(shape, out), check(shape, len(v))
	case "|b1", "b1":
		var v []bool
		if err := nr.Read(&v); err != nil {
			return nil, err
		}
		return graph.NewBool(shape, v), check(shape, len(v))
	}
	return nil, fmt.Errorf("unsupported npy dtype %q (want float32, float64, int64, int32 or bool)", d.Type)
}

func check(shape []int64, got int) error {
	if n := graph.NumElements(shape); n != int64(got) {
		return fmt.Errorf("header shape %v needs %d elements, file has %d", shape, n, got)
	}
	return nil
}

func npyDescr(dt graph.DType) (string, error) {
	switch dt {
	case graph.Float32:
		return "<f4", nil
	case graph.Int64:
		return "<i8", nil
	case graph.Bool:
		return "|b1", nil
	}
	return "", fmt.Errorf("tensorio: cannot write %s tensors", dt)
}

// NpyHeader is the .npy v1.0 header for an array of the given dtype and shape.
func NpyHeader(dt graph.DType, shape []int64) ([]byte, error) {
	descr, err := npyDescr(dt)
	if err != nil {
		return nil, err
	}
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = fmt.Sprint(s)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, sh)
	// Magic (6) + version (2) + header length (2) + dict + padding + '\n'
	// is a multiple of 64, as numpy writes it.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	if len(dict) > math.MaxUint16 {
		return nil, errors.New("tensorio: npy header too long")
	}
	h := make([]byte, 0, 10+len(dict))
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)))
	return append(h, dict...), nil
}

// NpyHeaderOfSize is NpyHeader padded with spaces to exactly size bytes, so
// a header written before the data can be rewritten in place with another
// shape (fewer rows of a run cut short). size must be a multiple of 64 and
// at least NpyHeader's own length.
func NpyHeaderOfSize(dt graph.DType, shape []int64, size int) ([]byte, error) {
	h, err := NpyHeader(dt, shape)
	if err != nil {
		return nil, err
	}
	if size%64 != 0 || size < len(h) || size-10 > math.MaxUint16 {
		return nil, fmt.Errorf("tensorio: npy header of %d bytes does not fit in %d", len(h), size)
	}
	out := append(h[:len(h)-1:len(h)-1], strings.Repeat(" ", size-len(h))...)
	out = append(out, '\n')
	binary.LittleEndian.PutUint16(out[8:10], uint16(size-10))
	return out, nil
}

// WriteNpy writes t to w as a .npy array.
func WriteNpy(w io.Writer, t *graph.Tensor) error {
	h, err := NpyHeader(t.DType, t.Shape)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(h); err != nil {
		return err
	}
	if err := writeData(bw, t); err != nil {
		return err
	}
	return bw.Flush()
}

func writeData(w io.Writer, t *graph.Tensor) error {
	var buf [8]byte
	switch t.DType {
	case graph.Float32:
		for _, v := range t.F32 {
			binary.LittleEndian.PutUint32(buf[:4], math.Float32bits(v))
			if _, err := w.Write(buf[:4]); err != nil {
				return err
			}
		}
	case graph.Int64:
		for _, v := range t.I64 {
			binary.LittleEndian.PutUint64(buf[:], uint64(v))
			if _, err := w.Write(buf[:]); err != nil {
				return err
			}
		}
	case graph.Bool:
		for _, v := range t.B {
			buf[0] = 0
			if v {
				buf[0] = 1
			}
			if _, err := w.Write(buf[:1]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("tensorio: cannot write %s tensors", t.DType)
	}
	return nil
}

// WriteNpyFile writes t to path atomically: to a temporary file in the same
// folder, then renamed, so a failure leaves no half-written file.
func WriteNpyFile(path string, t *graph.Tensor) error {
	return WriteAtomic(path, func(w io.Writer) error { return WriteNpy(w, t) })
}

// WriteAtomic creates path by writing to a temporary file beside it and
// renaming it into place only when write and close succeed.
func WriteAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := splitPath(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name means nothing to the user
		}
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	// CreateTemp makes the file private (0600); an output file is an
	// ordinary one, readable like any other the user creates.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func splitPath(path string) (dir, base string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ".", path
	}
	return path[:i+1], path[i+1:]
}
