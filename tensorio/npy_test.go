package tensorio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
)

func TestNpyRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []*graph.Tensor{
		graph.NewFloat32([]int64{2, 3}, []float32{1, -2, 3.5, 4, 5, 6}),
		graph.NewFloat32([]int64{4}, []float32{1, 2, 3, 4}),
		graph.NewInt64([]int64{3, 1, 1}, []int64{7, -8, 9}),
		graph.NewBool([]int64{2}, []bool{true, false}),
		graph.ScalarFloat32(2.5),
	}
	for _, want := range cases {
		var buf bytes.Buffer
		if err := WriteNpy(&buf, want); err != nil {
			t.Fatal(err)
		}
		if buf.Len() > 10 && (10+int(buf.Bytes()[8])+int(buf.Bytes()[9])<<8)%64 != 0 {
			t.Errorf("header of %v not padded to 64 bytes", want.Shape)
		}
		got, err := ReadNpy(&buf)
		if err != nil {
			t.Fatalf("%v: %v", want.Shape, err)
		}
		if got.Shape == nil {
			got.Shape = []int64{}
		}
		if want.Shape == nil {
			want.Shape = []int64{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestReadNpyRejectsGarbage(t *testing.T) {
	t.Parallel()
	for _, data := range []string{"", "not npy at all", "\x93NUMPY\x01\x00\xff\xff{"} {
		if _, err := ReadNpy(bytes.NewReader([]byte(data))); err == nil {
			t.Errorf("ReadNpy(%q) succeeded", data)
		}
	}
}

func TestWriteAtomicLeavesNothingOnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.npy")
	err := WriteNpyFile(path, &graph.Tensor{DType: graph.String})
	if err == nil {
		t.Fatal("writing a string tensor succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left files behind: %v", entries)
	}
}

func TestWriteAtomicRemovesTempOnPanic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	func() {
		defer func() { recover() }()
		WriteAtomic(filepath.Join(dir, "out.npy"), func(w io.Writer) error {
			w.Write([]byte("partial"))
			panic("write failed hard")
		})
	}()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a panic in write left %v", ents)
	}
}

func TestRemovePendingDeletesTempFiles(t *testing.T) {
	dir := t.TempDir()
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- WriteAtomic(filepath.Join(dir, "out.npy"), func(w io.Writer) error {
			w.Write([]byte("partial"))
			close(inside)
			<-release
			return errors.New("interrupted")
		})
	}()
	<-inside
	if n := RemovePending(); n != 1 {
		t.Errorf("RemovePending removed %d files, want 1", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v after RemovePending", ents)
	}
	close(release)
	<-done
}

// hostile .npy files: each must fail with a message, without allocating
// what its header claims.
func TestReadNpyHostileHeaders(t *testing.T) {
	t.Parallel()
	hugeHeader := []byte("\x93NUMPY\x02\x00\xff\xff\xff\xf0{")
	hugeData := append([]byte(nil), mustHeader(t, []int64{1 << 31})...)
	hugeData = append(hugeData, make([]byte, 16)...)
	truncated := append(mustHeader(t, []int64{10}), make([]byte, 12)...)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"4 GiB header", hugeHeader, "longer than the limit"},
		{"8 GiB data", hugeData, "truncated"},
		{"truncated data", truncated, "needs 40 bytes of data, the file has 12"},
		{"empty", nil, "empty file"},
		{"short magic", []byte("\x93NU"), "truncated"},
	} {
		_, err := ReadNpySized(bytes.NewReader(c.data), int64(len(c.data)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
		// Size unknown (a gzipped stream): still an error, never an allocation of the claim.
		if _, err := ReadNpy(bytes.NewReader(c.data)); err == nil {
			t.Errorf("%s: ReadNpy of unknown size succeeded", c.name)
		}
	}
}

// The header alone says what ReadNpyFile would read, and refuses the same
// truncated file, without reading the data.
func TestReadNpyFileHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.npy")
	if err := WriteNpyFile(whole, graph.NewInt64([]int64{3, 1, 2}, []int64{1, 2, 3, 4, 5, 6})); err != nil {
		t.Fatal(err)
	}
	dt, shape, err := ReadNpyFileHeader(whole)
	if err != nil || dt != graph.Int64 || !reflect.DeepEqual(shape, []int64{3, 1, 2}) {
		t.Fatalf("header: %v %v %v, want int64 [3 1 2]", dt, shape, err)
	}
	short := filepath.Join(dir, "short.npy")
	if err := os.WriteFile(short, append(mustHeader(t, []int64{1 << 31, 2}), make([]byte, 16)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadNpyFileHeader(short); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), short) {
		t.Fatalf("truncated file: %v, want ErrTruncated naming it", err)
	}
	if _, _, err := ReadNpyFileHeader(dir); err == nil {
		t.Fatal("a folder read as a .npy header")
	}
}

func mustHeader(t *testing.T, shape []int64) []byte {
	h, err := NpyHeader(graph.Float32, shape)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A header rewritten in place with fewer rows keeps its size and reads back.
func TestNpyHeaderOfSize(t *testing.T) {
	full, err := NpyHeader(graph.Float32, []int64{100000, 2})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NpyHeaderOfSize(graph.Float32, []int64{3, 2}, len(full))
	if err != nil || len(h) != len(full) {
		t.Fatalf("%d bytes, %v; want %d", len(h), err, len(full))
	}
	data := make([]byte, 3*2*4)
	got, err := ReadNpy(bytes.NewReader(append(h, data...)))
	if err != nil || len(got.Shape) != 2 || got.Shape[0] != 3 || got.Shape[1] != 2 {
		t.Errorf("read back %v, %v", got, err)
	}
	if _, err := NpyHeaderOfSize(graph.Float32, []int64{3, 2}, 32); err == nil {
		t.Error("a header larger than its room was accepted")
	}
}
