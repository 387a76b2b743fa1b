/* conv_direct.h: stride-1 k x k convolutions without an im2col matrix (internal to src/nn): forward
 * and input gradient on the BLIS micro-kernel (conv_direct.c), weight and bias gradients as dot
 * products (conv_weight_grad.c). conv2d_forward/backward use them where the *_applies functions say
 * so. */
#ifndef DDPM_CONV_DIRECT_H
#define DDPM_CONV_DIRECT_H

#include "nn.h"

/* Largest register block (MR x NR) the fixed buffers allow; BLIS 0.9's are 32 x 12 (skx), 6 x 16
 * (haswell, zen) and 4 x 16 (generic). */
#define CONV_DIRECT_MAX_MR 32
#define CONV_DIRECT_MAX_NR 32

/* The vector engine (conv_direct_kernel.c, AVX-512 builds): panels of up to 3 x 16 positions, 8
 * output channels per kernel call. */
#define CONV_VEC_NR 8
#define CONV_VEC_MR 48
int conv_vec_kernel_built(void);
/* c[j*ldc + i] = b[K*8 + j] + sum over r < K of b[r*8 + j] * a[off[r] + i], i < 16*nv, j < 8
 * (nv = 1, 2 or 3). */
void conv_vec_panel(float *c, size_t ldc, const float *a, const int *off, int K, const float *b,
                    int nv);
/* 1 (the default): conv_direct runs on the vector engine where it is built; 0: on the BLIS
 * micro-kernel (tests and benchmarks compare the two). */
void conv_direct_set_vector(int on);

/* Odd k >= 3, and either the vector engine (stride 1 or 2, any channel counts) or a usable BLIS
 * micro-kernel (stride 1, at least 16 output and 8 input channels: fewer, its calls are too
 * short). */
int conv_direct_applies(const ConvShape *s);
/* Scratch floats conv_direct needs on `threads` threads (independent of the batch). */
size_t conv_direct_workspace_floats(const ConvShape *s, int threads);
/* out [n, cout, h, w] = (accumulate ? out + : ) conv(inp, weight) + bias (bias may be NULL).
 * flip = 0: weight is [cout][cin][k][k]. flip = 1: weight is the [cin][cout][k][k] kernel of the
 * convolution whose input gradient this is (s then describes the gradient's convolution:
 * s->cin = that convolution's cout), used swapped and rotated by 180 degrees. */
void conv_direct(float *out, int accumulate, const float *inp, const float *weight,
                 const float *bias, int flip, const ConvShape *s, float *ws);

/* The zero-bordered planes all three files read, and where a patch row lies in them.
 * Stride 1: image [cin][h][w] into cin planes of (h + k - 1) x (w + k - 1).
 * Stride 2: the image with its zero border of k/2 split by row and column parity into 4 planes per
 * channel of (hout + k/2) x (wout + k/2); plane (py, px) holds the bordered pixels (2a + py,
 * 2b + px).
 * Either way output pixel (yo, xo) is position q = yo*Wg + xo of a grid as wide as the planes (Wg,
 * conv_direct_padded_width), and patch row r = (ci*k + ky)*k + kx of q is the float at
 * q + conv_direct_offset(s, r): rows of consecutive positions are contiguous. After the last plane,
 * zeros enough for a last panel or vector to run over the end; conv_direct_pad_floats(s) floats in
 * all (a multiple of 16). */
static inline int conv_direct_padded_width(const ConvShape *s) {
    return s->stride == 1 ? s->w + s->k - 1 : s->wout + s->k / 2;
}
static inline size_t conv_direct_plane_floats(const ConvShape *s) {
    const int rows = s->stride == 1 ? s->h + s->k - 1 : s->hout + s->k / 2;
    return (size_t)rows * conv_direct_padded_width(s);
}
static inline size_t conv_direct_planes(const ConvShape *s) {
    return (size_t)s->cin * (s->stride == 1 ? 1 : 4);
}
static inline size_t conv_direct_offset(const ConvShape *s, size_t r) {
    const size_t k = (size_t)s->k, ci = r / (k * k), ky = (r / k) % k, kx = r % k;
    const size_t wg = (size_t)conv_direct_padded_width(s), plane = conv_direct_plane_floats(s);
    if (s->stride == 1) return ci * plane + ky * wg + kx;
    return (ci * 4 + (ky & 1) * 2 + (kx & 1)) * plane + (ky >> 1) * wg + (kx >> 1);
}
size_t conv_direct_pad_floats(const ConvShape *s);
void conv_direct_pad_image(float *pad, const float *img, const ConvShape *s);
/* Whether conv_direct runs on the vector engine now (built, and not switched off). */
int conv_direct_vector_engine(void);
/* 1x1 convolutions leave im2col + GEMM for the direct paths only on images of at least 512
 * pixels: measured on unet-s, 2x faster there at 28x28, slower at 7x7 (where im2col's grouped
 * GEMM has more columns than one image's 49), even at 14x14. */
static inline int conv_direct_pointwise_pays(const ConvShape *s) { return s->h * s->w >= 512; }

/* Stride 1 or 2 and odd k >= 3, or 1x1 where conv_direct_pointwise_pays (any channel counts). */
int conv_weight_grad_applies(const ConvShape *s);
size_t conv_weight_grad_workspace_floats(const ConvShape *s, int threads);
/* dweight [cout][cin][k][k] and dbias [cout] (either may be NULL) += from dout and inp. */
void conv_weight_grad(float *dweight, float *dbias, const float *dout, const float *inp,
                      const ConvShape *s, float *ws);

/* The input gradient of a stride-2 convolution (conv_input_grad_s2.c): odd k >= 3 on the vector
 * engine. dinp [n, cin, h, w] += (set: =) the gradient from dout [n, cout, hout, wout]. */
int conv_input_grad_s2_applies(const ConvShape *s);
size_t conv_input_grad_s2_workspace_floats(const ConvShape *s, int threads);
void conv_input_grad_s2(float *dinp, int set, const float *dout, const float *weight,
                        const ConvShape *s, float *ws);

#endif
