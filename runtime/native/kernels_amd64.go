//go:build amd64 && !purego

package native

import "golang.org/x/sys/cpu"

// haveAVX2 selects the assembly kernels in kernels_amd64.s; without AVX2 and
// FMA (or with the purego build tag) the plain-Go paths run instead.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// haveAVX512 selects the 6×32 ZMM matrix kernels (AVX512F only).
var haveAVX512 = haveAVX2 && cpu.X86.HasAVX512F

//go:noescape
func sgemmKern6x16AVX2(kc int, a, b, c *float32, ldc int, acc int)

//go:noescape
func sigmoidAVX2(d, s []float32)

//go:noescape
func siluAVX2(d, s []float32)

//go:noescape
func biasSiLUAVX2(d, s, bias []float32)

//go:noescape
func biasSigmoidAVX2(d, s, bias []float32)

//go:noescape
func sgemmKern6x16StridedAVX2(kc int, a *float32, lda int, b, c *float32, ldc int, acc int)

//go:noescape
func sgemmKern6x32AVX512(kc int, a, b, c *float32, ldc int, acc int)

//go:noescape
func sgemmKern6x32StridedAVX512(kc int, a *float32, lda int, b, c *float32, ldc int, acc int)

//go:noescape
func sigmoidAVX512(d, s []float32)

//go:noescape
func siluAVX512(d, s []float32)

//go:noescape
func biasSiLUAVX512(d, s, bias []float32)

//go:noescape
func biasSigmoidAVX512(d, s, bias []float32)

//go:noescape
func packRows16AVX2(dst, src *float32, offs *int, n int)

//go:noescape
func packRows32AVX2(dst, src *float32, offs *int, n int)

//go:noescape
func eluAVX2(d, s []float32, alpha float32)

//go:noescape
func eluAVX512(d, s []float32, alpha float32)

//go:noescape
func addVVAVX2(d, a, b []float32)

//go:noescape
func addVSAVX2(d, a []float32, b float32)

//go:noescape
func addSVAVX2(d []float32, a float32, b []float32)

//go:noescape
func subVVAVX2(d, a, b []float32)

//go:noescape
func subVSAVX2(d, a []float32, b float32)

//go:noescape
func subSVAVX2(d []float32, a float32, b []float32)

//go:noescape
func mulVVAVX2(d, a, b []float32)

//go:noescape
func mulVSAVX2(d, a []float32, b float32)

//go:noescape
func mulSVAVX2(d []float32, a float32, b []float32)

//go:noescape
func divVVAVX2(d, a, b []float32)

//go:noescape
func divVSAVX2(d, a []float32, b float32)

//go:noescape
func divSVAVX2(d []float32, a float32, b []float32)

//go:noescape
func expSubAVX2(d, s []float32, m float32)

//go:noescape
func expSubAVX512(d, s []float32, m float32)

//go:noescape
func maxNaNAVX2(x []float32) (m float32, nan bool)

//go:noescape
func sum16AVX2(x []float32) float64

//go:noescape
func sumSq16AVX2(x []float32) (s, q float64)

//go:noescape
func affineAVX2(d, s []float32, a, b float32)

//go:noescape
func affine2AVX2(d, s []float32, a, b, c, e float32)

//go:noescape
func sgemmKern6x32IndAVX512(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int)

//go:noescape
func sgemmKern6x16IndAVX2(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int)

//go:noescape
func maxVVAVX2(d, a, b []float32)

//go:noescape
func sgemmKern8x32AVX512(kc int, a, b, c *float32, ldc int, acc int)

//go:noescape
func sgemmKern8x32IndAVX512(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int)
