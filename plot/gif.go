package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"io"
	"math"
)

// MaxGIFDelay is the longest delay WriteGIF takes: the file stores 16 bits,
// and the last frame shows four times as long.
const MaxGIFDelay = 65535 / 4

// WriteGIF writes frames as an animated GIF that loops, showing each frame
// for delay hundredths of a second and the last one four times as long.
// Frames are mapped to gifPalette without dithering, which would speckle
// the flat backgrounds.
func WriteGIF(w io.Writer, frames []image.Image, delay int) error {
	if len(frames) == 0 {
		return errors.New("plot: an animation needs at least one frame")
	}
	if delay < 0 || delay > MaxGIFDelay {
		return fmt.Errorf("plot: a GIF frame's delay of %d hundredths of a second is outside 0 … %d", delay, MaxGIFDelay)
	}
	anim := &gif.GIF{}
	cache := map[color.RGBA]uint8{}
	for i, f := range frames {
		pi := quantize(f, cache)
		d := delay
		if i == len(frames)-1 {
			d *= 4
		}
		anim.Image = append(anim.Image, pi)
		anim.Delay = append(anim.Delay, d)
	}
	return gif.EncodeAll(w, anim)
}

// gifPalette is the web-safe colours, 16 greys, and the house colours with
// the tints their translucent sample dots take on white (one, two and three
// dots deep), so samples keep their colour in an animation.
var gifPalette = func() color.Palette {
	pal := append(color.Palette{}, palette.WebSafe...)
	for i := range 16 {
		v := uint8(i * 17)
		pal = append(pal, color.RGBA{v, v, v, 255})
	}
	pal = append(pal, Ink)
	const a = 110.0 / 255 // the alpha of scatterLayer's dots
	for _, c := range []color.NRGBA{Model, Data} {
		pal = append(pal, c)
		for k := 1; k <= 3; k++ {
			t := 1 - math.Pow(1-a, float64(k)) // coverage of k dots
			mix := func(v uint8) uint8 { return uint8(math.Round(255*(1-t) + float64(v)*t)) }
			pal = append(pal, color.RGBA{mix(c.R), mix(c.G), mix(c.B), 255})
		}
	}
	return pal
}()

// quantize maps img to gifPalette, remembering each colour's index:
// a picture has few distinct colours, and the palette's own nearest-colour
// search (256 distances a pixel) made a 60-frame GIF take half a minute.
func quantize(img image.Image, cache map[color.RGBA]uint8) *image.Paletted {
	b := img.Bounds()
	pal := gifPalette
	out := image.NewPaletted(b, pal)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := cache[c]
			if !ok {
				i = uint8(pal.Index(c))
				cache[c] = i
			}
			out.Pix[(y-b.Min.Y)*out.Stride+(x-b.Min.X)] = i
		}
	}
	return out
}
