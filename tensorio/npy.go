// Package tensorio reads and writes graph tensors as NumPy .npy files, the
// format fixtures, samples and data sets use. Reading accepts little-endian
// float32, float64 (converted to float32), int64, int32 (converted to int64)
// and bool arrays in C order; writing produces float32, int64 or bool arrays
// that numpy.load reads as they are.
package tensorio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"

	"codeberg.org/sbinet/npyio"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/safefile"
)

// MaxHeaderBytes bounds a .npy header; numpy itself refuses headers above
// 10 000 bytes unless told otherwise.
const MaxHeaderBytes = 1 << 16

// ErrTruncated is wrapped by the error for a .npy file that ends before the
// data its header promises.
var ErrTruncated = errors.New("npy file is truncated")

// ReadNpyFile reads a .npy file into a tensor. Only regular files are
// read, and the header's sizes are checked against the file's size and the
// memory budget before anything is allocated.
func ReadNpyFile(path string) (*graph.Tensor, error) {
	f, st, err := safefile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	defer f.Close()
	t, err := ReadNpySized(bufio.NewReader(f), st.Size())
	if err != nil {
		return nil, fmt.Errorf("tensorio: %s: %w", path, err)
	}
	return t, nil
}

// ReadNpy reads one .npy array from r, whose size is not known: the data
// is read in chunks, so a header that promises more than the stream holds
// costs no more than the stream.
func ReadNpy(r io.Reader) (*graph.Tensor, error) { return ReadNpySized(r, -1) }

// npyItem is how one element is stored and decoded.
type npyItem struct {
	size int
	dt   graph.DType
}

var npyTypes = map[string]npyItem{
	"<f4": {4, graph.Float32}, "f4": {4, graph.Float32},
	"<f8": {8, graph.Float32}, "f8": {8, graph.Float32},
	"<i8": {8, graph.Int64}, "i8": {8, graph.Int64},
	"<i4": {4, graph.Int64}, "i4": {4, graph.Int64},
	"|b1": {1, graph.Bool}, "b1": {1, graph.Bool},
}

// ReadNpySized reads one .npy array from r, which holds size bytes (-1:
// unknown). The header length, the shape and the data size are checked —
// against MaxHeaderBytes, size and the memory budget — before the data is
// allocated; a file that ends early says how many bytes are missing.
func ReadNpySized(r io.Reader, size int64) (*graph.Tensor, error) {
	h, err := readNpyHeader(r, size)
	if err != nil {
		return nil, err
	}
	width := int64(h.item.dt.ByteSize())
	if err := membudget.Elems(fmt.Sprintf("npy array %v of %s", h.shape, h.descr), h.n, width); err != nil {
		return nil, err
	}
	return readNpyData(r, h.shape, h.n, h.descr, h.item, size >= 0)
}

// ReadNpyFileHeader reads what a .npy file holds — the element type as it
// is read and the shape — without its data; the header is checked as
// ReadNpyFile checks it, including that the file is long enough for the data.
func ReadNpyFileHeader(path string) (graph.DType, []int64, error) {
	f, st, err := safefile.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("tensorio: %w", err)
	}
	defer f.Close()
	h, err := readNpyHeader(bufio.NewReader(f), st.Size())
	if err != nil {
		return 0, nil, fmt.Errorf("tensorio: %s: %w", path, err)
	}
	return h.item.dt, h.shape, nil
}

// npyHead is a parsed .npy header.
type npyHead struct {
	shape []int64
	n     int64 // elements
	descr string
	item  npyItem
}

// readNpyHeader reads the magic, the version and the header dictionary,
// leaving r at the data, and checks the sizes against size (-1: unknown).
func readNpyHeader(r io.Reader, size int64) (npyHead, error) {
	var none npyHead
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		if n == 0 {
			return none, errors.New("empty file, not a .npy array")
		}
		return none, fmt.Errorf("%w: %d bytes, shorter than the magic and version", ErrTruncated, n)
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return none, fmt.Errorf("not a valid NumPy file: magic %q (want \"\\x93NUMPY\")", pre[:6])
	}
	lenBytes := 2
	switch pre[6] {
	case 1:
	case 2, 3:
		lenBytes = 4
	default:
		return none, fmt.Errorf("npy version %d.%d is not supported (want 1.0, 2.0 or 3.0)", pre[6], pre[7])
	}
	lb := make([]byte, lenBytes)
	if _, err := io.ReadFull(r, lb); err != nil {
		return none, fmt.Errorf("%w: it ends inside the header length", ErrTruncated)
	}
	hlen := int64(binary.LittleEndian.Uint16(lb[:2]))
	if lenBytes == 4 {
		hlen = int64(binary.LittleEndian.Uint32(lb))
	}
	prefix := int64(8 + lenBytes)
	if hlen > MaxHeaderBytes {
		return none, fmt.Errorf("npy header of %d bytes is longer than the limit of %d", hlen, MaxHeaderBytes)
	}
	if size >= 0 && prefix+hlen > size {
		return none, fmt.Errorf("%w: header of %d bytes, but the file has only %d after the magic", ErrTruncated, hlen, size-prefix)
	}
	header := make([]byte, prefix+hlen)
	copy(header, pre[:8])
	copy(header[8:], lb)
	if n, err := io.ReadFull(r, header[prefix:]); err != nil {
		return none, fmt.Errorf("%w: header of %d bytes, file ends after %d", ErrTruncated, hlen, n)
	}
	h, err := parseNpyHeader(header)
	if err != nil {
		return none, err
	}
	d := h.Descr
	if d.Fortran {
		return none, errors.New("fortran-ordered arrays are not supported; save with numpy.ascontiguousarray")
	}
	shape := make([]int64, len(d.Shape))
	for i, s := range d.Shape {
		shape[i] = int64(s)
	}
	n, err := graph.CheckedNumElements(shape)
	if err != nil {
		return none, err
	}
	descr := strings.Trim(d.Type, "'\"")
	it, ok := npyTypes[descr]
	if !ok {
		return none, fmt.Errorf("unsupported npy dtype %q (want float32, float64, int64, int32 or bool)", d.Type)
	}
	need := membudget.Product(n, int64(it.size))
	if size >= 0 && (need < 0 || need > size-prefix-hlen) {
		return none, fmt.Errorf("%w: shape %v of %s needs %d bytes of data, the file has %d (%d missing)",
			ErrTruncated, shape, descr, need, size-prefix-hlen, need-(size-prefix-hlen))
	}
	return npyHead{shape: shape, n: n, descr: descr, item: it}, nil
}

// parseNpyHeader lets npyio read the header dictionary from the bytes
// already read; it reports some malformed headers by panicking.
func parseNpyHeader(header []byte) (h npyio.Header, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed npy header: %v", p)
		}
	}()
	nr, err := npyio.NewReader(bytes.NewReader(header))
	if err != nil {
		return h, fmt.Errorf("malformed npy header: %w", err)
	}
	return nr.Header, nil
}

// readNpyData decodes n elements chunk by chunk into the tensor. When the
// stream's size was not known (sized false) the tensor grows as data
// arrives, so a header that lies costs only what the stream really holds.
func readNpyData(r io.Reader, shape []int64, n int64, descr string, it npyItem, sized bool) (*graph.Tensor, error) {
	c := n
	if !sized {
		c = min(n, 1<<20)
	}
	var t *graph.Tensor
	switch it.dt {
	case graph.Float32:
		t = graph.NewFloat32(shape, make([]float32, c))
	case graph.Int64:
		t = graph.NewInt64(shape, make([]int64, c))
	default:
		t = graph.NewBool(shape, make([]bool, c))
	}
	le := binary.LittleEndian
	buf := make([]byte, 1<<16)
	per := int64(len(buf) / it.size)
	for done := int64(0); done < n; {
		k := min(per, n-done)
		chunk := buf[:k*int64(it.size)]
		if got, err := io.ReadFull(r, chunk); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				have := done*int64(it.size) + int64(got)
				return nil, fmt.Errorf("%w: shape %v of %s needs %d bytes of data, the file has %d",
					ErrTruncated, shape, descr, n*int64(it.size), have)
			}
			return nil, err
		}
		if end := done + k; end > int64(max(len(t.F32), len(t.I64), len(t.B))) {
			grow(t, min(n, max(2*end, 1<<20)))
		}
		for i := int64(0); i < k; i++ {
			b := chunk[i*int64(it.size):]
			switch descr {
			case "<f4", "f4":
				t.F32[done+i] = math.Float32frombits(le.Uint32(b))
			case "<f8", "f8":
				t.F32[done+i] = float32(math.Float64frombits(le.Uint64(b)))
			case "<i8", "i8":
				t.I64[done+i] = int64(le.Uint64(b))
			case "<i4", "i4":
				t.I64[done+i] = int64(int32(le.Uint32(b)))
			default:
				t.B[done+i] = b[0] != 0
			}
		}
		done += k
	}
	return t, nil
}

// grow extends t's data to n elements.
func grow(t *graph.Tensor, n int64) {
	switch t.DType {
	case graph.Float32:
		t.F32 = append(t.F32, make([]float32, n-int64(len(t.F32)))...)
	case graph.Int64:
		t.I64 = append(t.I64, make([]int64, n-int64(len(t.I64)))...)
	default:
		t.B = append(t.B, make([]bool, n-int64(len(t.B)))...)
	}
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
// renaming it into place only when write and close succeed. The temporary
// file is removed on every other way out: an error, a panic in write, or a
// signal whose handler calls RemovePending before the process exits.
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
	tmp := f.Name()
	pending.add(tmp)
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
		pending.remove(tmp)
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
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	return nil
}

// pending are the temporary files WriteAtomic has open.
var pending = tempSet{names: map[string]bool{}}

type tempSet struct {
	mu    sync.Mutex
	names map[string]bool
}

func (s *tempSet) add(n string)    { s.mu.Lock(); s.names[n] = true; s.mu.Unlock() }
func (s *tempSet) remove(n string) { s.mu.Lock(); delete(s.names, n); s.mu.Unlock() }

// RemovePending deletes the temporary files of every WriteAtomic still in
// progress and returns how many it removed. A command calls it when a
// signal makes it exit without unwinding (a backend call that cannot be
// interrupted), so no hidden .tmp file is left behind.
func RemovePending() int {
	pending.mu.Lock()
	defer pending.mu.Unlock()
	n := 0
	for name := range pending.names {
		if os.Remove(name) == nil {
			n++
		}
		delete(pending.names, name)
	}
	return n
}

func splitPath(path string) (dir, base string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ".", path
	}
	return path[:i+1], path[i+1:]
}
