package plot

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"sort"
)

// WriteCompactPNG writes img as an 8-bit paletted PNG of 256 of its own
// colours — the most frequent ones that are not near-duplicates of a more
// frequent one, so a small red patch of a heat map keeps its red — every
// other colour mapped to the nearest of those.
// A figure is mostly white, ink and a few scales, so this looks the same as
// the full-colour PNG at a third to a fifth of the size — which matters for
// pages that inline their pictures (ebmrun report).
func WriteCompactPNG(w io.Writer, img image.Image) error {
	b := img.Bounds()
	rgba := image.NewRGBA(b)
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			rgba.SetRGBA(x, y, c)
			counts[c]++
		}
	}
	cols := make([]color.RGBA, 0, len(counts))
	for c := range counts {
		cols = append(cols, c)
	}
	sort.Slice(cols, func(i, j int) bool {
		ci, cj := counts[cols[i]], counts[cols[j]]
		if ci != cj {
			return ci > cj
		}
		a, b := cols[i], cols[j]
		return a.R < b.R || a.R == b.R && (a.G < b.G || a.G == b.G && (a.B < b.B || a.B == b.B && a.A < b.A))
	})
	pal := pickPalette(cols)
	out := image.NewPaletted(b, pal)
	index := make(map[color.RGBA]uint8, len(cols))
	for i, c := range pal {
		index[c.(color.RGBA)] = uint8(i)
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgba.RGBAAt(x, y)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.Pix[(y-b.Min.Y)*out.Stride+(x-b.Min.X)] = i
		}
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	return enc.Encode(w, out)
}

// pickPalette takes colours in order of frequency (cols) into a palette of
// at most 256, skipping those closer than a threshold to one already taken;
// the threshold shrinks pass by pass until the palette is full.
func pickPalette(cols []color.RGBA) color.Palette {
	pal := make(color.Palette, 0, 256)
	taken := make(map[color.RGBA]bool)
	for _, thr := range []int{48, 24, 12, 6, 0} {
		for _, c := range cols {
			if len(pal) == 256 {
				return pal
			}
			if taken[c] {
				continue
			}
			near := false
			for _, p := range pal {
				q := p.(color.RGBA)
				if dist2(c, q) < thr*thr {
					near = true
					break
				}
			}
			if !near {
				pal = append(pal, c)
				taken[c] = true
			}
		}
	}
	return pal
}

func dist2(a, b color.RGBA) int {
	d := func(x, y uint8) int { return (int(x) - int(y)) * (int(x) - int(y)) }
	return d(a.R, b.R) + d(a.G, b.G) + d(a.B, b.B) + d(a.A, b.A)
}
