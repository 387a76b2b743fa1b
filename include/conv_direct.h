/* conv_direct.h: stride-1 k x k convolution on the BLIS micro-kernel (internal to src/nn; see
 * conv_direct.c). conv2d_forward/backward use it where conv_direct_applies says so. */
#ifndef DDPM_CONV_DIRECT_H
#define DDPM_CONV_DIRECT_H

#include "nn.h"

/* Largest register block (MR x NR) the fixed buffers allow; BLIS 0.9's are 32 x 12 (skx),
 * 6 x 16 (haswell, zen) and 4 x 16 (generic). */
#define CONV_DIRECT_MAX_MR 32
#define CONV_DIRECT_MAX_NR 32

/* Stride 1, odd k >= 3, at least 16 output and 8 input channels (fewer: the micro-kernel calls
 * are too short to pay), and a usable micro-kernel. */
int conv_direct_applies(const ConvShape *s);
/* Scratch floats conv_direct needs on `threads` threads (independent of the batch). */
size_t conv_direct_workspace_floats(const ConvShape *s, int threads);
/* out [n, cout, h, w] = (accumulate ? out + : ) conv(inp, weight) + bias (bias may be NULL).
 * flip = 0: weight is [cout][cin][k][k]. flip = 1: weight is the [cin][cout][k][k] kernel of the
 * convolution whose input gradient this is (s then describes the gradient's convolution:
 * s->cin = that convolution's cout), used swapped and rotated by 180 degrees. */
void conv_direct(float *out, int accumulate, const float *inp, const float *weight,
                 const float *bias, int flip, const ConvShape *s, float *ws);

#endif
