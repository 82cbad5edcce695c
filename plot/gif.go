package plot

import (
	"errors"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"io"
)

// WriteGIF writes frames as an animated GIF that loops, showing each frame
// for delay hundredths of a second and the last one four times as long.
// Frames are mapped to the Plan 9 palette (256 colours, enough for white
// backgrounds, the house colours and the pale scales) without dithering,
// which would speckle the flat backgrounds.
func WriteGIF(w io.Writer, frames []image.Image, delay int) error {
	if len(frames) == 0 {
		return errors.New("plot: an animation needs at least one frame")
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

// quantize maps img to the Plan 9 palette, remembering each colour's index:
// a picture has few distinct colours, and the palette's own nearest-colour
// search (256 distances a pixel) made a 60-frame GIF take half a minute.
func quantize(img image.Image, cache map[color.RGBA]uint8) *image.Paletted {
	b := img.Bounds()
	pal := color.Palette(palette.Plan9)
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
