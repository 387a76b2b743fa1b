/* conv_winograd.h: 3x3 stride-1 convolutions by Winograd F(2x2, 3x3) (internal to src/nn;
 * conv2d_forward/backward choose it, see conv_set_algorithm in nn.h). Same contract as
 * conv2d_forward/backward: forward overwrites out, backward accumulates, NULL skips. */
#ifndef DDPM_CONV_WINOGRAD_H
#define DDPM_CONV_WINOGRAD_H

#include "nn.h"

int conv_winograd_applies(const ConvShape *s); /* k == 3, stride 1 */
size_t conv_winograd_workspace_floats(const ConvShape *s, int threads);
void conv_winograd_forward(float *out, const float *inp, const float *weight, const float *bias,
                           const ConvShape *s, float *ws);
void conv_winograd_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const ConvShape *s,
                            float *ws);

#endif
