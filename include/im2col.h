/* im2col.h: the patch matrices of a convolution (internal to src/nn). */
#ifndef DDPM_IM2COL_H
#define DDPM_IM2COL_H

#include "nn.h"

/* col[(ci*k + ky)*k + kx, oy*wout + ox] = inp[ci, oy*stride + ky - pad, ox*stride + kx - pad]
 * (zero outside the image) for one image; row r of col starts at col + r * ld (ld >= hout*wout,
 * so several images can sit side by side in one matrix). */
void im2col(float *col, size_t ld, const float *inp, const ConvShape *s);
/* The adjoint: dinp[ci, iy, ix] += every entry of dcol that im2col copied from that pixel. */
void col2im_add(float *dinp, const float *dcol, size_t ld, const ConvShape *s);

#endif
