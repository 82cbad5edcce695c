package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/tensorio"
)

// MaxElements bounds the number of values a loader accepts (4 GiB of
// float32), so a corrupt header cannot ask for an absurd allocation.
var MaxElements int64 = 1 << 30

// Load reads a data set into a float32 tensor of shape [N, …]: one row per
// sample, every value finite. The format is chosen by the name:
//
//   - a folder: PNG images, see LoadPNGDir → [N, C, H, W];
//   - .npy: a NumPy array (float32, float64, int32 or int64), see LoadNpy;
//   - .csv: numbers, one sample a line, see ReadCSV → [N, D];
//   - .idx, or a name with "-ubyte" or "idx" in it (MNIST's
//     train-images-idx3-ubyte): IDX, see ReadIDX.
//
// A file that starts with the gzip magic is decompressed first, whatever
// its name, and a trailing .gz is ignored when choosing the format.
// Values are returned as stored (pixels in [0, 255]); scale them with
// ScaleToRange, ScaleFromRange or Standardize.
func Load(path string) (*graph.Tensor, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if st.IsDir() {
		return LoadPNGDir(path)
	}
	var read func(io.Reader) (*graph.Tensor, error)
	name := strings.ToLower(filepath.Base(path))
	name = strings.TrimSuffix(name, ".gz")
	switch {
	case strings.HasSuffix(name, ".npy"):
		read = readNpy
	case strings.HasSuffix(name, ".csv"):
		read = ReadCSV
	case strings.HasSuffix(name, ".idx") || strings.Contains(name, "-ubyte") || strings.Contains(name, "idx"):
		read = ReadIDX
	default:
		return nil, fmt.Errorf("dataset: %s: unknown data format (want .npy, .csv, IDX such as train-images-idx3-ubyte, optionally gzipped, or a folder of PNG images)", path)
	}
	return loadFile(path, read)
}

// LoadNpy reads a .npy file (optionally gzipped) as data, see Load.
func LoadNpy(path string) (*graph.Tensor, error) { return loadFile(path, readNpy) }

// LoadCSV reads a .csv file (optionally gzipped), see ReadCSV.
func LoadCSV(path string) (*graph.Tensor, error) { return loadFile(path, ReadCSV) }

// LoadIDX reads an IDX file (optionally gzipped), see ReadIDX.
func LoadIDX(path string) (*graph.Tensor, error) { return loadFile(path, ReadIDX) }

func loadFile(path string, read func(io.Reader) (*graph.Tensor, error)) (*graph.Tensor, error) {
	f, st, err := safefile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReaderSize(f, 1<<16), path, st.Size())
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	t, err := read(r)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, trimDataset(err))
	}
	return t, nil
}

// maybeGunzip decompresses r when it starts with the gzip magic, through a
// reader that stops at the memory budget (a decompression bomb ends in an
// error, not in exhausted memory). A plain file keeps its size, which the
// .npy reader checks its header against.
func maybeGunzip(r *bufio.Reader, path string, size int64) (io.Reader, error) {
	head, _ := r.Peek(2)
	if !bytes.Equal(head, []byte{0x1f, 0x8b}) {
		return sizedReader{r, size}, nil
	}
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return bufio.NewReaderSize(&membudget.Reader{R: z, What: "data set " + path}, 1<<16), nil
}

// sizedReader is a stream whose length is known.
type sizedReader struct {
	io.Reader
	size int64
}

// trimDataset drops the package prefix of an error from this package's
// readers, which loadFile adds again in front of the path.
func trimDataset(err error) error {
	if msg := err.Error(); strings.HasPrefix(msg, "dataset: ") {
		return prefixless{msg[len("dataset: "):], err}
	}
	return err
}

type prefixless struct {
	msg string
	err error
}

func (p prefixless) Error() string { return p.msg }
func (p prefixless) Unwrap() error { return p.err }

// readNpy reads a .npy array as data: integers become float32, a rank-1
// array of N values becomes [N, 1].
func readNpy(r io.Reader) (*graph.Tensor, error) {
	size := int64(-1)
	if s, ok := r.(sizedReader); ok {
		size = s.size
	}
	t, err := tensorio.ReadNpySized(r, size)
	if err != nil {
		return nil, err
	}
	switch t.DType {
	case graph.Float32:
	case graph.Int64:
		f := make([]float32, len(t.I64))
		for i, v := range t.I64 {
			f[i] = float32(v)
		}
		t = graph.NewFloat32(t.Shape, f)
	default:
		return nil, fmt.Errorf("%s arrays are not data; want float32, float64, int32 or int64", t.DType)
	}
	return asData(t)
}

// asData checks a float32 tensor as a data set: at least one sample, a
// sample axis first (rank 1 gains a feature axis), every value finite.
func asData(t *graph.Tensor) (*graph.Tensor, error) {
	switch len(t.Shape) {
	case 0:
		return nil, errors.New("a scalar is not a data set; want an array of shape [N, …]")
	case 1:
		t.Shape = []int64{t.Shape[0], 1}
	}
	if t.Shape[0] == 0 || len(t.F32) == 0 {
		return nil, fmt.Errorf("no samples (shape %v)", t.Shape)
	}
	if int64(len(t.F32)) > MaxElements {
		return nil, fmt.Errorf("%d values exceed the limit of %d", len(t.F32), MaxElements)
	}
	if err := CheckFinite(t); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckFinite reports the first NaN or infinite value of a float32 data
// tensor, naming the sample it belongs to.
func CheckFinite(t *graph.Tensor) error {
	per := 1
	if len(t.Shape) > 0 && t.Shape[0] > 0 {
		per = len(t.F32) / int(t.Shape[0])
	}
	for i, v := range t.F32 {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("value %d (sample %d) is %v; data must be finite", i, i/max(per, 1), v)
		}
	}
	return nil
}

// ReadCSV reads numbers separated by commas, one sample a line, into
// [N, D]. A first line that is not all numbers is taken as a header and
// skipped; every other line must have the same number of fields, each a
// number that fits in float32. Blank lines are skipped.
func ReadCSV(r io.Reader) (*graph.Tensor, error) {
	br := bufio.NewReader(r)
	// A UTF-8 byte-order mark (Excel writes one) is not part of the first
	// field; left there it would turn the first row of numbers into a
	// "header" and lose it.
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // ragged lines get a message naming both lengths
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var (
		data             []float32
		width, firstLine int
		rows             int64
		first            = true
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		for j, s := range rec {
			if strings.ContainsAny(s, "\r\n") {
				return nil, fmt.Errorf("csv line %d field %d: a quoted value spans lines; data values are numbers", line, j+1)
			}
		}
		if first {
			first = false
			if noNumbers(rec) {
				continue // header
			}
		}
		if width == 0 {
			width, firstLine = len(rec), line
		} else if len(rec) != width {
			return nil, fmt.Errorf("csv line %d has %d fields, line %d has %d", line, len(rec), firstLine, width)
		}
		if int64(len(data))+int64(width) > MaxElements {
			return nil, fmt.Errorf("csv has more than %d values", MaxElements)
		}
		if len(data)+width > cap(data) {
			// append is about to double the slice: ask the budget first.
			if err := membudget.Elems("csv data", int64(2*cap(data)+width), 4); err != nil {
				return nil, err
			}
		}
		for j, s := range rec {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return nil, fmt.Errorf("csv line %d field %d: %q is out of range", line, j+1, s)
				}
				return nil, fmt.Errorf("csv line %d field %d: %q is not a number", line, j+1, s)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
				return nil, fmt.Errorf("csv line %d field %d: %q is not a finite float32; data must be finite", line, j+1, s)
			}
			data = append(data, float32(v))
		}
		rows++
	}
	if rows == 0 {
		return nil, errors.New("csv has no data lines")
	}
	return asData(graph.NewFloat32([]int64{rows, int64(width)}, data))
}

// noNumbers reports whether no field of rec is a number: a header. A first
// row with some numbers is data, and its bad fields are reported as such
// instead of the row being skipped silently.
func noNumbers(rec []string) bool {
	for _, s := range rec {
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return false
		}
	}
	return true
}

// IDX element types (the third byte of the magic number).
var idxTypes = map[byte]struct {
	name string
	size int
}{
	0x08: {"uint8", 1}, 0x09: {"int8", 1}, 0x0B: {"int16", 2},
	0x0C: {"int32", 4}, 0x0D: {"float32", 4}, 0x0E: {"float64", 8},
}

// ReadIDX reads an IDX file, the format of MNIST and Fashion-MNIST:
// magic 0x00 0x00 TYPE RANK, RANK big-endian uint32 dimensions, then the
// values, big-endian. Images (rank 3, [N, H, W]) are returned as
// [N, 1, H, W], the layout LoadPNGDir gives and convolutional models take;
// labels (rank 1) as [N, 1]; other ranks as stored.
func ReadIDX(r io.Reader) (*graph.Tensor, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("idx header: %w", eofIsTruncation(err))
	}
	typ, ok := idxTypes[head[2]]
	if head[0] != 0 || head[1] != 0 || !ok || head[3] == 0 {
		return nil, fmt.Errorf("not an IDX file: magic % x (want 00 00 TYPE RANK with TYPE one of 08 09 0b 0c 0d 0e and RANK ≥ 1)", head)
	}
	rank := int(head[3])
	dims := make([]byte, 4*rank)
	if _, err := io.ReadFull(r, dims); err != nil {
		return nil, fmt.Errorf("idx dimensions: %w", eofIsTruncation(err))
	}
	shape := make([]int64, rank)
	for i := range shape {
		shape[i] = int64(binary.BigEndian.Uint32(dims[4*i:]))
	}
	n, err := graph.CheckedNumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("idx %w", err)
	}
	if n > MaxElements {
		return nil, fmt.Errorf("idx shape %v has %d values, more than the limit of %d", shape, n, MaxElements)
	}
	if err := membudget.Elems(fmt.Sprintf("idx data %v of %s", shape, typ.name), n, int64(typ.size)+4); err != nil {
		return nil, err
	}
	// Read what is there rather than allocate what the header claims, so a
	// corrupt header over a short file costs nothing.
	need := n * int64(typ.size)
	raw, err := io.ReadAll(io.LimitReader(r, need+1))
	if err != nil {
		return nil, fmt.Errorf("idx data: %w", err)
	}
	if int64(len(raw)) < need {
		return nil, fmt.Errorf("idx data truncated: shape %v of %s needs %d bytes, file has %d", shape, typ.name, need, len(raw))
	}
	if int64(len(raw)) > need {
		return nil, fmt.Errorf("idx file has data after the %d bytes its shape %v of %s needs", need, shape, typ.name)
	}
	out := make([]float32, n)
	be := binary.BigEndian
	for i := range out {
		switch head[2] {
		case 0x08:
			out[i] = float32(raw[i])
		case 0x09:
			out[i] = float32(int8(raw[i]))
		case 0x0B:
			out[i] = float32(int16(be.Uint16(raw[2*i:])))
		case 0x0C:
			out[i] = float32(int32(be.Uint32(raw[4*i:])))
		case 0x0D:
			out[i] = math.Float32frombits(be.Uint32(raw[4*i:]))
		case 0x0E:
			out[i] = float32(math.Float64frombits(be.Uint64(raw[8*i:])))
		}
	}
	if rank == 3 {
		shape = []int64{shape[0], 1, shape[1], shape[2]}
	}
	return asData(graph.NewFloat32(shape, out))
}

func eofIsTruncation(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file is truncated")
	}
	return err
}

// LoadPNGDir reads every *.png file in dir (not its subfolders), in name
// order, into [N, C, H, W] with pixel values in [0, 255]. All images must
// have the same size. C is 1 when every image is grayscale, else 3 (RGB; a
// grayscale image among colour ones is repeated into the three channels,
// and alpha is dropped after compositing onto black). 16-bit images are
// scaled to the same [0, 255].
func LoadPNGDir(dir string) (*graph.Tensor, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".png") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("dataset: %s: no .png images in the folder", dir)
	}
	// First pass: sizes and colour models from the headers only.
	var w, h int
	gray := true
	for i, name := range files {
		cfg, err := pngConfig(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", dir, err)
		}
		if i == 0 {
			w, h = cfg.Width, cfg.Height
		} else if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("dataset: %s: %s is %d×%d but %s is %d×%d; all images must be the same size",
				dir, name, cfg.Width, cfg.Height, files[0], w, h)
		}
		gray = gray && isGrayModel(cfg)
	}
	c := 3
	if gray {
		c = 1
	}
	n := int64(len(files))
	if total, err := graph.CheckedNumElements([]int64{n, int64(c), int64(h), int64(w)}); err != nil || total > MaxElements || total == 0 {
		return nil, fmt.Errorf("dataset: %s: %d images of %d×%d×%d are too many values or none", dir, n, c, h, w)
	}
	// The decoder holds one image at up to 8 bytes a pixel (16-bit RGBA)
	// beside the float32 result: both from the headers, before decoding.
	need := membudget.Product(n, int64(c), int64(h), int64(w), 4) + membudget.Product(int64(h), int64(w), 8)
	if err := membudget.Check(fmt.Sprintf("dataset: %s: %d images of %d×%d", dir, n, w, h), need); err != nil {
		return nil, err
	}
	out := make([]float32, n*int64(c*h*w))
	for i, name := range files {
		img, err := pngDecode(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", dir, err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			return nil, fmt.Errorf("dataset: %s: %s changed size while loading", dir, name)
		}
		fillPixels(out[i*c*h*w:(i+1)*c*h*w], img, c)
	}
	return graph.NewFloat32([]int64{n, int64(c), int64(h), int64(w)}, out), nil
}

func isGrayModel(cfg image.Config) bool {
	if _, ok := cfg.ColorModel.(color.Palette); ok {
		return false // a palette, even of grays, decodes to colours
	}
	return cfg.ColorModel == color.GrayModel || cfg.ColorModel == color.Gray16Model
}

func pngConfig(path string) (image.Config, error) {
	f, _, err := safefile.Open(path)
	if err != nil {
		return image.Config{}, err
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return cfg, nil
}

func pngDecode(path string) (image.Image, error) {
	f, _, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return img, nil
}

// fillPixels writes img as C planes of H×W values in [0, 255].
func fillPixels(dst []float32, img image.Image, c int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if g, ok := img.(*image.Gray); ok && c == 1 {
		for y := 0; y < h; y++ {
			row := g.Pix[y*g.Stride : y*g.Stride+w]
			for x, v := range row {
				dst[y*w+x] = float32(v)
			}
		}
		return
	}
	plane := w * h
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA() // 16-bit, alpha-premultiplied
			i := y*w + x
			if c == 1 {
				dst[i] = float32(r) / 257
				continue
			}
			dst[i], dst[plane+i], dst[2*plane+i] = float32(r)/257, float32(g)/257, float32(bl)/257
		}
	}
}

// Scaling is the affine map x' = Scale·x + Offset applied to a data set,
// kept so it can be recorded with a model and undone on its samples.
type Scaling struct {
	// Method is "range" or "standardize".
	Method string  `json:"method"`
	Scale  float64 `json:"scale"`
	Offset float64 `json:"offset"`
	// Range is the scaled data's range, what a model's ebmrun.data_range
	// records: the target range for "range", the observed minimum and
	// maximum after "standardize".
	Range [2]float64 `json:"range"`
}

// DataRange is Range as the []float64 importer.ModelSpec.DataRange holds.
func (s Scaling) DataRange() []float64 { return []float64{s.Range[0], s.Range[1]} }

// Apply maps x in place: x ← Scale·x + Offset, computed in float64.
func (s Scaling) Apply(x []float32) {
	for i, v := range x {
		x[i] = float32(s.Scale*float64(v) + s.Offset)
	}
}

// Invert undoes Apply in place, taking model samples back to data units.
func (s Scaling) Invert(x []float32) {
	for i, v := range x {
		x[i] = float32((float64(v) - s.Offset) / s.Scale)
	}
}

// ScaleToRange maps t in place so its observed minimum and maximum become
// lo and hi, and returns the map.
func ScaleToRange(t *graph.Tensor, lo, hi float64) (Scaling, error) {
	mn, mx := minMax(t.F32)
	if !(mx > mn) {
		return Scaling{}, fmt.Errorf("dataset: every value is %v; constant data cannot be scaled to a range", mn)
	}
	return ScaleFromRange(t, [2]float64{mn, mx}, lo, hi)
}

// ScaleFromRange maps t in place from the known range src (say [0, 255]
// for pixels, so every data set of images scales alike) onto [lo, hi]. A
// value outside src is an error.
func ScaleFromRange(t *graph.Tensor, src [2]float64, lo, hi float64) (Scaling, error) {
	if !(src[1] > src[0]) || !(hi > lo) || math.IsInf(src[1]-src[0], 0) || math.IsInf(hi-lo, 0) {
		return Scaling{}, fmt.Errorf("dataset: cannot scale from [%v, %v] to [%v, %v]; both ranges need finite lo < hi", src[0], src[1], lo, hi)
	}
	if mn, mx := minMax(t.F32); mn < src[0] || mx > src[1] {
		return Scaling{}, fmt.Errorf("dataset: data span [%v, %v], outside the stated range [%v, %v]", mn, mx, src[0], src[1])
	}
	scale := (hi - lo) / (src[1] - src[0])
	s := Scaling{Method: "range", Scale: scale, Offset: lo - scale*src[0], Range: [2]float64{lo, hi}}
	s.Apply(t.F32)
	return s, nil
}

// Standardize maps t in place to mean 0 and standard deviation 1 over all
// its values (one scale for every feature, so images keep their contrast
// between pixels), and returns the map.
func Standardize(t *graph.Tensor) (Scaling, error) {
	var sum, sq float64
	for _, v := range t.F32 {
		sum += float64(v)
	}
	n := float64(len(t.F32))
	mean := sum / n
	for _, v := range t.F32 {
		d := float64(v) - mean
		sq += d * d
	}
	std := math.Sqrt(sq / n)
	if !(std > 0) {
		return Scaling{}, fmt.Errorf("dataset: every value is %v; constant data cannot be standardised", mean)
	}
	s := Scaling{Method: "standardize", Scale: 1 / std, Offset: -mean / std}
	s.Apply(t.F32)
	mn, mx := minMax(t.F32)
	s.Range = [2]float64{mn, mx}
	return s, nil
}

func minMax(x []float32) (float64, float64) {
	mn, mx := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		f := float64(v)
		mn, mx = math.Min(mn, f), math.Max(mx, f)
	}
	return mn, mx
}
