package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ebmrun/ebmrun/graph"
)

// UNet is a small convolutional U-Net for images [C, H, W] (H and W
// divisible by 4): two resolutions below the input's, residual blocks of
// GroupNorm → SiLU → 3×3 conv with the noise embedding added between the
// two convolutions, skip connections by concatenation, and the output
// divided by σ. The noise level enters as Gaussian Fourier features of
// log σ (Tancik et al. 2020; as in Song et al. 2021's NCSN++), fixed at
// initialisation, through a dense layer and SiLU. Group norm is written as
// InstanceNormalization over channel groups (how PyTorch exports it at
// opset 17), upsampling (nearest neighbour) as products with constant 0/1
// matrices, so the graph uses only ops that the native backend, onnxruntime
// and the autodiff all support.
type UNet struct {
	Channels int // of the first level; the lower two have twice as many; default 32
	Groups   int // group-norm groups; default 8
	Embed    int // noise-embedding width; default 4·Channels
}

func (u UNet) defaults() UNet {
	if u.Channels == 0 {
		u.Channels = 32
	}
	if u.Groups == 0 {
		u.Groups = 8
	}
	if u.Embed == 0 {
		u.Embed = 4 * u.Channels
	}
	return u
}

// Name is "unet".
func (UNet) Name() string { return "unet" }

// String describes the architecture in one line.
func (u UNet) String() string {
	p := u.defaults()
	return fmt.Sprintf("unet %d/%d channels, %d groups, embedding %d", p.Channels, 2*p.Channels, p.Groups, p.Embed)
}

// Validate checks the settings.
func (u UNet) Validate() error {
	p := u.defaults()
	if p.Channels < 1 || p.Groups < 1 || p.Embed < 2 || p.Embed%2 != 0 {
		return fmt.Errorf("trainer: unet: channels %d, groups %d must be positive and the embedding %d even", p.Channels, p.Groups, p.Embed)
	}
	if p.Channels%p.Groups != 0 {
		return fmt.Errorf("trainer: unet: %d channels do not split into %d groups", p.Channels, p.Groups)
	}
	return nil
}

// Build makes the network for images of shape [C, H, W].
func (u UNet) Build(dataShape []int64, r *rand.Rand) (*Net, error) {
	return withParamBudget(func() (*Net, error) { return u.build(dataShape, r) })
}

func (u UNet) build(dataShape []int64, r *rand.Rand) (*Net, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	if len(dataShape) != 3 || dataShape[1]%4 != 0 || dataShape[2]%4 != 0 || dataShape[0] < 1 {
		return nil, fmt.Errorf("trainer: unet: takes images [C, H, W] with H and W divisible by 4, got samples of shape %v", dataShape)
	}
	p := u.defaults()
	b := &unetBuilder{netBuilder: newNetBuilder("ncsn_unet", r), groups: int64(p.Groups)}
	x, sigma := dataInput(b.netBuilder, dataShape)
	c, h, w := dataShape[0], dataShape[1], dataShape[2]
	c1, c2, e := int64(p.Channels), int64(2*p.Channels), int64(p.Embed)

	// Noise embedding: Fourier features of log σ, then dense + SiLU.
	freq := graph.NewFloat32([]int64{1, e / 2}, nil)
	for i := range freq.F32 {
		freq.F32[i] = float32(2 * math.Pi * 16 * r.NormFloat64())
	}
	ph := b.op("MatMul", b.op("Unsqueeze", b.op("Log", sigma), b.ints(1)), b.Const("fourier", freq))
	emb := b.Op1("Concat", []string{b.op("Sin", ph), b.op("Cos", ph)}, graph.IntAttr("axis", 1))
	emb = b.act("silu", b.dense("emb", emb, e, e))

	hx := b.conv("in", x, c, c1, 3, 1)
	s1 := b.res("r1", hx, c1, c1, emb, e, h, w)
	d := b.conv("down1", s1, c1, c1, 3, 2)
	s2 := b.res("r2", d, c1, c2, emb, e, h/2, w/2)
	d = b.conv("down2", s2, c2, c2, 3, 2)
	m := b.res("mid", d, c2, c2, emb, e, h/4, w/4)
	up := b.upsample(m, h/4, w/4)
	up = b.res("r3", b.Op1("Concat", []string{up, s2}, graph.IntAttr("axis", 1)), 2*c2, c2, emb, e, h/2, w/2)
	up = b.upsample(up, h/2, w/2)
	up = b.res("r4", b.Op1("Concat", []string{up, s1}, graph.IntAttr("axis", 1)), c2+c1, c1, emb, e, h, w)
	out := b.conv("out", b.act("silu", b.groupNorm("out.gn", up, c1, h, w)), c1, c, 3, 1)
	out = b.op("Div", out, b.sigmaLike(sigma, 4))
	return b.finish(x, sigma, out, dataShape), nil
}

type unetBuilder struct {
	*netBuilder
	groups int64
}

// conv is a k×k convolution (same padding) with bias, PyTorch's init.
func (b *unetBuilder) conv(name, h string, cin, cout, k, stride int64) string {
	bound := 1 / math.Sqrt(float64(cin*k*k))
	w := b.param(name+".w", []int64{cout, cin, k, k}, bound)
	c := b.param(name+".b", []int64{cout}, bound)
	pad := k / 2
	return b.Op1("Conv", []string{h, w, c}, graph.IntsAttr("kernel_shape", k, k), graph.IntsAttr("pads", pad, pad, pad, pad), graph.IntsAttr("strides", stride, stride))
}

// groupNorm normalises each group of channels over the group and the image,
// then scales and shifts each channel.
func (b *unetBuilder) groupNorm(name, h string, ch, hh, ww int64) string {
	g := min(b.groups, ch)
	for ch%g != 0 {
		g--
	}
	ones := graph.NewFloat32([]int64{g}, nil)
	for i := range ones.F32 {
		ones.F32[i] = 1
	}
	zeros := graph.NewFloat32([]int64{g}, nil)
	r := b.op("Reshape", h, b.ints(0, g, -1))
	n := b.Op1("InstanceNormalization", []string{r, b.Const("gn_one", ones), b.Const("gn_zero", zeros)}, graph.FloatAttr("epsilon", 1e-5))
	n = b.op("Reshape", n, b.ints(0, ch, hh, ww))
	gamma := graph.NewFloat32([]int64{ch, 1, 1}, nil)
	for i := range gamma.F32 {
		gamma.F32[i] = 1
	}
	return b.op("Add", b.op("Mul", n, b.paramTensor(name+".scale", gamma)), b.paramTensor(name+".bias", graph.NewFloat32([]int64{ch, 1, 1}, nil)))
}

// res is a residual block with the noise embedding added after the first
// convolution; a 1×1 convolution matches the channels of the skip path.
func (b *unetBuilder) res(name, h string, cin, cout int64, emb string, e, hh, ww int64) string {
	a := b.conv(name+".c1", b.act("silu", b.groupNorm(name+".gn1", h, cin, hh, ww)), cin, cout, 3, 1)
	t := b.op("Unsqueeze", b.dense(name+".emb", emb, e, cout), b.ints(2, 3))
	a = b.op("Add", a, t)
	a = b.conv(name+".c2", b.act("silu", b.groupNorm(name+".gn2", a, cout, hh, ww)), cout, cout, 3, 1)
	skip := h
	if cin != cout {
		skip = b.conv(name+".skip", h, cin, cout, 1, 1)
	}
	return b.op("Add", a, skip)
}

// upsample doubles the resolution by repeating each pixel 2×2, as two
// products with constant 0/1 matrices: [H, W]·U_W along the width, then
// U_H·[H, 2W] along the height (exact: each output sums one input and
// zeros). The earlier broadcast multiply against a [1,1,1,2,1,2] block of
// ones ran as a strided elementwise loop, and its gradient as another plus
// a ReduceSum; onnxruntime runs these products as GEMMs.
func (b *unetBuilder) upsample(h string, hh, ww int64) string {
	uw := graph.NewFloat32([]int64{ww, 2 * ww}, nil)
	for j := int64(0); j < 2*ww; j++ {
		uw.F32[(j/2)*2*ww+j] = 1
	}
	uh := graph.NewFloat32([]int64{2 * hh, hh}, nil)
	for i := int64(0); i < 2*hh; i++ {
		uh.F32[i*hh+i/2] = 1
	}
	r := b.op("MatMul", h, b.Const("up_w", uw))
	return b.op("MatMul", b.Const("up_h", uh), r)
}
