//go:build !amd64 || purego

package native

// haveAVX2 is false: the assembly kernels are not built for this target.
const (
	haveAVX2   = false
	haveAVX512 = false
)

func sgemmKern6x16AVX2(kc int, a, b, c *float32, ldc int, acc int) { panic("native: no AVX2 kernels") }
func sigmoidAVX2(d, s []float32)                                   { panic("native: no AVX2 kernels") }
func siluAVX2(d, s []float32)                                      { panic("native: no AVX2 kernels") }
func biasSiLUAVX2(d, s, bias []float32)                            { panic("native: no AVX2 kernels") }
func biasSigmoidAVX2(d, s, bias []float32)                         { panic("native: no AVX2 kernels") }

func sgemmKern6x16StridedAVX2(kc int, a *float32, lda int, b, c *float32, ldc int, acc int) {
	panic("native: no AVX2 kernels")
}

func sgemmKern6x32AVX512(kc int, a, b, c *float32, ldc int, acc int) {
	panic("native: no AVX-512 kernels")
}

func sgemmKern6x32StridedAVX512(kc int, a *float32, lda int, b, c *float32, ldc int, acc int) {
	panic("native: no AVX-512 kernels")
}

func sigmoidAVX512(d, s []float32)           { panic("native: no AVX-512 kernels") }
func siluAVX512(d, s []float32)              { panic("native: no AVX-512 kernels") }
func biasSiLUAVX512(d, s, bias []float32)    { panic("native: no AVX-512 kernels") }
func biasSigmoidAVX512(d, s, bias []float32) { panic("native: no AVX-512 kernels") }

func packRows16AVX2(dst, src *float32, offs *int, n int) { panic("native: no AVX2 kernels") }
func packRows32AVX2(dst, src *float32, offs *int, n int) { panic("native: no AVX2 kernels") }

func eluAVX2(d, s []float32, alpha float32)          { panic("native: no AVX2 kernels") }
func eluAVX512(d, s []float32, alpha float32)        { panic("native: no AVX2 kernels") }
func addVVAVX2(d, a, b []float32)                    { panic("native: no AVX2 kernels") }
func addVSAVX2(d, a []float32, b float32)            { panic("native: no AVX2 kernels") }
func addSVAVX2(d []float32, a float32, b []float32)  { panic("native: no AVX2 kernels") }
func subVVAVX2(d, a, b []float32)                    { panic("native: no AVX2 kernels") }
func subVSAVX2(d, a []float32, b float32)            { panic("native: no AVX2 kernels") }
func subSVAVX2(d []float32, a float32, b []float32)  { panic("native: no AVX2 kernels") }
func mulVVAVX2(d, a, b []float32)                    { panic("native: no AVX2 kernels") }
func mulVSAVX2(d, a []float32, b float32)            { panic("native: no AVX2 kernels") }
func mulSVAVX2(d []float32, a float32, b []float32)  { panic("native: no AVX2 kernels") }
func divVVAVX2(d, a, b []float32)                    { panic("native: no AVX2 kernels") }
func divVSAVX2(d, a []float32, b float32)            { panic("native: no AVX2 kernels") }
func divSVAVX2(d []float32, a float32, b []float32)  { panic("native: no AVX2 kernels") }
func expSubAVX2(d, s []float32, m float32)           { panic("native: no AVX2 kernels") }
func expSubAVX512(d, s []float32, m float32)         { panic("native: no AVX2 kernels") }
func maxNaNAVX2(x []float32) (m float32, nan bool)   { panic("native: no AVX2 kernels") }
func sum16AVX2(x []float32) float64                  { panic("native: no AVX2 kernels") }
func sumSq16AVX2(x []float32) (s, q float64)         { panic("native: no AVX2 kernels") }
func affineAVX2(d, s []float32, a, b float32)        { panic("native: no AVX2 kernels") }
func affine2AVX2(d, s []float32, a, b, c, e float32) { panic("native: no AVX2 kernels") }
func sgemmKern6x32IndAVX512(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int) {
	panic("native: no AVX2 kernels")
}
func sgemmKern6x16IndAVX2(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int) {
	panic("native: no AVX2 kernels")
}
func maxVVAVX2(d, a, b []float32) { panic("native: no AVX2 kernels") }
func sgemmKern8x32AVX512(kc int, a, b, c *float32, ldc int, acc int) {
	panic("native: no AVX2 kernels")
}
func sgemmKern8x32IndAVX512(kc int, a, b *float32, offs *int, c *float32, ldc int, acc int) {
	panic("native: no AVX2 kernels")
}
