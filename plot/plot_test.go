package plot

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestFormatOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		want Format
		ok   bool
	}{
		{"a.png", PNG, true}, {"dir.v2/A.SVG", SVG, true}, {"x.gif", GIF, true},
		{"x.jpg", "", false}, {"png", "", false}, {"x.png/", "", false},
	} {
		got, err := FormatOf(tc.path)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("FormatOf(%q) = %q, %v; want %q, ok %v", tc.path, got, err, tc.want, tc.ok)
		}
	}
}

func TestGrid(t *testing.T) {
	t.Parallel()
	g := Grid{Box: Box{0, 4, -1, 1}, Cols: 4, Rows: 2}
	pts := g.Points()
	// Cell centres, row by row: y = −0.5 first, x = 0.5, 1.5, 2.5, 3.5.
	want := []float32{0.5, -0.5, 1.5, -0.5, 2.5, -0.5, 3.5, -0.5, 0.5, 0.5, 1.5, 0.5, 2.5, 0.5, 3.5, 0.5}
	if len(pts) != len(want) {
		t.Fatalf("%d values, want %d", len(pts), len(want))
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Fatalf("Points = %v, want %v", pts, want)
		}
	}
	if g.Len() != 8 {
		t.Errorf("Len = %d", g.Len())
	}
}

// A box whose width overflows float64 is drawn, not searched for ticks
// forever.
func TestHugeBoxDraws(t *testing.T) {
	t.Parallel()
	done := make(chan error, 1)
	go func() {
		p, err := SamplesPanel("huge", []float32{0, 0, 1, 1}, []int64{2}, nil, SquareBox(-1e308, 1e308), 0)
		if err == nil {
			(&Figure{Title: "huge", Panels: []Panel{p}}).Image()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("drawing a ±1e308 box did not end in 30 s")
	}
}

func TestDataBox(t *testing.T) {
	t.Parallel()
	nan := float32(math.NaN())
	b := DataBox([]float32{0, 5, 10, 5, nan, nan})
	// x spans 0…10 (5% either side), y is degenerate at 5: ±1, then 5%.
	if math.Abs(b.X0+0.5) > 1e-9 || math.Abs(b.X1-10.5) > 1e-9 || math.Abs(b.Y0-3.9) > 1e-9 || math.Abs(b.Y1-6.1) > 1e-9 {
		t.Errorf("DataBox = %+v", b)
	}
	if b := DataBox(nil); !(b.X1 > b.X0 && b.Y1 > b.Y0) {
		t.Errorf("DataBox(nil) = %+v, want a usable box", b)
	}
}

func TestHist2D(t *testing.T) {
	t.Parallel()
	g := Grid{Box: SquareBox(0, 2), Cols: 2, Rows: 2}
	// Three points in the lower-left cell, one upper-right, one outside.
	z := hist2D([]float32{0.1, 0.1, 0.5, 0.9, 0.9, 0.2, 1.5, 1.5, 5, 5}, g)
	if math.Abs(z[0]-math.Log(4)) > 1e-12 || math.Abs(z[3]-math.Log(2)) > 1e-12 || !math.IsNaN(z[1]) || !math.IsNaN(z[2]) {
		t.Errorf("hist2D = %v", z)
	}
}

func TestImageGrid(t *testing.T) {
	t.Parallel()
	// Two 2×2 grey images: black/white checks and mid grey, range [0, 1].
	x := []float32{0, 1, 1, 0, 0.5, 0.5, 0.5, 0.5}
	img := ImageGrid(x, 1, 2, 2, []float64{0, 1}, 100)
	zoom := 32 // 64 screen pixels at least for a 2-pixel image
	if b := img.Bounds(); b.Dx() != 2*(2*zoom+1)+1 || b.Dy() != 2*zoom+2 {
		t.Fatalf("grid is %v", b)
	}
	at := func(x, y int) uint8 { return img.NRGBAAt(x, y).R }
	if at(1, 1) != 0 || at(1+zoom, 1) != 255 || at(1, 1+zoom) != 255 || at(1+2*zoom-1, 1+2*zoom-1) != 0 {
		t.Errorf("first image's pixels wrong")
	}
	if g := at(2*zoom+2, 1); g != 128 {
		t.Errorf("second image's grey is %d, want 128", g)
	}
	if at(0, 0) != 0 || img.NRGBAAt(0, 0).A != 0 {
		t.Errorf("the gap is not transparent")
	}
}

func TestFigureWrite(t *testing.T) {
	t.Parallel()
	g := Square(-1, 1, 10)
	z := make([]float64, g.Len())
	for i := range z {
		z[i] = float64(i)
	}
	fig := &Figure{Title: "two panels", Panels: []Panel{
		HeatMap("values", g, z, HeatOptions{Label: "value"}),
		{Plot: Scatter("points", []float32{0, 0, 0.5, 0.5}, SquareBox(-1, 1), Model)},
	}}
	w, h := fig.Size()
	if w != 2*DefaultPanelSize+colorBarWidth || h != DefaultPanelSize+titleHeight {
		t.Errorf("Size = %v × %v", w, h)
	}
	var b bytes.Buffer
	if err := fig.Write(&b, PNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	px := func(l vg.Length) int { return int(math.Round(float64(l) / vg.Inch.Points() * DPI)) }
	if got := img.Bounds(); got.Dx() != px(w) || got.Dy() != px(h) {
		t.Errorf("PNG is %v, want %d×%d", got, px(w), px(h))
	}
	b.Reset()
	if err := fig.Write(&b, SVG); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, "<svg") || !strings.Contains(s, "two panels") {
		t.Errorf("SVG lacks the title: %.200s", s)
	}
	if err := (&Figure{}).Write(&b, PNG); err == nil {
		t.Error("an empty figure was written")
	}
	if err := fig.Write(&b, GIF); err == nil {
		t.Error("a figure was written as a GIF")
	}
}

func TestScoreField(t *testing.T) {
	t.Parallel()
	a, f := Square(-2, 2, 5), Square(-2, 2, 8)
	field := func(g Grid, s float64) []float64 {
		v := make([]float64, 0, 2*g.Len())
		for _, p := range g.XYs() {
			v = append(v, -s*p.X, -s*p.Y)
		}
		return v
	}
	sf := &ScoreField{Title: "t", Sigma: 0.5, Arrows: a, Fine: f, Learned: field(a, 1), LearnedFine: field(f, 1)}
	fig, err := sf.Figure()
	if err != nil {
		t.Fatal(err)
	}
	if len(fig.Panels) != 2 || !strings.Contains(fig.Panels[1].Plot.Title.Text, "density is unknown") {
		t.Errorf("without exact score or density: %d panels, heat map %q", len(fig.Panels), fig.Panels[1].Plot.Title.Text)
	}
	sf.Exact, sf.ExactFine = field(a, 1.1), field(f, 1.1)
	if fig, err = sf.Figure(); err != nil {
		t.Fatal(err)
	}
	if len(fig.Panels) != 3 || !strings.Contains(fig.Panels[2].Plot.Title.Text, "error") || fig.Panels[2].ColorBar == nil {
		t.Errorf("with the exact score: %d panels, last %q", len(fig.Panels), fig.Panels[2].Plot.Title.Text)
	}
	sf.ExactFine = sf.ExactFine[:4]
	if _, err := sf.Figure(); err == nil {
		t.Error("an exact score of the wrong length was drawn")
	}
}

func TestLossCurves(t *testing.T) {
	t.Parallel()
	steps := []float64{100, 200, 300}
	p, err := LossCurves("t", steps, []float64{1, 0.8, 0.7}, [][]float64{{0.5, 0.4, math.NaN()}, {1, 1, 1}}, []float64{1, 0.1}, "loss")
	if err != nil || p.Plot == nil || p.ColorBar == nil {
		t.Fatalf("LossCurves: %v", err)
	}
	// Losses at or below zero everywhere (contrastive divergence's) are
	// drawn on a linear scale; with some positive, the log scale stays.
	if q, err := LossCurves("t", steps, []float64{-1, -2, 0}, nil, nil, "loss"); err != nil || q.Plot == nil {
		t.Errorf("non-positive losses: %v", err)
	} else if _, isLog := q.Plot.Y.Scale.(gplot.LogScale); isLog {
		t.Error("non-positive losses were put on a log scale")
	}
	if _, isLog := p.Plot.Y.Scale.(gplot.LogScale); !isLog {
		t.Error("positive losses are not on a log scale")
	}
	if _, err := LossCurves("t", steps, []float64{math.NaN(), math.NaN(), math.NaN()}, nil, nil, "loss"); err == nil {
		t.Error("a log with no finite loss was drawn")
	}
	if _, err := LossCurves("t", nil, nil, nil, nil, "loss"); err == nil {
		t.Error("an empty log was drawn")
	}
}

func TestLogTicks(t *testing.T) {
	t.Parallel()
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (logTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	if got := strings.Join(labels(0.15, 1.05), " "); got != "0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1" {
		t.Errorf("under a decade: %s", got)
	}
	if got := strings.Join(labels(0.01, 100), " "); got != "0.01 0.02 0.05 0.1 0.2 0.5 1 2 5 10 20 50 100" {
		t.Errorf("four decades: %s", got)
	}
	if len((logTicks{}).Ticks(-1, 1)) != 0 {
		t.Error("ticks on a log axis through zero")
	}
}

func TestWriteGIF(t *testing.T) {
	t.Parallel()
	var frames []image.Image
	for _, c := range []color.Color{color.White, Model, Data} {
		img := image.NewRGBA(image.Rect(0, 0, 8, 8))
		for i := 0; i < len(img.Pix); i += 4 {
			r, g, b, a := c.RGBA()
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), uint8(a>>8)
		}
		frames = append(frames, img)
	}
	var b bytes.Buffer
	if err := WriteGIF(&b, frames, 5); err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 3 || g.Delay[0] != 5 || g.Delay[2] != 20 {
		t.Fatalf("%d frames, delays %v", len(g.Image), g.Delay)
	}
	// The house blue survives the palette well enough to be told apart.
	r, gg, bl, _ := g.Image[1].At(3, 3).RGBA()
	if !(bl > r+0x2000 && bl > gg+0x2000) {
		t.Errorf("the blue frame came out as %x %x %x", r, gg, bl)
	}
	if err := WriteGIF(&b, nil, 5); err == nil {
		t.Error("an empty animation was written")
	}
	// The longest delay still fits the file's 16 bits on the last frame; a
	// longer one is refused rather than wrapped.
	b.Reset()
	if err := WriteGIF(&b, frames, MaxGIFDelay); err != nil {
		t.Fatal(err)
	}
	g, err = gif.DecodeAll(&b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Delay[2] != 4*MaxGIFDelay {
		t.Fatalf("longest delay: the last frame shows for %d, want %d", g.Delay[2], 4*MaxGIFDelay)
	}
	if err := WriteGIF(io.Discard, frames, MaxGIFDelay+1); err == nil {
		t.Error("a delay past 16 bits was written")
	}
}

func TestLogDensityFigure(t *testing.T) {
	t.Parallel()
	g := Square(-3, 3, 40)
	z := make([]float64, g.Len())
	for i, p := range g.XYs() {
		z[i] = -(p.X*p.X + p.Y*p.Y) / 2
	}
	fig := LogDensityFigure("model", "log p", g, z, []float32{0, 0, 1, 1, -1, 0.5})
	if len(fig.Panels) != 2 || fig.Panels[0].ColorBar == nil || !strings.Contains(fig.Panels[1].Plot.Title.Text, "3 points") {
		t.Fatalf("%d panels", len(fig.Panels))
	}
	var b bytes.Buffer
	if err := fig.Write(&b, PNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// The peak at the origin is drawn bright, Kindlmann's top.
	lum := func(x, y int) uint32 { r, g, b, _ := img.At(x, y).RGBA(); return (r + g + b) / 3 }
	px := func(l vg.Length) int { return int(float64(l) / vg.Inch.Points() * DPI) }
	cx, cy := px(DefaultPanelSize)/2+20, px(titleHeight)+px(DefaultPanelSize)/2
	if lum(cx, cy) < 0xc000 {
		t.Errorf("the mode is dark (%x)", lum(cx, cy))
	}
	if len(LogDensityFigure("m", "log p", g, z, nil).Panels) != 1 {
		t.Error("a data panel without data")
	}
}

func TestWriteCompactPNG(t *testing.T) {
	t.Parallel()
	// 300 greys over most of the picture and one small red patch: the
	// palette keeps the red although 255 greys are more frequent.
	img := image.NewRGBA(image.Rect(0, 0, 300, 40))
	for y := 0; y < 40; y++ {
		for x := 0; x < 300; x++ {
			v := uint8(x * 255 / 299)
			img.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			img.SetRGBA(x, y, color.RGBA{220, 20, 20, 255})
		}
	}
	var b bytes.Buffer
	if err := WriteCompactPNG(&b, img); err != nil {
		t.Fatal(err)
	}
	got, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(*image.Paletted); !ok {
		t.Errorf("decoded as %T, want a paletted image", got)
	}
	worst := 0
	for y := 0; y < 40; y++ {
		for x := 0; x < 300; x++ {
			worst = max(worst, dist2(color.RGBAModel.Convert(got.At(x, y)).(color.RGBA), img.RGBAAt(x, y)))
		}
	}
	// Neighbouring greys differ by at most 1 per channel; a mapped one
	// lands on a neighbour.
	if worst > 3*2*2 {
		t.Errorf("a colour moved by √%d", worst)
	}
	if r, g, _, _ := got.At(0, 0).RGBA(); r>>8 != 220 || g>>8 != 20 {
		t.Errorf("the red patch came out as %v", got.At(0, 0))
	}
}
