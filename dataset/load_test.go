package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

const (
	scaleTol = 1e-6 // float32 round trip of an affine map on values of order 1

	fashionDir = "/usr/share/datasets/fashion-mnist"
	fashionFix = "run `apt-get install dataset-fashion-mnist`"
)

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write(data)
	z.Close()
	return b.Bytes()
}

func npyBytes(t *testing.T, x *graph.Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tensorio.WriteNpy(&b, x); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// idx builds an IDX file: magic, big-endian dimensions, then payload.
func idx(typ byte, dims []uint32, payload []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, payload...)
}

func TestLoadFormats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f32 := graph.NewFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	i64 := graph.NewInt64([]int64{4}, []int64{-1, 0, 1, 7})
	fl := []float32{1.5, -2}
	idxF32 := binary.BigEndian.AppendUint32(nil, math.Float32bits(fl[0]))
	idxF32 = binary.BigEndian.AppendUint32(idxF32, math.Float32bits(fl[1]))
	cases := []struct {
		name  string
		data  []byte
		shape []int64
		vals  []float32
	}{
		{"a.npy", npyBytes(t, f32), []int64{2, 3}, f32.F32},
		{"a.npy.gz", gz(npyBytes(t, f32)), []int64{2, 3}, f32.F32},
		{"labels.npy", npyBytes(t, i64), []int64{4, 1}, []float32{-1, 0, 1, 7}},
		{"h.csv", []byte("x,y\n1,2\n3, 4.5\n\n-1e3,5\n"), []int64{3, 2}, []float32{1, 2, 3, 4.5, -1000, 5}},
		{"noheader.csv", []byte("1\n2\n3\n"), []int64{3, 1}, []float32{1, 2, 3}},
		{"z.csv.gz", gz([]byte("a,b\n0,1\n")), []int64{1, 2}, []float32{0, 1}},
		{"img-idx3-ubyte", idx(0x08, []uint32{2, 2, 1}, []byte{0, 255, 7, 9}), []int64{2, 1, 2, 1}, []float32{0, 255, 7, 9}},
		{"img-idx3-ubyte.gz", gz(idx(0x08, []uint32{2, 2, 1}, []byte{0, 255, 7, 9})), []int64{2, 1, 2, 1}, []float32{0, 255, 7, 9}},
		{"lab.idx", idx(0x09, []uint32{3}, []byte{1, 0xff, 0x80}), []int64{3, 1}, []float32{1, -1, -128}},
		{"f.idx", idx(0x0D, []uint32{1, 2}, idxF32), []int64{1, 2}, fl},
		{"s.idx", idx(0x0B, []uint32{1, 1}, []byte{0xff, 0xfe}), []int64{1, 1}, []float32{-2}},
	}
	for _, c := range cases {
		got, err := Load(writeFile(t, dir, c.name, c.data))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.DType != graph.Float32 || !slices.Equal(got.Shape, c.shape) || !slices.Equal(got.F32, c.vals) {
			t.Errorf("%s: got %s %v %v, want float32 %v %v", c.name, got.DType, got.Shape, got.F32, c.shape, c.vals)
		}
	}
}

func TestLoadRefusesBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	nan := graph.NewFloat32([]int64{2, 2}, []float32{0, 1, float32(math.NaN()), 3})
	good := idx(0x08, []uint32{2, 2}, []byte{1, 2, 3, 4})
	cases := []struct{ name, data, want string }{
		{"nan.npy", string(npyBytes(t, nan)), "value 2 (sample 1) is NaN"},
		{"bool.npy", string(npyBytes(t, graph.NewBool([]int64{2}, []bool{true, false}))), "bool arrays are not data"},
		{"scalar.npy", string(npyBytes(t, graph.ScalarFloat32(1))), "scalar is not a data set"},
		{"empty.npy", string(npyBytes(t, graph.NewFloat32([]int64{0, 2}, nil))), "no samples"},
		{"garbage.npy", "not an npy file at all", "not a valid NumPy file"},
		{"ragged.csv", "a,b\n1,2\n3\n", "csv line 3 has 1 fields, line 2 has 2"},
		{"word.csv", "1,2\n3,x\n", `csv line 2 field 2: "x" is not a number`},
		{"nan.csv", "1,2\nNaN,3\n", `"NaN" is not a finite float32`},
		{"big.csv", "1e39\n", `"1e39" is not a finite float32`},
		{"headeronly.csv", "a,b\n", "no data lines"},
		{"quote.csv", "1,\"2\n", "csv: parse error on line 1"},
		{"magic-idx1-ubyte", "\x00\x00\x07\x01\x00\x00\x00\x01a", "not an IDX file: magic 00 00 07 01"},
		{"rank0.idx", "\x00\x00\x08\x00", "not an IDX file"},
		{"short.idx", "\x00\x00", "idx header: file is truncated"},
		{"dims.idx", "\x00\x00\x08\x02\x00\x00", "idx dimensions: file is truncated"},
		{"trunc.idx", string(good[:len(good)-1]), "needs 4 bytes, file has 3"},
		{"trail.idx", string(good) + "x", "has data after the 4 bytes"},
		{"huge.idx", string(idx(0x0E, []uint32{1 << 31, 1 << 31}, nil)), "more than the limit"},
		{"nan.idx", string(idx(0x0D, []uint32{1}, []byte{0x7f, 0xc0, 0, 0})), "is NaN"},
		{"badgz.idx.gz", "\x1f\x8bnot really gzip", "gzip: "},
		{"data.bin", "1,2", "unknown data format"},
	}
	for _, c := range cases {
		p := writeFile(t, dir, c.name, []byte(c.data))
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: loaded bad input", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "dataset: "+p) || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q; want one line `dataset: PATH: …` containing %q", c.name, msg, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.npy")); err == nil || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadIDXNeverPanics feeds corrupted copies of a valid file to ReadIDX.
func TestReadIDXNeverPanics(t *testing.T) {
	t.Parallel()
	good := idx(0x0C, []uint32{2, 3}, make([]byte, 24))
	r := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 2000; trial++ {
		b := append([]byte(nil), good[:r.IntN(len(good)+1)]...)
		for k := 0; k < 3 && len(b) > 0; k++ {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		ReadIDX(bytes.NewReader(b)) // an error is fine; a panic fails the test
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(path), filepath.Base(path), b.Bytes())
}

func TestLoadPNGDir(t *testing.T) {
	t.Parallel()
	grayDir, rgbDir := t.TempDir(), t.TempDir()
	for i := 0; i < 3; i++ {
		g := image.NewGray(image.Rect(0, 0, 4, 2))
		g.SetGray(1, 0, color.Gray{Y: uint8(10 * (i + 1))})
		writePNG(t, filepath.Join(grayDir, string(rune('a'+i))+".png"), g)
	}
	writeFile(t, grayDir, "README.txt", []byte("not an image"))
	x, err := Load(grayDir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Shape, []int64{3, 1, 2, 4}) || x.F32[1] != 10 || x.F32[8+1] != 20 || x.F32[16+1] != 30 || x.F32[0] != 0 {
		t.Errorf("gray folder: shape %v values %v", x.Shape, x.F32)
	}

	c := image.NewRGBA(image.Rect(0, 0, 2, 2))
	c.Set(0, 1, color.RGBA{R: 255, G: 128, B: 1, A: 255})
	writePNG(t, filepath.Join(rgbDir, "0.png"), c)
	g := image.NewGray(image.Rect(0, 0, 2, 2))
	g.SetGray(1, 1, color.Gray{Y: 200})
	writePNG(t, filepath.Join(rgbDir, "1.png"), g)
	x, err = Load(rgbDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0, 255, 0, 0, 0, 128, 0, 0, 0, 1, 0, 0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200}
	if !slices.Equal(x.Shape, []int64{2, 3, 2, 2}) || !slices.Equal(x.F32, want) {
		t.Errorf("colour folder: shape %v values %v, want [2 3 2 2] %v", x.Shape, x.F32, want)
	}
}

func TestLoadPNGDirRefuses(t *testing.T) {
	t.Parallel()
	mixed, empty, corrupt := t.TempDir(), t.TempDir(), t.TempDir()
	writePNG(t, filepath.Join(mixed, "a.png"), image.NewGray(image.Rect(0, 0, 28, 28)))
	writePNG(t, filepath.Join(mixed, "b.png"), image.NewGray(image.Rect(0, 0, 32, 28)))
	writeFile(t, corrupt, "a.png", []byte("\x89PNG\r\n\x1a\nbroken"))
	for dir, want := range map[string]string{
		mixed:   "b.png is 32×28 but a.png is 28×28; all images must be the same size",
		empty:   "no .png images",
		corrupt: "a.png: ",
	} {
		_, err := Load(dir)
		if err == nil || !strings.HasPrefix(err.Error(), "dataset: "+dir+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", dir, err, want)
		}
	}
}

func TestScaling(t *testing.T) {
	t.Parallel()
	orig := []float32{0, 51, 255, 102}
	x := graph.NewFloat32([]int64{4, 1}, slices.Clone(orig))
	s, err := ScaleFromRange(x, [2]float64{0, 255}, -1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if x.F32[0] != -1 || x.F32[2] != 1 || math.Abs(float64(x.F32[1])+0.6) > scaleTol || !slices.Equal(s.DataRange(), []float64{-1, 1}) {
		t.Errorf("[0,255] → [-1,1]: %v, %+v", x.F32, s)
	}
	s.Invert(x.F32)
	for i := range orig {
		if math.Abs(float64(x.F32[i]-orig[i])) > scaleTol*255 {
			t.Errorf("Invert: %v, want %v", x.F32, orig)
		}
	}

	y := graph.NewFloat32([]int64{3, 1}, []float32{2, 4, 6})
	if s, err = ScaleToRange(y, 0, 1); err != nil || !slices.Equal(y.F32, []float32{0, 0.5, 1}) || s.Method != "range" {
		t.Errorf("ScaleToRange: %v %+v %v", y.F32, s, err)
	}
	z := graph.NewFloat32([]int64{4, 1}, []float32{1, 2, 3, 4})
	s, err = Standardize(z)
	if err != nil {
		t.Fatal(err)
	}
	var mean, sq float64
	for _, v := range z.F32 {
		mean += float64(v) / 4
		sq += float64(v) * float64(v) / 4
	}
	if math.Abs(mean) > scaleTol || math.Abs(sq-1) > scaleTol || s.Range[0] != float64(z.F32[0]) || s.Range[1] != float64(z.F32[3]) {
		t.Errorf("Standardize: %v (mean %v, E x² %v), %+v", z.F32, mean, sq, s)
	}

	constant := graph.NewFloat32([]int64{2, 1}, []float32{3, 3})
	if _, err := Standardize(constant); err == nil || !strings.Contains(err.Error(), "constant") {
		t.Errorf("Standardize(constant): %v", err)
	}
	if _, err := ScaleToRange(constant, -1, 1); err == nil {
		t.Error("ScaleToRange(constant) succeeded")
	}
	if _, err := ScaleFromRange(graph.NewFloat32([]int64{1, 1}, []float32{300}), [2]float64{0, 255}, -1, 1); err == nil || !strings.Contains(err.Error(), "outside the stated range") {
		t.Errorf("value outside the source range: %v", err)
	}
}

// TestLoadFashionMNIST reads the real test set: 10 000 images of 28×28
// bytes and their labels, 1 000 of each of the 10 classes.
func TestLoadFashionMNIST(t *testing.T) {
	t.Parallel()
	images := filepath.Join(fashionDir, "t10k-images-idx3-ubyte.gz")
	labels := filepath.Join(fashionDir, "t10k-labels-idx1-ubyte.gz")
	testenv.Require(t, images, fashionFix)
	testenv.Require(t, labels, fashionFix)
	x, err := Load(images)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Shape, []int64{10000, 1, 28, 28}) {
		t.Fatalf("images: shape %v, want [10000 1 28 28]", x.Shape)
	}
	mn, mx := minMax(x.F32)
	var sum float64
	for _, v := range x.F32 {
		sum += float64(v)
	}
	// Fashion-MNIST's mean pixel is about 0.286 of full scale.
	if mean := sum / float64(len(x.F32)) / 255; mn != 0 || mx != 255 || mean < 0.25 || mean > 0.32 {
		t.Errorf("images: min %v max %v mean %.3f of full scale", mn, mx, mean)
	}
	y, err := Load(labels)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 10)
	for _, v := range y.F32 {
		counts[int(v)]++
	}
	if !slices.Equal(y.Shape, []int64{10000, 1}) || slices.Max(counts) != 1000 || slices.Min(counts) != 1000 {
		t.Errorf("labels: shape %v, class counts %v", y.Shape, counts)
	}
}

func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pixels.csv")
	os.WriteFile(path, []byte("a,b,c\n0,51,255\n102,204,0\n"), 0o644)

	x, err := Load(path)
	if err != nil {
		panic(err)
	}
	s, _ := ScaleFromRange(x, [2]float64{0, 255}, -1, 1)
	fmt.Println(x.Shape, x.F32)
	fmt.Println("record as ebmrun.data_range:", s.DataRange())
	// Output:
	// [2 3] [-1 -0.6 1 -0.2 0.6 -1]
	// record as ebmrun.data_range: [-1 1]
}
