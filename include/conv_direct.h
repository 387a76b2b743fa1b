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

/* Stride 1, odd k >= 3, and either the vector engine (any channel counts) or a usable BLIS
 * micro-kernel with at least 16 output and 8 input channels (fewer: its calls are too short). */
int conv_direct_applies(const ConvShape *s);
/* Scratch floats conv_direct needs on `threads` threads (independent of the batch). */
size_t conv_direct_workspace_floats(const ConvShape *s, int threads);
/* out [n, cout, h, w] = (accumulate ? out + : ) conv(inp, weight) + bias (bias may be NULL).
 * flip = 0: weight is [cout][cin][k][k]. flip = 1: weight is the [cin][cout][k][k] kernel of the
 * convolution whose input gradient this is (s then describes the gradient's convolution:
 * s->cin = that convolution's cout), used swapped and rotated by 180 degrees. */
void conv_direct(float *out, int accumulate, const float *inp, const float *weight,
                 const float *bias, int flip, const ConvShape *s, float *ws);

/* The zero-bordered planes both files read: image [cin][h][w] into cin planes of (h + k - 1) x (w +
 * k - 1), then zeros enough for a last panel or vector to run over the end;
 * conv_direct_pad_floats(s) floats (a multiple of 16). */
static inline int conv_direct_padded_width(const ConvShape *s) { return s->w + s->k - 1; }
static inline size_t conv_direct_plane_floats(const ConvShape *s) {
    return (size_t)(s->h + s->k - 1) * conv_direct_padded_width(s);
}
size_t conv_direct_pad_floats(const ConvShape *s);
void conv_direct_pad_image(float *pad, const float *img, const ConvShape *s);

/* Stride 1 and odd k >= 3 (any channel counts). */
int conv_weight_grad_applies(const ConvShape *s);
size_t conv_weight_grad_workspace_floats(const ConvShape *s, int threads);
/* dweight [cout][cin][k][k] and dbias [cout] (either may be NULL) += from dout and inp. */
void conv_weight_grad(float *dweight, float *dbias, const float *dout, const float *inp,
                      const ConvShape *s, float *ws);

#endif
