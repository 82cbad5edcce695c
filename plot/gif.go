package plot

import (
	"errors"
	"image"
	"image/color/palette"
	"image/draw"
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
	for i, f := range frames {
		b := f.Bounds()
		pi := image.NewPaletted(b, palette.Plan9)
		draw.Draw(pi, b, f, b.Min, draw.Src)
		d := delay
		if i == len(frames)-1 {
			d *= 4
		}
		anim.Image = append(anim.Image, pi)
		anim.Delay = append(anim.Delay, d)
	}
	return gif.EncodeAll(w, anim)
}
